package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/redistest"
)

// EnqueueHandler answers only once each request's body is an entry of the
// reference stream.
func TestEnqueueHandlerWritesEachBody(t *testing.T) {
	rdb := redistest.Start(t).Client()
	srv := httptest.NewServer(EnqueueHandler(rdb))
	defer srv.Close()
	res, err := Run(context.Background(), Options{URL: srv.URL + "/collect", Conns: 8, Duration: 10 * time.Second,
		Warmup: -1, MaxRequests: 400})
	if err != nil || res.Statuses[http.StatusNoContent] != 400 {
		t.Fatalf("%v: statuses %v (%s)", err, res.Statuses, res.FirstError)
	}
	entries, err := rdb.XRange(context.Background(), ReferenceStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 400 {
		t.Fatalf("%d entries; want one per request", len(entries))
	}
	for _, e := range entries {
		if body, _ := e.Values["e"].(string); !strings.HasPrefix(body, `{"vid":"`) {
			t.Fatalf("entry %v is not a request body", e.Values)
		}
	}
}

// AnswerHandler answers with the gateway's answer to a new visitor.
func TestAnswerHandlerAnswersLikeTheGateway(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/collect", strings.NewReader(`{}`))
	r.Header.Set("Origin", "http://127.0.0.1")
	w := httptest.NewRecorder()
	AnswerHandler().ServeHTTP(w, r)
	h := w.Result().Header
	if w.Code != http.StatusOK || w.Body.String() != "{\"received\":1}\n" || len(h.Values("Set-Cookie")) != 2 ||
		h.Get("Access-Control-Allow-Origin") != "http://127.0.0.1" || h.Get("Content-Type") != "application/json" {
		t.Errorf("%d %q %v", w.Code, w.Body, h)
	}
}
