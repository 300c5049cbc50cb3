package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/destinationstest"
)

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(json.RawMessage(`{"url":"https://hooks.example.com/t","secret":"` + testSecret + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeout != destinations.Duration(15*time.Second) || s.MaxBatch != 100 || s.DryRun {
		t.Errorf("defaults: %+v", s)
	}
	s, err = ParseSettings(json.RawMessage(`{"url":"https://hooks.example.com/t","secret":"` + testSecret + `",
		"previous_secret":"` + otherSecret + `","headers":{"X-Shop":"a","x-env":"prod"},"auth_header":"Authorization: Bearer abc",
		"timeout":"30s","max_batch":1000}`))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(s.Timeout) != 30*time.Second || s.MaxBatch != 1000 || len(s.Headers) != 2 {
		t.Errorf("got %+v", s)
	}

	bad := []struct {
		name, json string
		fields     []string
	}{
		{"not an object", `[]`, []string{"webhook settings"}},
		{"unknown field", `{"url":"https://a.example","secret":"` + testSecret + `","urll":"x"}`, []string{"urll"}},
		{"trailing data", `{"url":"https://a.example","secret":"` + testSecret + `"} {}`, []string{"trailing"}},
		{"missing url and secret", `{}`, []string{"url is required", "secret is required", "openssl rand"}},
		{"secret without prefix", `{"url":"https://a.example","secret":"dGFnd2F5LXRlc3Qtc2lnbmluZy1rZXktMzItYnl0ZXM="}`, []string{"secret", "whsec_"}},
		{"secret not base64", `{"url":"https://a.example","secret":"whsec_not*base64!"}`, []string{"secret", "base64"}},
		{"secret unpadded", `{"url":"https://a.example","secret":"whsec_dGFnd2F5LXRlc3Qtc2lnbmluZy1rZXktMzItYnl0ZXM"}`, []string{"secret", "padded"}},
		{"secret with a newline", `{"url":"https://a.example","secret":"whsec_dGFnd2F5LXRlc3Qtc2ln\nbmluZy1rZXktMzItYnl0ZXM="}`, []string{"secret", "white space"}},
		{"secret too short", `{"url":"https://a.example","secret":"whsec_c2hvcnQta2V5"}`, []string{"secret", "9 bytes", "24 to 64"}},
		{"secret too long", `{"url":"https://a.example","secret":"whsec_` + strings.Repeat("QUFB", 22) + `"}`, []string{"secret", "66 bytes"}},
		{"bad previous secret", `{"url":"https://a.example","secret":"` + testSecret + `","previous_secret":"old"}`, []string{"previous_secret"}},
		{"bad timeout", `{"url":"https://a.example","secret":"` + testSecret + `","timeout":"soon"}`, []string{"timeout", "Go duration"}},
		{"timeout too long", `{"url":"https://a.example","secret":"` + testSecret + `","timeout":"31s"}`, []string{"timeout", "30s"}},
		{"negative timeout", `{"url":"https://a.example","secret":"` + testSecret + `","timeout":"-1s"}`, []string{"timeout"}},
		{"max_batch too big", `{"url":"https://a.example","secret":"` + testSecret + `","max_batch":1001}`, []string{"max_batch"}},
		{"max_batch negative", `{"url":"https://a.example","secret":"` + testSecret + `","max_batch":-1}`, []string{"max_batch"}},
		{"bad url", `{"url":"http://a.example","secret":"` + testSecret + `"}`, []string{"url", "https"}},
		{"several", `{"url":"ftp://x","secret":"nope","max_batch":5000}`, []string{"url", "secret", "max_batch"}},
	}
	parse := func(raw json.RawMessage) error { _, err := ParseSettings(raw); return err }
	for _, tc := range bad {
		destinationstest.CheckRefused(t, tc.name, json.RawMessage(tc.json), tc.fields, parse, New)
	}
}

// TestSecretErrorsHoldNoSecret: a malformed secret is never quoted back.
func TestSecretErrorsHoldNoSecret(t *testing.T) {
	for _, sec := range []string{"hunter2-my-plain-password", "whsec_hunter2*plain", "whsec_aHVudGVyMg==", "whsec_" + strings.Repeat("QUFB", 30)} {
		for _, field := range []string{"secret", "previous_secret", "auth_header"} {
			m := map[string]any{"url": "https://a.example", "secret": testSecret, field: sec}
			raw, _ := json.Marshal(m)
			_, err := ParseSettings(raw)
			if err == nil && field != "auth_header" {
				t.Errorf("%s %q accepted", field, sec)
				continue
			}
			if err != nil && (strings.Contains(err.Error(), sec) || strings.Contains(err.Error(), strings.TrimPrefix(sec, SecretPrefix))) {
				t.Errorf("%s: the error quotes the secret: %v", field, err)
			}
		}
	}
}

func TestHeaderSettings(t *testing.T) {
	base := func(headers map[string]string, auth string) json.RawMessage {
		m := map[string]any{"url": "https://a.example/h", "secret": testSecret, "headers": headers}
		if auth != "" {
			m["auth_header"] = auth
		}
		raw, _ := json.Marshal(m)
		return raw
	}
	ok := []struct {
		headers map[string]string
		auth    string
	}{
		{map[string]string{"X-Shop": "shop-1", "CF-Access-Client-Id": "abc.access"}, "CF-Access-Client-Secret: s3cr3t"},
		{nil, "Authorization: Bearer abc"},
		{map[string]string{"X-Tab": "a\tb"}, ""},
	}
	for _, tc := range ok {
		if _, err := ParseSettings(base(tc.headers, tc.auth)); err != nil {
			t.Errorf("%v %q: %v", tc.headers, tc.auth, err)
		}
	}
	tooMany := map[string]string{}
	for i := range maxHeaders + 1 {
		tooMany[fmt.Sprintf("X-H%d", i)] = "v"
	}
	bad := []struct {
		name    string
		headers map[string]string
		auth    string
		want    string
	}{
		{"hop-by-hop", map[string]string{"connection": "close"}, "", "Connection is a hop-by-hop header"},
		{"transfer-encoding", map[string]string{"Transfer-Encoding": "chunked"}, "", "hop-by-hop"},
		{"te", map[string]string{"TE": "trailers"}, "", "hop-by-hop"},
		{"upgrade", map[string]string{"Upgrade": "h2c"}, "", "hop-by-hop"},
		{"proxy-authorization", map[string]string{"Proxy-Authorization": "x"}, "", "hop-by-hop"},
		{"host", map[string]string{"Host": "internal"}, "", "Host is set from url"},
		{"content-type", map[string]string{"content-type": "text/plain"}, "", "set by tagway"},
		{"content-length", map[string]string{"Content-Length": "1"}, "", "set by tagway"},
		{"user-agent", map[string]string{"User-Agent": "x"}, "", "set by tagway"},
		{"webhook-id", map[string]string{"Webhook-Id": "msg_1"}, "", "webhook- headers"},
		{"webhook-signature", map[string]string{"webhook-signature": "v1,x"}, "", "webhook- headers"},
		{"authorization in the plain headers", map[string]string{"authorization": "Bearer x"}, "", "auth_header"},
		{"bad name", map[string]string{"X Shop": "a"}, "", "not a valid header name"},
		{"empty name", map[string]string{"": "a"}, "", "not a valid header name"},
		{"CRLF in value", map[string]string{"X-A": "a\r\nX-Injected: 1"}, "", "not a valid header value"},
		{"empty value", map[string]string{"X-A": ""}, "", "no value"},
		{"too long", map[string]string{"X-A": strings.Repeat("a", 1025)}, "", "at most 1024"},
		{"twice by case", map[string]string{"X-A": "1", "x-a": "2"}, "", "given twice"},
		{"too many", tooMany, "", "at most 20"},
		{"auth without colon", nil, "Bearer abc", `"Name: value"`},
		{"auth reserved", nil, "Content-Type: text/plain", "set by tagway"},
		{"auth bad value", nil, "X-Key: a\nb", "not a valid header value"},
		{"auth in headers too", map[string]string{"x-key": "1"}, "X-Key: 2", "in headers too"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSettings(base(tc.headers, tc.auth))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			if err != nil && tc.auth != "" && strings.Contains(err.Error(), "abc") {
				t.Errorf("the error shows auth_header's value: %v", err)
			}
		})
	}
}

// FuzzParseSettings: any input gives settings or an error, never a panic,
// and accepted settings keep the invariants the adapter relies on.
func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{
		`{"url":"https://a.example","secret":"` + testSecret + `"}`,
		`{"url":"http://127.0.0.1:1/x","secret":"` + testSecret + `","headers":{"X-A":"b"},"auth_header":"K: v","max_batch":5,"timeout":"1s"}`,
		`{"url":"https://[::ffff:127.0.0.1]/","dry_run":true}`,
		`{"url":"https://0x7f000001/","secret":"whsec_"}`,
		`{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := loopback.ParseSettings(raw)
		if err != nil {
			return
		}
		if s.MaxBatch < 1 || s.MaxBatch > MaxEvents || s.Timeout <= 0 || time.Duration(s.Timeout) > MaxTimeout {
			t.Fatalf("accepted %+v", s)
		}
		if !s.DryRun {
			if _, err := parseSecret(string(s.Secret)); err != nil {
				t.Fatalf("accepted a bad secret: %v", err)
			}
		}
		u, err := loopback.CheckURL(s.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
			t.Fatalf("accepted url %q: %v", s.URL, err)
		}
		if _, err := loopback.New(raw, destinations.Deps{}); err != nil {
			t.Fatalf("ParseSettings accepted what New refuses: %v", err)
		}
	})
}
