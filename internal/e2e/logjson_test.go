package e2e

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/app"
)

// TestServeLogsOnlyJSON: every line `tagway serve` writes is JSON, what the
// standard library prints with package log (net/http about a cookie value
// it had to change) included; and a gclid no cookie can hold never reaches
// a cookie.
func TestServeLogsOnlyJSON(t *testing.T) {
	prev, prevOut, prevFlags := slog.Default(), log.Writer(), log.Flags()
	t.Cleanup(func() {
		slog.SetDefault(prev)
		log.SetOutput(prevOut)
		log.SetFlags(prevFlags)
	})
	stderr := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	env := map[string]string{"TAGWAY_ADDR": "127.0.0.1:0", "TAGWAY_SITE_DOMAINS": "127.0.0.1", "TAGWAY_DEMO": "off"}
	go func() { done <- app.Main(ctx, nil, envOf(env), stderr) }()

	var base string
	for deadline := time.Now().Add(20 * time.Second); base == ""; {
		for _, line := range strings.Split(stderr.String(), "\n") {
			var l struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "tagway listening" {
				base = "http://" + l.Addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not start: %s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}

	req, _ := http.NewRequest(http.MethodPost, base+"/collect",
		strings.NewReader(`{"url":"http://127.0.0.1/?gclid=Cj0%22x%22","events":[{"event_name":"PageView"}]}`))
	req.Header.Set("Origin", "http://127.0.0.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/collect = %d; want 200 (a fix reported)", resp.StatusCode)
	}
	for _, c := range resp.Header.Values("Set-Cookie") {
		if strings.Contains(c, "Cj0") {
			t.Errorf("cookie %q holds the gclid", c)
		}
	}
	log.Print("a line printed with package log")
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("serve exited %d", code)
	}

	out := stderr.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("a log line is not JSON: %q", line)
		}
	}
	for _, want := range []string{"a line printed with package log"} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %q:\n%s", want, out)
		}
	}
}
