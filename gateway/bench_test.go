package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

// benchCollectBody is a ~600-byte /collect body like the demo checkout's
// Purchase (the same shape `tagway bench` sends).
func benchCollectBody(now time.Time) string {
	return `{"vid":"` + strconv.FormatInt(now.UnixMilli()-5000, 10) + `.482913756104","url":"https://shop.example/product/sku-1?utm_source=bench&utm_medium=cpc",` +
		`"referrer":"https://www.google.com/","consent":{"ad_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"granted"},` +
		`"events":[{"event_name":"Purchase","event_id":"3f0c6a52-9b1e-4c7e-8d2a-5b7f1e0c9a11","event_time":` + strconv.FormatInt(now.Unix(), 10) + `,` +
		`"custom_data":{"value":129.90,"currency":"EUR","content_ids":["sku-1","sku-42"],"contents":[{"id":"sku-42","quantity":1}],"content_type":"product","num_items":2,"order_id":"1001"},` +
		`"user_data":{"em":"Jane.Doe+1001@Example.com","ph":"+1 (650) 555-1212","external_id":"cust-9-1001"}}]}`
}

// nopQueue accepts everything and keeps nothing, so the benchmark measures
// the handler alone.
type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, string, []destinations.Event) error { return nil }

// BenchmarkCollect measures the whole POST /collect handler (site lookup,
// CORS, strict decode, validation, cookies, PII hashing, metrics) with an
// enqueue that costs nothing.
func BenchmarkCollect(b *testing.B) {
	benchmarkCollect(b, benchCollectBody(time.Now()))
}

// BenchmarkCollectSentAt is BenchmarkCollect with the sent_at the script
// stamps on each request (wire contract v2), from a device clock 3 s off.
func BenchmarkCollectSentAt(b *testing.B) {
	body := benchCollectBody(time.Now())
	body = `{"sent_at":` + strconv.FormatInt(time.Now().UnixMilli()-3000, 10) + `,` + body[1:]
	benchmarkCollect(b, body)
}

func benchmarkCollect(b *testing.B, body string) {
	g, err := New(Options{Enqueuer: nopQueue{}, Sites: staticSites{testSnapshot(b)},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	h := g.Handler()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "http://shop.example/collect", strings.NewReader(body))
		r.Header.Set("Origin", "https://shop.example")
		r.Header.Set("Content-Type", "text/plain;charset=UTF-8")
		r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) bench")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}

// BenchmarkCollectDecode measures the strict decoding of a /collect body
// and of its events (user_data read into raw PII), without validation or
// hashing.
func BenchmarkCollectDecode(b *testing.B) {
	body := []byte(benchCollectBody(time.Now()))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req collectRequest
		if e := decodeStrict(body, &req, ""); e != nil {
			b.Fatal(e)
		}
		for _, raw := range req.Events {
			var ev collectEvent
			if e := decodeStrict(raw, &ev, "events[0]."); e != nil {
				b.Fatal(e)
			}
			var cd map[string]json.RawMessage
			_ = json.Unmarshal(ev.CustomData, &cd)
		}
	}
}
