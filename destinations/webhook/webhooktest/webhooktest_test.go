package webhooktest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference libraries' test vector.
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func vectorHeader() http.Header {
	h := http.Header{}
	h.Set("webhook-id", vectorID)
	h.Set("webhook-timestamp", strconv.Itoa(vectorTS))
	h.Set("webhook-signature", vectorSig)
	return h
}

func TestVerify(t *testing.T) {
	key, err := DecodeSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(vectorTS, 0)
	cases := []struct {
		name   string
		change func(h http.Header) ([]byte, time.Time)
		check  string // "" when it verifies
	}{
		{"the vector", func(h http.Header) ([]byte, time.Time) { return []byte(vectorBody), at }, ""},
		{"one of several signatures", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-signature", "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1a,AAAA "+vectorSig)
			return []byte(vectorBody), at
		}, ""},
		{"within tolerance, late", func(h http.Header) ([]byte, time.Time) { return []byte(vectorBody), at.Add(Tolerance) }, ""},
		{"within tolerance, early", func(h http.Header) ([]byte, time.Time) { return []byte(vectorBody), at.Add(-Tolerance) }, ""},
		{"too old", func(h http.Header) ([]byte, time.Time) { return []byte(vectorBody), at.Add(Tolerance + time.Second) }, "timestamp"},
		{"too new", func(h http.Header) ([]byte, time.Time) { return []byte(vectorBody), at.Add(-Tolerance - time.Second) }, "timestamp"},
		{"body changed", func(h http.Header) ([]byte, time.Time) { return []byte(`{"test": 2432232315}`), at }, "signature"},
		{"body re-serialized", func(h http.Header) ([]byte, time.Time) { return []byte(`{"test":2432232314}`), at }, "signature"},
		{"timestamp changed", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-timestamp", strconv.Itoa(vectorTS+1))
			return []byte(vectorBody), at
		}, "signature"},
		{"id changed", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-id", vectorID+"x")
			return []byte(vectorBody), at
		}, "signature"},
		{"id with a full stop", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-id", "msg.1")
			return []byte(vectorBody), at
		}, "id"},
		{"timestamp not an integer", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-timestamp", "1614265330.0")
			return []byte(vectorBody), at
		}, "timestamp"},
		{"timestamp signed", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-timestamp", "+1614265330")
			return []byte(vectorBody), at
		}, "timestamp"},
		{"v1a only", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-signature", strings.Replace(vectorSig, "v1,", "v1a,", 1))
			return []byte(vectorBody), at
		}, "signature"},
		{"hex instead of base64", func(h http.Header) ([]byte, time.Time) {
			h.Set("webhook-signature", "v1,8348"+strings.Repeat("0", 60))
			return []byte(vectorBody), at
		}, "signature"},
		{"no id", func(h http.Header) ([]byte, time.Time) { h.Del("webhook-id"); return []byte(vectorBody), at }, "headers"},
		{"no timestamp", func(h http.Header) ([]byte, time.Time) { h.Del("webhook-timestamp"); return []byte(vectorBody), at }, "headers"},
		{"no signature", func(h http.Header) ([]byte, time.Time) { h.Del("webhook-signature"); return []byte(vectorBody), at }, "headers"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := vectorHeader()
			body, now := tc.change(h)
			err := Verify(key, h, body, now)
			var ve *VerifyError
			switch {
			case tc.check == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.check != "" && (!errors.As(err, &ve) || ve.Check != tc.check):
				t.Errorf("err = %v, want the %s check to fail", err, tc.check)
			}
		})
	}
	other, _ := DecodeSecret("whsec_dGFnd2F5LXRlc3Qtc2lnbmluZy1rZXktMzItYnl0ZXM=")
	if err := Verify(other, vectorHeader(), []byte(vectorBody), at); err == nil {
		t.Error("another key verified")
	}
	for _, bad := range []string{"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***", "whsec_"} {
		if _, err := DecodeSecret(bad); err == nil {
			t.Errorf("DecodeSecret(%q) accepted", bad)
		}
	}
}

const testSecret = "whsec_dGFnd2F5LXRlc3Qtc2lnbmluZy1rZXktMzItYnl0ZXM="

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

// validBody is a message the schema accepts; its timestamp is its newest
// event_time.
const validBody = `{"type":"tagway.events","timestamp":"2026-11-28T11:59:00Z","data":{"site":"shop","events":[` +
	`{"event_name":"PageView","event_time":1795867140,"event_id":"pv-1","action_source":"website",` +
	`"user_data":{"em":["8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"],"client_user_agent":"Mozilla/5.0"},` +
	`"context":{"consent":{"ad_storage":"granted"},"click_ids":{"gclid":{"value":"x","at":1}}}}]}}`

// post sends body to s signed with secret at testNow, under id.
func post(t *testing.T, s *Server, id, body string, edit func(*http.Request)) (int, string) {
	t.Helper()
	key, _ := DecodeSecret(testSecret)
	req, err := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(testNow.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tagway-webhook/1")
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	if edit != nil {
		edit(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func newServer(t *testing.T) *Server {
	s := NewServer(t, testSecret)
	s.SetNow(func() time.Time { return testNow })
	return s
}

func TestServerAccepts(t *testing.T) {
	s := newServer(t)
	if status, body := post(t, s, "msg_1", validBody, nil); status != http.StatusNoContent {
		t.Fatalf("%d %s", status, body)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].ID != "msg_1" || msgs[0].Timestamp != testNow.Unix() || string(msgs[0].Body) != validBody {
		t.Fatalf("messages %+v", msgs)
	}
	evs := s.Events()
	if len(evs) != 1 || evs[0].EventID != "pv-1" || evs[0].Context.Consent.AdStorage != "granted" || evs[0].Context.ClickIDs["gclid"].Value != "x" {
		t.Errorf("events %+v", evs)
	}
	if got := s.WaitEvents(1, time.Second); len(got) != 1 {
		t.Errorf("WaitEvents: %d", len(got))
	}
}

// TestServerDuplicates: a repeated webhook-id is acknowledged and not
// recorded again; with another body it is a conflict.
func TestServerDuplicates(t *testing.T) {
	s := newServer(t)
	post(t, s, "msg_1", validBody, nil)
	if status, _ := post(t, s, "msg_1", validBody, nil); status != http.StatusNoContent {
		t.Errorf("duplicate: %d", status)
	}
	other := strings.Replace(validBody, `"pv-1"`, `"pv-2"`, 1)
	if status, _ := post(t, s, "msg_1", other, nil); status != http.StatusConflict {
		t.Errorf("same id, another body: %d", status)
	}
	if len(s.Messages()) != 1 || s.Duplicates() != 1 || s.Requests() != 3 {
		t.Errorf("%d messages, %d duplicates, %d requests", len(s.Messages()), s.Duplicates(), s.Requests())
	}
}

func TestServerRefuses(t *testing.T) {
	replace := func(old, new string) string {
		if !strings.Contains(validBody, old) {
			t.Fatalf("%q not in the body", old)
		}
		return strings.Replace(validBody, old, new, 1)
	}
	cases := []struct {
		name   string
		body   string
		edit   func(*http.Request)
		status int
		reason string
	}{
		{"GET", validBody, func(r *http.Request) { r.Method = http.MethodGet }, 405, "POST"},
		{"text body", validBody, func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, 415, "application/json"},
		{"no user agent", validBody, func(r *http.Request) { r.Header.Set("User-Agent", "curl/8") }, 400, "User-Agent"},
		{"bad signature", validBody, func(r *http.Request) { r.Header.Set("webhook-signature", "v1,AAAA") }, 401, "signature"},
		{"stale", validBody, func(r *http.Request) { r.Header.Set("webhook-timestamp", "1000") }, 401, "timestamp"},
		{"unknown field", replace(`"site":"shop"`, `"site":"shop","extra":1`), nil, 400, "unknown field"},
		{"digest variant sent", replace(`"client_user_agent"`, `"ph_e164":["x"],"client_user_agent"`), nil, 400, "ph_e164"},
		{"tagway context sent raw", replace(`"context":{`, `"tw":{},"context":{`), nil, 400, "tw"},
		{"wrong type", replace(`"tagway.events"`, `"events"`), nil, 400, "type"},
		{"timestamp not newest", replace(`11:59:00Z`, `11:58:00Z`), nil, 400, "newest event_time"},
		{"timestamp not UTC", replace(`11:59:00Z`, `12:59:00+01:00`), nil, 400, "UTC"},
		{"no site", replace(`"site":"shop"`, `"site":""`), nil, 400, "data.site"},
		{"no event id", replace(`"event_id":"pv-1"`, `"event_id":""`), nil, 400, "event_id"},
		{"unhashed e-mail", replace(`"8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"`, `"jane@example.com"`), nil, 400, "user_data.em"},
		{"uppercase digest", replace(`"8c87b489ce35cf2e2f39f80e282cb2e804932a56a213983eeeb428407d43b52d"`, `"8C87B489CE35CF2E2F39F80E282CB2E804932A56A213983EEEB428407D43B52D"`), nil, 400, "user_data.em"},
		{"bad consent", replace(`"granted"`, `"yes"`), nil, 400, "consent"},
		{"click id without time", replace(`"at":1`, `"at":0`), nil, 400, "click_ids"},
		{"anonymous with identifiers", replace(`"context":{`, `"context":{"anonymous":true,`), nil, 400, "anonymous"},
		{"no events", `{"type":"tagway.events","timestamp":"2026-11-28T11:59:00Z","data":{"site":"shop","events":[]}}`, nil, 400, "1 to 1000"},
		{"trailing data", validBody + `{}`, nil, 400, "after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			status, body := post(t, s, "msg_1", tc.body, tc.edit)
			if status != tc.status || !strings.Contains(body, tc.reason) {
				t.Errorf("%d %s, want %d naming %q", status, body, tc.status, tc.reason)
			}
			if len(s.Messages()) != 0 {
				t.Error("recorded a refused message")
			}
			if r := s.Rejections(); len(r) != 1 || r[0].Status != tc.status {
				t.Errorf("rejections %v", r)
			}
		})
	}
}

func TestServerLimitsAndControls(t *testing.T) {
	s := newServer(t)
	big := `{"pad":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	if status, _ := post(t, s, "msg_big", big, nil); status != http.StatusRequestEntityTooLarge {
		t.Errorf("too large: %d", status)
	}
	var events bytes.Buffer
	events.WriteString(`{"type":"tagway.events","timestamp":"1970-01-01T00:00:01Z","data":{"site":"s","events":[`)
	for i := range MaxEvents + 1 {
		if i > 0 {
			events.WriteByte(',')
		}
		events.WriteString(`{"event_name":"A","event_time":1,"event_id":"` + strconv.Itoa(i) + `","user_data":{},"context":{"consent":{}}}`)
	}
	events.WriteString(`]}}`)
	if status, body := post(t, s, "msg_many", events.String(), nil); status != http.StatusBadRequest || !strings.Contains(body, "1001 events") {
		t.Errorf("too many events: %d %s", status, body)
	}

	s.RequireHeader("X-Api-Key", "k1")
	if status, _ := post(t, s, "msg_2", validBody, nil); status != http.StatusUnauthorized {
		t.Errorf("missing required header: %d", status)
	}
	if status, _ := post(t, s, "msg_2", validBody, func(r *http.Request) { r.Header.Set("X-Api-Key", "k1") }); status != http.StatusNoContent {
		t.Errorf("with the required header: %d", status)
	}

	s.FailNext(2, http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}}, "slow down")
	for range 2 {
		req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" {
			t.Errorf("FailNext: %d %v", resp.StatusCode, resp.Header)
		}
	}
	if status, _ := post(t, s, "msg_3", strings.Replace(validBody, `"pv-1"`, `"pv-3"`, 1), func(r *http.Request) { r.Header.Set("X-Api-Key", "k1") }); status != http.StatusNoContent {
		t.Errorf("after the failures: %d", status)
	}

	if err := s.SetSecret("whsec_b3RoZXItdGFnd2F5LXNpZ25pbmcta2V5LTMyYnl0ZQ=="); err != nil {
		t.Fatal(err)
	}
	if status, _ := post(t, s, "msg_4", validBody, func(r *http.Request) { r.Header.Set("X-Api-Key", "k1") }); status != http.StatusUnauthorized {
		t.Errorf("after a secret change: %d", status)
	}
}
