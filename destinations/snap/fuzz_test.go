package snap

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// FuzzClassify: whatever Snap answers, from either endpoint, classify gives
// one known outcome per event, never panics, and never repeats the token.
func FuzzClassify(f *testing.F) {
	for _, seed := range []struct {
		status int
		body   string
	}{
		{200, `{"status":"VALID","reason":"ok"}`},
		{400, invalidBody(1, "bad "+testToken)},
		{400, `{"status":"INVALID","event_logs":[{"event":0,"status":"VALID"},{"event":1,"status":"INVALID","errors":{"error_msgs":["x"]}}]}`},
		{400, `{"status":"INVALID","event_logs":[{"status":"INVALID"}]}`},
		{200, `{"status":"INVALID","event":-5}`},
		{401, `{"status":"INVALID","reason":"` + url.QueryEscape(testToken) + `"}`},
		{429, ""},
		{500, "<html>" + testToken + "</html>"},
		{200, `{"status":7}`},
	} {
		f.Add(seed.status, seed.body, false)
		f.Add(seed.status, seed.body, true)
	}
	d, _ := newAdapter(f, settingsJSON(f, "http://127.0.0.1:1", nil), nil)
	a := d.(*Adapter)
	f.Fuzz(func(t *testing.T, status int, body string, test bool) {
		status = 100 + abs(status)%500
		outs := a.classify(status, http.Header{"Retry-After": {"3"}}, []byte(body), 2, test)
		if len(outs) != 2 {
			t.Fatalf("%d outcomes for 2 events", len(outs))
		}
		for _, err := range outs {
			if err == nil {
				continue
			}
			k, de := destinations.Classify(err)
			switch k {
			case destinations.Retryable, destinations.Permanent, destinations.Paused:
			default:
				t.Fatalf("kind %v", k)
			}
			for _, form := range []string{testToken, url.QueryEscape(testToken)} {
				if strings.Contains(de.Error(), form) {
					t.Fatalf("the token in %q", de.Error())
				}
			}
		}
	})
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
