package tiktok

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// FuzzClassify: whatever TikTok answers, classify gives a known outcome,
// never panics, and never repeats the token.
func FuzzClassify(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, replyBody(0, "OK")},
		{200, replyBody(20001, "Partial events failed")},
		{200, replyBody(40100, "Too many requests")},
		{200, replyBody(40105, "bad token "+testToken)},
		{200, replyBody(40002, "data[3].event_time")},
		{200, `{"code":"40002"}`},
		{200, `{"code":1e400}`},
		{200, `{"code":null,"message":"x"}`},
		{500, "<html>" + testToken + "</html>"},
		{429, ""},
		{302, `{"code":0}`},
	} {
		f.Add(seed.status, seed.body)
	}
	d, _ := newAdapter(f, settingsJSON(f, "http://127.0.0.1:1", nil), nil)
	a := d.(*Adapter)
	f.Fuzz(func(t *testing.T, status int, body string) {
		status = 100 + abs(status)%500
		r, e := a.classify(status, http.Header{"Retry-After": {"3"}}, []byte(body), 2)
		if e == nil {
			if status/100 != 2 || (r.Code != codeOK && r.Code != codePartial) {
				t.Fatalf("HTTP %d %q delivered", status, body)
			}
			return
		}
		switch e.Kind {
		case destinations.Retryable, destinations.Permanent, destinations.Paused:
		default:
			t.Fatalf("kind %v", e.Kind)
		}
		if strings.Contains(e.Error(), testToken) {
			t.Fatalf("the token in %q", e.Error())
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
