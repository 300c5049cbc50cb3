package loadgen

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing/model"
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

// AnswerHandler answers a loadgen body as the real gateway answers it: the
// same status, header names and Set-Cookie names, and no body.
func TestAnswerHandlerAnswersLikeTheGateway(t *testing.T) {
	snap, err := model.NewSnapshot(model.Config{Sites: []model.Site{{ID: "default", Domains: []string{"127.0.0.1"}}}})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Options{Enqueuer: &countingQueue{}, Sites: sites{snap}})
	if err != nil {
		t.Fatal(err)
	}
	answer := func(h http.Handler) (int, []string, []string, int) {
		r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1/collect", bytes.NewReader(Body{}.Append(nil, 1, 1)))
		r.Header.Set("Origin", "http://127.0.0.1")
		r.Header.Set("Content-Type", contentType)
		r.Header.Set("User-Agent", userAgent)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		var names, cookies []string
		for k := range w.Result().Header {
			names = append(names, k)
		}
		for _, c := range w.Result().Cookies() {
			cookies = append(cookies, c.Name)
		}
		slices.Sort(names)
		slices.Sort(cookies)
		return w.Code, names, cookies, w.Body.Len()
	}
	gc, gh, gck, gb := answer(gw.Handler())
	rc, rh, rck, rb := answer(AnswerHandler())
	if gc != http.StatusNoContent || gb != 0 || len(gck) != 2 {
		t.Fatalf("the gateway answers %d, %d body bytes, cookies %v; the reference assumes 204, no body, two cookies", gc, gb, gck)
	}
	if rc != gc || rb != gb || !slices.Equal(rh, gh) || !slices.Equal(rck, gck) {
		t.Errorf("reference answers %d %v cookies %v (%d body bytes); the gateway %d %v cookies %v (%d)", rc, rh, rck, rb, gc, gh, gck, gb)
	}
}
