package destinationstest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// toyFake is a fake of a platform that accepts "ok" bodies and refuses
// the rest.
type toyFake struct {
	*Fake[string, string]
}

func newToyFake(t *testing.T) *toyFake {
	f := &toyFake{}
	f.Fake = NewFake[string, string](t, FakeConfig{Name: "toyfake", Account: "pixel", Serve: f.serve})
	return f
}

func (f *toyFake) serve(w http.ResponseWriter, r *http.Request) {
	n, now, ok := f.Begin(w, r)
	if !ok {
		return
	}
	b, _ := io.ReadAll(r.Body)
	if string(b) != "ok" {
		f.Reject(fmt.Sprintf("request %d: %q", n, b))
		WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "not ok"})
		return
	}
	f.Accept(r.URL.Path, fmt.Sprintf("%d at %s", n, now.Format(time.TimeOnly)))
	w.WriteHeader(http.StatusNoContent)
}

func post(t *testing.T, url, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestFake(t *testing.T) {
	f := newToyFake(t)
	f.SetNow(func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) })
	f.FailNext(1, http.StatusServiceUnavailable, `{"error":"busy"}`)
	f.FailNextWith(1, http.StatusTooManyRequests, http.Header{"Retry-After": {"7"}, "Content-Type": {"text/plain"}}, "slow")

	if status, h, body := post(t, f.URL()+"/p1", "ok"); status != 503 || body != `{"error":"busy"}` || h.Get("Content-Type") != "application/json" {
		t.Errorf("first failure: %d %v %s", status, h, body)
	}
	if status, h, body := post(t, f.URL()+"/p1", "ok"); status != 429 || body != "slow" || h.Get("Retry-After") != "7" || h.Get("Content-Type") != "text/plain" {
		t.Errorf("second failure: %d %v %s", status, h, body)
	}
	if status, _, _ := post(t, f.URL()+"/p1", "ok"); status != http.StatusNoContent {
		t.Errorf("accepted: %d", status)
	}
	if status, _, _ := post(t, f.URL()+"/p1", "bad"); status != http.StatusBadRequest {
		t.Errorf("refused: %d", status)
	}
	if got := f.WaitEvents("/p1", 1, time.Second); fmt.Sprint(got) != "[3 at 12:00:00]" {
		t.Errorf("events %v", got)
	}
	if got := f.Events("/p2"); len(got) != 0 {
		t.Errorf("another account's events: %v", got)
	}
	if f.Requests() != 4 || fmt.Sprint(f.Rejections()) != `[request 4: "bad"]` {
		t.Errorf("requests %d, rejections %v", f.Requests(), f.Rejections())
	}
	if !f.Now().Equal(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("Now %s", f.Now())
	}
}

func TestAccounts(t *testing.T) {
	var a Accounts
	a.Add("p1", "tok1")
	a.Add("p2", "tok2")
	a.Add("p2", "tok2b") // replaces tok2
	for _, tc := range []struct {
		account, token          string
		known, accountKnown, ok bool
	}{
		{"p1", "tok1", true, true, true},
		{"p2", "tok2b", true, true, true},
		{"p2", "tok2", false, true, false},
		{"p2", "tok1", true, true, false},
		{"p3", "tok1", true, false, false},
		{"p1", "", false, true, false},
		{"", "", false, false, false},
	} {
		known, accountKnown, ok := a.Check(tc.account, tc.token)
		if known != tc.known || accountKnown != tc.accountKnown || ok != tc.ok {
			t.Errorf("Check(%q, %q) = %v %v %v, want %v %v %v", tc.account, tc.token, known, accountKnown, ok,
				tc.known, tc.accountKnown, tc.ok)
		}
	}
}

func TestJSONRules(t *testing.T) {
	for s, want := range map[string]bool{
		strings.Repeat("ab", 32): true, strings.Repeat("AB", 32): false, strings.Repeat("a", 63): false,
		strings.Repeat("g", 64): false, "": false,
	} {
		if IsSHA256(s) != want {
			t.Errorf("IsSHA256(%q) = %v", s, !want)
		}
	}
	for _, tc := range []struct {
		in   any
		want string
		ok   bool
	}{{nil, "[]", true}, {"a", "[a]", true}, {[]any{"a", "b"}, "[a b]", true}, {[]any{"a", 1.0}, "[]", false}, {1.0, "[]", false}} {
		got, ok := StringOrList(tc.in)
		if fmt.Sprint(got) != tc.want || ok != tc.ok {
			t.Errorf("StringOrList(%v) = %v %v", tc.in, got, ok)
		}
	}
	if k, ok := UnknownKey(map[string]any{"b": 1, "z": 1, "a": 1}, "b"); !ok || k != "a" {
		t.Errorf("UnknownKey = %q %v", k, ok)
	}
	if _, ok := UnknownKey(map[string]any{"a": 1}, "a"); ok {
		t.Error("UnknownKey found an allowed key")
	}
	var v map[string]any
	if err := DecodeJSON([]byte(`{"n":1.50}`), &v); err != nil || fmt.Sprintf("%T %v", v["n"], v["n"]) != "json.Number 1.50" {
		t.Errorf("DecodeJSON: %v %v", v, err)
	}
	if err := DecodeJSON([]byte(`{} {}`), &v); err == nil {
		t.Error("DecodeJSON took data after the object")
	}
}
