package loadgen

import (
	"bytes"
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

// AnswerHandler answers as the gateway answers a new visitor: 204, no
// body, two cookies, CORS for the origin. TestBenchAnswerReferenceMatchesGateway
// (internal/e2e) holds it to the real gateway's answer.
func TestAnswerHandlerAnswersLikeTheGateway(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/collect", bytes.NewReader(Body{}.Append(nil, 1, 1)))
	r.Header.Set("Origin", "http://127.0.0.1")
	w := httptest.NewRecorder()
	AnswerHandler().ServeHTTP(w, r)
	h := w.Result().Header
	if w.Code != http.StatusNoContent || w.Body.Len() != 0 || len(w.Result().Cookies()) != 2 ||
		h.Get("Access-Control-Allow-Origin") != "http://127.0.0.1" || h.Get("Content-Type") != "" {
		t.Errorf("%d %q %v", w.Code, w.Body, h)
	}
}
