package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

// With VisitorEvents, a visitor's later requests carry its seed and
// identifiers and send back the cookies its earlier answers set; a new
// visitor starts without cookies. Both senders.
func TestVisitorEventsSendCookiesBack(t *testing.T) {
	for _, netHTTP := range []bool{false, true} {
		type seen struct{ cookie, vid, em string }
		var mu sync.Mutex
		var got []seen
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				VID    string `json:"vid"`
				Events []struct {
					UserData struct {
						Em string `json:"em"`
					} `json:"user_data"`
				} `json:"events"`
			}
			_ = json.NewDecoder(r.Body).Decode(&body)
			mu.Lock()
			n := len(got)
			got = append(got, seen{r.Header.Get("Cookie"), body.VID, body.Events[0].UserData.Em})
			mu.Unlock()
			w.Header().Add("Set-Cookie", "_a="+strconv.Itoa(n)+"; Path=/; Max-Age=60; SameSite=Lax")
			w.Header().Add("Set-Cookie", "_b=fixed; Path=/")
			w.Write([]byte(`{"received":1}`))
		}))
		res, err := Run(context.Background(), Options{URL: srv.URL + "/collect", Conns: 1, Duration: 5 * time.Second,
			Warmup: -1, MaxRequests: 7, NetHTTP: netHTTP, Body: Body{VisitorEvents: 3}})
		srv.Close()
		if err != nil || res.OK != 7 {
			t.Fatalf("netHTTP=%v: %v %+v", netHTTP, err, res)
		}
		for i, s := range got {
			first := i%3 == 0
			switch {
			case first && s.cookie != "":
				t.Errorf("netHTTP=%v: request %d, a new visitor's, sent cookies %q", netHTTP, i+1, s.cookie)
			case !first && s.cookie != "_a="+strconv.Itoa(i-1)+"; _b=fixed":
				t.Errorf("netHTTP=%v: request %d sent cookies %q; want the last answer's", netHTTP, i+1, s.cookie)
			}
			if sameVisitor := got[i-i%3]; s.vid != sameVisitor.vid || s.em != sameVisitor.em {
				t.Errorf("netHTTP=%v: request %d: seed %s / %s within one visitor", netHTTP, i+1, s.vid, sameVisitor.vid)
			}
			if i >= 3 && (s.vid == got[i-3].vid || s.em == got[i-3].em) {
				t.Errorf("netHTTP=%v: request %d repeats the previous visitor's seed or e-mail", netHTTP, i+1)
			}
		}
	}
}
