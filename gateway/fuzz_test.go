package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

// knownReasons are the reasons an answer may give for a fix or a refusal.
var knownReasons = map[string]bool{
	reasonNumericString: true, reasonDecimalComma: true, reasonThousandsSep: true, reasonAmbiguousNumber: true,
	reasonNumberToString: true, reasonFloatToInteger: true, reasonNotInteger: true, reasonCurrencySymbol: true,
	reasonAmbiguousCurrency: true, reasonLowercase: true, reasonTrimmed: true, reasonStringifiedArray: true,
	reasonStringifiedObject: true, reasonWrapped: true, reasonTruncated: true, reasonTooLong: true, reasonTooLarge: true,
	reasonUnknownField: true, reasonUnusable: true, reasonInvalid: true, reasonMilliseconds: true, reasonClockSkew: true,
	reasonClockAhead: true, reasonGeolocate: true, reasonNotCookieSafe: true,
}

var knownRefusals = map[string]bool{refusedMissing: true, refusedInvalid: true, refusedNotObject: true, refusedTooOld: true}

// sentEvents counts the events of a /collect body the way a browser means
// them: an events list, or a list sent as a JSON string; -1 when the body
// is not an object with such a list (a problem of the whole request).
func sentEvents(body string) int {
	var env map[string]json.RawMessage
	if json.Unmarshal([]byte(body), &env) != nil {
		return -1
	}
	raw := env["events"]
	var s string
	if json.Unmarshal(raw, &s) == nil {
		raw = json.RawMessage(s)
	}
	var events []json.RawMessage
	if json.Unmarshal(raw, &events) != nil {
		return -1
	}
	return len(events)
}

// FuzzCollectShopData fuzzes the browser path with shop-shaped bodies (the
// rows of testdata/shopdata.json, plain and with their lists stringified):
// never a panic or a 5xx; a body that is a JSON object with 1 to 50 events
// is never refused as a whole: every event is accepted or refused with a
// known reason, and exactly the accepted ones are stored, each valid.
func FuzzCollectShopData(f *testing.F) {
	for _, row := range readShopData(f) {
		events := `[` + string(row.Wire) + `,{"event_name":"PageView"}]`
		f.Add(`{"events":` + events + `}`)
		f.Add(`{"debug":true,"sent_at":1772366400000,"events":` + strconv.Quote(events) + `}`)
	}
	f.Add(purchaseBody)
	f.Add(`{"url":"https://shop.example/?gclid=a%22b","events":[{"event_name":"PageView","event_time":"1772366400"}]}`)
	f.Add(`{"consent":{"ad_storage":"yes"},"vid":7,"events":[{"event_name":" Lead ","user_data":{"em":["a@b.co",5,null]}}]}`)
	tg := newTestGateway(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		tg.q.mu.Lock()
		tg.q.calls = nil
		tg.q.mu.Unlock()
		w := tg.do("POST", "/collect", body, "Origin", "https://shop.example")
		checkAnswer(t, w.Code, w.Body.Bytes())
		n := sentEvents(body)
		if n < 1 || n > DefaultMaxEvents || len(body) > DefaultMaxBodyBytes {
			return
		}
		stored := tg.q.all()
		switch w.Code {
		case http.StatusNoContent:
			if len(stored) != n {
				t.Fatalf("204 for %d events, %d stored", n, len(stored))
			}
		case http.StatusOK:
			var a collectAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || len(a.Events) != n || a.Accepted != len(stored) || a.Accepted+a.Rejected != n {
				t.Fatalf("answer %s for %d events, %d stored", w.Body, n, len(stored))
			}
			for _, o := range a.Events {
				switch {
				case o.Status == statusRejected && (o.Error == nil || !knownRefusals[o.Error.Reason]):
					t.Fatalf("refusal without a known reason: %+v", o)
				case o.Status != statusRejected && o.Status != statusAccepted && o.Status != statusFixed:
					t.Fatalf("status %q", o.Status)
				}
				for _, fx := range o.Fixes {
					if !knownReasons[fx.Reason] || metricField(fx.Field) == "" {
						t.Fatalf("fix %+v", fx)
					}
				}
			}
		default:
			t.Fatalf("a body of %d events refused whole: %d %s", n, w.Code, w.Body)
		}
		for _, ev := range stored {
			if !validEventName(ev.EventName) || ev.EventID == "" || len(ev.EventSourceURL) > maxURLLen ||
				ev.EventTime < testNow.Add(-maxPhysicalEventAge).Unix() || ev.EventTime > testNow.Add(maxFutureSkew).Unix() ||
				(ev.CustomData != nil && ev.CustomData.Currency != "" && !isCurrency(ev.CustomData.Currency)) {
				t.Fatalf("stored an invalid event %+v", ev)
			}
		}
	})
}

// FuzzCAPIBody fuzzes the drop-in endpoint's form-encoded and multipart
// bodies (and JSON): never a panic or a 5xx, and always Meta's answer
// shape.
func FuzzCAPIBody(f *testing.F) {
	data := fmt.Sprintf(`[{"event_name":"Purchase","event_time":%d,"action_source":"website","event_source_url":"https://shop.example/t",`+
		`"user_data":{"client_user_agent":"UA","client_ip_address":"203.0.113.9","zp":12345},"custom_data":{"value":"5","currency":"EUR","content_ids":[1,2]}}]`, testNow.Unix())
	for _, enc := range []string{"json", "form", "multipart"} {
		body, ct := encode(f, enc, map[string]string{"data": data, "access_token": testIngestKey, "test_event_code": "T1"})
		f.Add(ct, body)
		body, ct = encode(f, enc, map[string]string{"data": `[{"event_name":`, "access_token": testIngestKey})
		f.Add(ct, body)
	}
	f.Add("multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n[]\r\n--x--")
	f.Add("multipart/form-data", "--x\r\n")
	f.Add("application/x-www-form-urlencoded", "access_token=%zz&data=%5B")
	tg := newTestGateway(f, func(o *Options) { o.Sites = staticSites{capiSnapshot(f)} })
	f.Fuzz(func(t *testing.T, contentType, body string) {
		w := tg.do("POST", "/v24.0/111/events", body, "Content-Type", contentType)
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		var a capiAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
			t.Fatalf("not JSON: %q", w.Body)
		}
		switch {
		case w.Code == http.StatusOK && (a.EventsReceived == nil || a.Messages == nil || a.Error != nil):
			t.Fatalf("200 without Meta's success shape: %s", w.Body)
		case w.Code != http.StatusOK && (a.Error == nil || a.Error.Code == 0 || a.Error.FBTraceID == ""):
			t.Fatalf("%d without Graph's error: %s", w.Code, w.Body)
		}
		tg.q.mu.Lock()
		tg.q.calls = nil
		tg.q.mu.Unlock()
	})
}
