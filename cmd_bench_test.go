package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/loadgen"
)

func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-conns", "64,256", "-rate", "2000"}, ""},
		{[]string{"-url", "http://10.1.2.3:8080"}, "not a loopback"},
		{[]string{"-spawn"}, "need -redis"},
		{[]string{"-spawn", "-redis", "redis://10.0.0.1:6379"}, "not a loopback"},
		{[]string{"-spawn", "-url", "http://127.0.0.1:1", "-redis", "redis://127.0.0.1:1"}, "exclude each other"},
		{[]string{"-conns", "0"}, "positive"},
		{[]string{"-client", "net/http", "-bare-in-process"}, ""},
		{[]string{"-client", "curl"}, "neither raw nor net/http"},
		{[]string{"-visitor-events", "10"}, ""},
		{[]string{"-visitor-events", "0"}, "not within 1 to 1000000"},
		{[]string{"-reference", "answer"}, ""},
		{[]string{"-reference", "enqueue"}, "needs -redis"},
		{[]string{"-reference", "enqueue", "-redis", "redis://127.0.0.1:1"}, ""},
		{[]string{"-reference", "lua"}, "neither answer nor enqueue"},
		{[]string{"-against", "/tmp/tagway-old"}, "needs -spawn"},
		{[]string{"-spawn", "-redis", "redis://127.0.0.1:1", "-against", "/tmp/tagway-old"}, ""},
	} {
		_, err := parseBenchFlags(tc.args, io.Discard)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.err)
		}
	}
}

func TestDeadlettersFlags(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	action, f, jsonOut, err := parseDeadlettersFlags([]string{"replay", "--site", "shop", "--destination", "meta",
		"--reason", "max_attempts", "--since", "2h", "--until", "2026-03-01T11:30:00Z", "--id", "1-0,2-0", "--id", "3-0", "--json"}, now, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if action != "replay" || !jsonOut || f.Site != "shop" || f.Destination != "meta" || f.Reason != "max_attempts" ||
		!f.Since.Equal(now.Add(-2*time.Hour)) || !f.Until.Equal(now.Add(-30*time.Minute)) ||
		strings.Join(f.IDs, " ") != "1-0 2-0 3-0" || f.Limit != 0 {
		t.Errorf("%s %+v", action, f)
	}
	if _, f, _, _ := parseDeadlettersFlags([]string{"list"}, now, io.Discard); f.Limit != 100 {
		t.Errorf("list default limit %d", f.Limit)
	}
	for _, args := range [][]string{
		nil, {"purge"}, {"list", "--reason", "nope"}, {"list", "--since", "yesterday"},
		{"drop", "--id", "1-0"}, {"list", "--site", "Bad Site"}, {"list", "extra"},
	} {
		if _, _, _, err := parseDeadlettersFlags(args, now, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestDeadlettersNeedsRedisURL(t *testing.T) {
	var stderr strings.Builder
	code := run(t.Context(), []string{"deadletters", "list"}, func(string) string { return "" }, io.Discard, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "REDIS_URL") {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
}

// The answer reference of tagway bench answers with the headers the
// gateway gives a new visitor of the benchmark, so that it prices the same
// answer.
func TestBenchAnswerReferenceMatchesGateway(t *testing.T) {
	gw := startGateway(t, nil)
	body := loadgen.Body{}.Append(nil, 1, 1)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/collect", bytes.NewReader(body))
	req.Header.Set("Origin", "http://127.0.0.1")
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) tagway-bench/1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gotBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ref := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/collect", bytes.NewReader(body))
	r.Header.Set("Origin", "http://127.0.0.1")
	loadgen.AnswerHandler().ServeHTTP(ref, r)
	// The status, body, header names and values, with each cookie's value
	// masked (the visitor's ids differ) but its name and attributes kept.
	shape := func(h http.Header, status int, body string) string {
		var lines []string
		for k, vs := range h {
			if k == "Date" || k == "Content-Length" {
				continue
			}
			for _, v := range vs {
				if k == "Set-Cookie" {
					name, rest, _ := strings.Cut(v, "=")
					_, attrs, _ := strings.Cut(rest, ";")
					v = name + "=*;" + attrs
				}
				lines = append(lines, k+": "+v)
			}
		}
		slices.Sort(lines)
		return fmt.Sprintf("%d %s\n%s", status, body, strings.Join(lines, "\n"))
	}
	if g, w := shape(resp.Header, resp.StatusCode, string(gotBody)), shape(ref.Result().Header, ref.Code, ref.Body.String()); g != w {
		t.Errorf("gateway answers\n%s\nthe reference answers\n%s", g, w)
	}
}

// A pair's verdict is the geometric mean of its rounds, each round the
// ratio of the two gateways' server CPU per request.
func TestBenchPairMeanOfRounds(t *testing.T) {
	res := func(us int) loadgen.Result {
		return loadgen.Result{Conns: 32, ServerCPUPerReq: time.Duration(us) * time.Microsecond}
	}
	var out strings.Builder
	p := &benchPrinter{w: &out}
	// 90/100 one way, 100/90 the other: an order bias that cancels out.
	p.pair([][2]loadgen.Result{{res(90), res(100)}, {res(100), res(90)}})
	if !strings.Contains(out.String(), "server CPU per request 100.0%") || !strings.Contains(out.String(), "90.0%") ||
		!strings.Contains(out.String(), "111.1%") {
		t.Errorf("%q", out.String())
	}
	out.Reset()
	p.pair([][2]loadgen.Result{{res(80), res(100)}, {res(45), res(50)}})
	if !strings.Contains(out.String(), "server CPU per request 84.9%") { // sqrt(0.8 * 0.9)
		t.Errorf("%q", out.String())
	}
}
