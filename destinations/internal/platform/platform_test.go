package platform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

func TestRedactor(t *testing.T) {
	const tok = "tok/en+1=<a>&b"
	r := NewRedactor(tok, "")
	for _, form := range []string{tok, "tok%2Fen%2B1%3D%3Ca%3E%26b", "tok%2Fen+1=%3Ca%3E&b", `tok/en+1=\u003ca\u003e\u0026b`} {
		if got := r.Redact("x " + form + " y"); got != "x [redacted] y" {
			t.Errorf("Redact(%q) = %q", form, got)
		}
	}
	// An invalid byte inside the token is dropped before the replacement.
	if got := r.Redact("bad " + tok[:4] + "\xff" + tok[4:]); got != "bad [redacted]" {
		t.Errorf("split token: %q", got)
	}
	if got := r.Snippet("  "+tok+strings.Repeat("é", 20), 15); got != "[redacted]é" {
		t.Errorf("Snippet = %q", got)
	}
	shown := r.ShowAs("https://api.example/v3/x?access_token="+tok, "https://api.example/v3/x")
	if got := shown.Redact(`Post "https://api.example/v3/x?access_token=` + tok + `": EOF`); got != `Post "https://api.example/v3/x": EOF` {
		t.Errorf("ShowAs: %q", got)
	}
	with := r.With("other-secret")
	if got := with.Redact("other-secret " + tok); got != "[redacted] [redacted]" {
		t.Errorf("With: %q", got)
	}
	if got := r.Redact("other-secret"); got != "other-secret" {
		t.Errorf("With changed its receiver: %q", got)
	}
	var none *Redactor
	if got := none.Redact("a\xffb"); got != "ab" {
		t.Errorf("nil Redactor: %q", got)
	}
}

func TestGroups(t *testing.T) {
	g := NewGroups[string, string](2, 6)
	for i, key := range []string{"a", "b", "a", "a", "", "b"} {
		g.Add(key, i, fmt.Sprint("w", i))
	}
	var got []string
	for _, r := range g.All() {
		got = append(got, fmt.Sprintf("%s:%v:%v", r.Key, r.Indexes, r.Events))
	}
	want := "[a:[0 2]:[w0 w2] b:[1 5]:[w1 w5] a:[3]:[w3] :[4]:[w4]]"
	if fmt.Sprint(got) != want {
		t.Errorf("groups %v, want %v", got, want)
	}
	out := make([]error, 6)
	errA, errB := errors.New("a"), errors.New("b")
	g.All()[0].Set(out, errA)
	g.All()[1].SetEach(out, []error{errB, nil})
	if out[0] != errA || out[2] != errA || out[1] != errB || out[5] != nil || out[3] != nil {
		t.Errorf("outcomes %v", out)
	}
	if n, first := Failures(out); n != 3 || first != errA {
		t.Errorf("Failures = %d, %v", n, first)
	}
	if ids := IDs([]int{3, 1}, func(i *int) string { return fmt.Sprint("e", *i) }); fmt.Sprint(ids) != "[e3 e1]" {
		t.Errorf("IDs %v", ids)
	}
}

func newClient(t *testing.T, logs io.Writer, record func([]byte)) *Client {
	t.Helper()
	return NewClient(destinations.Deps{
		HTTP:   &http.Client{},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) },
		Record: record,
	}, Config{Type: "toy", Timeout: 200 * time.Millisecond, Secrets: NewRedactor("s3cr3t"),
		LogAttrs: []any{"pixel_id", "7"}, MaxBody: 8, MaxDrain: 16})
}

func TestPost(t *testing.T) {
	var seen http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		case "/hang":
			<-r.Context().Done()
		default:
			_, _ = io.WriteString(w, "0123456789abcdef")
		}
	}))
	defer srv.Close()
	c := newClient(t, io.Discard, nil)

	resp, err := c.Post(context.Background(), srv.URL+"/ok", http.Header{"Accept": {"application/json"}}, []byte(`{}`))
	if err != nil || resp.Status != 200 || string(resp.Body) != "01234567" || resp.ReadErr != nil {
		t.Errorf("bounded read: %+v, %v", resp, err)
	}
	if seen.Get("Content-Type") != "application/json" || seen.Get("Accept") != "application/json" {
		t.Errorf("headers %v", seen)
	}
	if resp, err := c.Post(context.Background(), srv.URL+"/redirect", nil, nil); err != nil || resp.Status != http.StatusTemporaryRedirect {
		t.Errorf("redirect followed: %+v, %v", resp, err)
	}
	_, err = c.Post(context.Background(), srv.URL+"/hang?token=s3cr3t", nil, nil)
	de := c.Failed(err, 2)
	if err == nil || de.Kind != destinations.Retryable || !strings.Contains(de.Message, "toy: ") ||
		strings.Contains(de.Message, "s3cr3t") || !strings.Contains(de.Message, "[redacted]") {
		t.Errorf("timeout: %v → %+v", err, de)
	}
	_, err = c.Post(context.Background(), "http://bad host/", nil, nil)
	if de := c.Failed(err, 1); de.Kind != destinations.Permanent || !strings.Contains(de.Message, "toy: build request") {
		t.Errorf("unbuildable request: %+v", de)
	}
}

func TestClassifiers(t *testing.T) {
	c := newClient(t, io.Discard, nil)
	for _, tc := range []struct {
		status int
		want   destinations.Kind
	}{{200, destinations.Retryable}, {204, destinations.Retryable}, {302, destinations.Permanent},
		{401, destinations.Paused}, {429, destinations.Retryable}, {400, destinations.Permanent}, {503, destinations.Retryable}} {
		if de := c.ByStatus(tc.status, http.Header{}, "m"); de == nil || de.Kind != tc.want || de.Status != tc.status {
			t.Errorf("ByStatus(%d) = %+v, want %v", tc.status, de, tc.want)
		}
	}
	if got := c.StatusMessage(502, []byte("<html> s3cr3t \xff</html>")); got != "toy: HTTP 502: <html> [redacted] </html>" {
		t.Errorf("StatusMessage = %q", got)
	}
	if got := c.StatusMessage(500, nil, "extra"); got != "toy: HTTP 500" {
		t.Errorf("StatusMessage without body = %q", got)
	}
	broken := Response{Status: 200, ReadErr: errors.New("unexpected EOF near s3cr3t")}
	if de := c.ReadFailure(broken); de == nil || de.Kind != destinations.Retryable || strings.Contains(de.Message, "s3cr3t") {
		t.Errorf("ReadFailure(2xx) = %+v", de)
	}
	if de := c.ReadFailure(Response{Status: 500, ReadErr: broken.ReadErr}); de != nil {
		t.Errorf("ReadFailure(500) = %+v", de)
	}
}

func TestDryRun(t *testing.T) {
	var logs bytes.Buffer
	var recorded []byte
	c := newClient(t, &logs, func(b []byte) { recorded = b })
	c.DryRun([]byte(`{"ip":"203.0.113.9"}`), []string{"e1", "e2"}, "test", true)
	if string(recorded) != `{"ip":"203.0.113.9"}` {
		t.Errorf("recorded %s", recorded)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=INFO") || !strings.Contains(lines[0], `msg="toy dry run: request not sent"`) ||
		!strings.Contains(lines[0], "events=2") || !strings.Contains(lines[0], "event_ids=\"[e1 e2]\"") ||
		!strings.Contains(lines[0], "test=true") || !strings.Contains(lines[0], "destination=toy pixel_id=7") ||
		strings.Contains(lines[0], "203.0.113.9") || !strings.Contains(lines[1], "level=DEBUG") || !strings.Contains(lines[1], "203.0.113.9") {
		t.Errorf("dry-run log:\n%s", logs.String())
	}
}

func TestSettings(t *testing.T) {
	var s struct {
		Timeout destinations.Duration `json:"timeout"`
	}
	err := DecodeSettings("toy", json.RawMessage(`{"timeout":"soon"}`), &s)
	if err == nil || !strings.HasPrefix(err.Error(), "toy settings: timeout: ") || !errors.As(err, new(*destinations.DurationError)) {
		t.Errorf("bad duration: %v", err)
	}
	if err := DecodeSettings("toy", json.RawMessage(`{"other":1}`), &s); err == nil || !strings.Contains(err.Error(), "other") {
		t.Errorf("unknown field: %v", err)
	}
	for u, ok := range map[string]bool{"https://a.example": true, "http://127.0.0.1:1/base": true, "ftp://a": false,
		"https://a/?q=1": false, "https://u:p@a/": false, "https://a/#f": false, "nope": false, "https://": false} {
		if err := CheckURL("toy", "api_url", u); (err == nil) != ok || (err != nil && !strings.Contains(err.Error(), "toy settings: api_url")) {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
	if CheckTimeout("toy", 0) == nil || CheckTimeout("toy", -1) == nil || CheckTimeout("toy", 1) != nil {
		t.Error("CheckTimeout")
	}
}

func TestDigests(t *testing.T) {
	d1, d2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, tc := range []struct {
		variant, fallback []string
		max               int
		want              string
	}{
		{[]string{d1}, []string{d2}, 0, "[" + d1 + "]"},
		{nil, []string{d2 + ".AbC12", strings.ToUpper(d1), "raw@example.com", d2}, 0, "[" + d2 + " " + d1 + "]"},
		{nil, []string{d1, d2}, 1, "[" + d1 + "]"},
		{nil, nil, 3, "[]"},
	} {
		if got := Digests(tc.variant, tc.fallback, tc.max); fmt.Sprint(got) != tc.want {
			t.Errorf("Digests(%v, %v, %d) = %v, want %s", tc.variant, tc.fallback, tc.max, got, tc.want)
		}
	}
	if IsDigest(strings.Repeat("A", 64)) || IsDigest(d1[1:]) || !IsDigest(d1) {
		t.Error("IsDigest")
	}
}

func TestCheckTime(t *testing.T) {
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, want string
		at         int64
	}{
		{"Meta", "", now.Add(-time.Hour).Unix()},
		{"Meta", `toy: event "e1" has no event_time`, 0},
		{"Meta", `toy: event "e1" is 2h0m0s old, past Meta's 1h0m0s limit`, now.Add(-2 * time.Hour).Unix()},
		{"Google Ads", `toy: event "e1" is 2h0m0s old, past Google Ads' 1h0m0s limit`, now.Add(-2 * time.Hour).Unix()},
	} {
		c := NewClient(destinations.Deps{}, Config{Type: "toy", Name: tc.name})
		err := c.CheckTime(&destinations.Event{EventID: "e1", EventTime: tc.at}, now, time.Hour)
		got := ""
		if err != nil {
			kind, de := destinations.Classify(err)
			if kind != destinations.Permanent {
				t.Errorf("%v is not permanent", err)
			}
			got = de.Message
		}
		if got != tc.want {
			t.Errorf("CheckTime = %q, want %q", got, tc.want)
		}
	}
}

func TestClickID(t *testing.T) {
	at := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	e := destinations.Event{EventTime: at.Unix(), Context: destinations.Context{ClickIDs: map[string]destinations.ClickID{
		"fresh":   {Value: "F", At: at.Add(-time.Hour).UnixMilli()},
		"edge":    {Value: "E", At: at.Add(-2 * time.Hour).UnixMilli()},
		"stale":   {Value: "S", At: at.Add(-3 * time.Hour).UnixMilli()},
		"unknown": {Value: "U"},
		"empty":   {At: at.UnixMilli()},
	}}}
	for param, want := range map[string]string{"fresh": "F", "edge": "E", "stale": "", "unknown": "U", "empty": "", "none": ""} {
		if got := ClickID(&e, param, 2*time.Hour); got != want {
			t.Errorf("ClickID(%s) = %q, want %q", param, got, want)
		}
	}
}
