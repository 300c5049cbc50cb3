package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// checkAnswer asserts a response is 2xx or 4xx (503 only when the fake
// queue is down, which the fuzzers never do) and JSON, or a 204 without a
// body.
func checkAnswer(t *testing.T, code int, body []byte) {
	t.Helper()
	if code >= 500 || code < 200 || (code >= 300 && code < 400) {
		t.Fatalf("status %d: %s", code, body)
	}
	if code == 204 {
		if len(body) != 0 {
			t.Fatalf("status 204 with a body: %q", body)
		}
		return
	}
	if !json.Valid(body) {
		t.Fatalf("status %d: body is not JSON: %q", code, body)
	}
	if code >= 400 && !strings.Contains(string(body), `"error":{"code":`) {
		t.Fatalf("status %d: not the error envelope: %s", code, body)
	}
}

func FuzzCollect(f *testing.F) {
	for _, s := range []string{
		purchaseBody,
		`{"events":[{"event_name":"PageView"}]}`,
		`{"events":[{"event_name":"A","user_data":{"em":["a@b.co",null],"ph":"0"}}]}`,
		`{"consent":{"ad_storage":"denied"},"events":[{"event_name":"A","custom_data":{"contents":[{"id":"1","quantity":2}]}}]}`,
		`{"vid":"1772366400000.1234567890","url":"https://shop.example/?fbclid=Zz","events":[{"event_name":"A","event_time":1772366400}]}`,
		`{"events":[{"event_name":"A","custom_data":{"value":1e400}}]}`,
		`{"events":[{"event_name":"A","user_data":{"db":"2/30/1990","ge":"x"}}]}`,
		`{"events":[`, `null`, `[]`, `{}`, `""`, "\x00",
	} {
		f.Add(s, "https://shop.example", "_fbp=fb.1.1.1")
	}
	tg := newTestGateway(f, nil)
	f.Fuzz(func(t *testing.T, body, origin, cookie string) {
		hdr := []string{"Cookie", cookie}
		if origin != "" {
			hdr = append(hdr, "Origin", origin)
		}
		w := tg.do("POST", "/collect", body, hdr...)
		checkAnswer(t, w.Code, w.Body.Bytes())
		for _, ev := range tg.q.all() {
			if strings.ContainsAny(ev.UserData.ClientIPAddress, ", ") {
				t.Fatalf("client ip %q", ev.UserData.ClientIPAddress)
			}
		}
		tg.q.mu.Lock()
		tg.q.calls = nil
		tg.q.mu.Unlock()
	})
}

func FuzzServerEvents(f *testing.F) {
	ts := testNow.Unix()
	for _, s := range []string{
		fmt.Sprintf(`{"data":[{"event_name":"Lead","event_time":%d,"action_source":"website"}]}`, ts),
		fmt.Sprintf(`{"test_event_code":"T1","data":[{"event_name":"Purchase","event_time":%d,"action_source":"email","user_data":{"em":"x@y.zz","external_id":["1","2"]},"custom_data":{"value":1,"currency":"usd"}}]}`, ts),
		fmt.Sprintf(`{"data":[{"event_name":"A","event_time":%d,"action_source":"other","data_processing_options":[],"data_processing_options_country":0}]}`, ts),
		`{"data":[{}]}`, `{"data":null}`, `{`, `1`,
	} {
		f.Add(s)
	}
	tg := newTestGateway(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		w := tg.do("POST", "/v1/events", body, "Authorization", "Bearer "+testIngestKey)
		checkAnswer(t, w.Code, w.Body.Bytes())
		tg.q.mu.Lock()
		tg.q.calls = nil
		tg.q.mu.Unlock()
	})
}
