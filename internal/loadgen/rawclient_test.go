package loadgen

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The raw client reads every kind of answer a server may give, keeps the
// connection when it may, and sends what net/http's client sends.
func TestRawClientAnswers(t *testing.T) {
	var conns atomic.Int64
	var bad atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost || r.Header.Get("Origin") != "http://127.0.0.1" || r.Header.Get("Content-Type") != contentType ||
			r.ContentLength != int64(len(body)) || !strings.HasPrefix(string(body), `{"vid":"`) {
			bad.Store(r.Method + " " + r.Header.Get("Origin") + " " + string(body))
		}
		switch r.URL.Query().Get("kind") {
		case "chunked":
			w.Write([]byte("part one;"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		case "nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "error":
			http.Error(w, "no", http.StatusTooManyRequests)
		default:
			w.Write([]byte(`{"received":1}`))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	for _, tc := range []struct {
		kind      string
		status    int
		wantConns int64
	}{
		{"chunked", 200, 1}, {"plain", 200, 1}, {"nocontent", 204, 1}, {"error", 429, 1}, {"close", 200, 20},
	} {
		conns.Store(0)
		res, err := Run(context.Background(), Options{URL: srv.URL + "/collect?kind=" + tc.kind, Conns: 1,
			Duration: 5 * time.Second, Warmup: -1, MaxRequests: 20})
		if err != nil {
			t.Fatal(err)
		}
		if res.Statuses[tc.status] != 20 {
			t.Errorf("%s: statuses %v (%s); want 20 × %d", tc.kind, res.Statuses, res.FirstError, tc.status)
		}
		if n := conns.Load(); n != tc.wantConns {
			t.Errorf("%s: %d connections; want %d", tc.kind, n, tc.wantConns)
		}
	}
	if v := bad.Load(); v != nil {
		t.Errorf("unexpected request: %v", v)
	}
}
