package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/tagway/tagway/routing/model"
)

const otherIngestKey = "other-ingest-key-0123456789"

// capiSnapshot: site shop owns Meta pixels 111 and 222 and a non-Meta
// destination; site uk owns pixel 333.
func capiSnapshot(t testing.TB) *model.Snapshot {
	t.Helper()
	snap, err := model.NewSnapshot(model.Config{
		Sites: []model.Site{
			{ID: "shop", Domains: []string{"shop.example"}, IngestKeys: []string{testIngestKey}},
			{ID: "uk", Domains: []string{"shop.co.uk"}, IngestKeys: []string{otherIngestKey}},
		},
		Destinations: []model.Destination{
			{ID: "meta-a", SiteID: "shop", Type: "meta", Settings: json.RawMessage(`{"pixel_id":"111","access_token":"EAAa"}`)},
			{ID: "meta-b", SiteID: "shop", Type: "meta", Settings: json.RawMessage(`{"pixel_id":"222"}`)},
			{ID: "hook", SiteID: "shop", Type: "webhook", Settings: json.RawMessage(`{"pixel_id":"444"}`)},
			{ID: "meta-uk", SiteID: "uk", Type: "meta", Settings: json.RawMessage(`{"pixel_id":"333"}`)},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func capiEvents(t testing.TB) string {
	return fmt.Sprintf(`[{"event_name":"Purchase","event_time":%d,"event_id":"order-7","action_source":"website",
		"event_source_url":"https://shop.example/thanks","user_data":{"em":"Jane@Example.com","client_user_agent":"UA/1",
		"client_ip_address":"203.0.113.9","fbp":"fb.1.1700000000000.42"},"custom_data":{"value":"10.50","currency":"usd"}}]`, testNow.Unix())
}

// encode builds a request body in one of Graph's three encodings.
func encode(t testing.TB, encoding string, params map[string]string) (body, contentType string) {
	t.Helper()
	switch encoding {
	case "json":
		m := map[string]any{}
		for k, v := range params {
			if k == "data" {
				m[k] = json.RawMessage(v)
			} else {
				m[k] = v
			}
		}
		b, _ := json.Marshal(m)
		return string(b), "application/json"
	case "form":
		v := url.Values{}
		for k, s := range params {
			v.Set(k, s)
		}
		return v.Encode(), "application/x-www-form-urlencoded"
	case "multipart":
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, s := range params {
			_ = mw.WriteField(k, s)
		}
		_ = mw.Close()
		return buf.String(), mw.FormDataContentType()
	}
	t.Fatalf("encoding %s", encoding)
	return "", ""
}

type capiAnswer struct {
	EventsReceived *int     `json:"events_received"`
	Messages       []string `json:"messages"`
	FBTraceID      string   `json:"fbtrace_id"`
	Error          *struct {
		Message   string `json:"message"`
		Type      string `json:"type"`
		Code      int    `json:"code"`
		Subcode   int    `json:"error_subcode"`
		UserTitle string `json:"error_user_title"`
		UserMsg   string `json:"error_user_msg"`
		FBTraceID string `json:"fbtrace_id"`
		Transient bool   `json:"is_transient"`
	} `json:"error"`
}

func TestCAPIEncodingsAndTokens(t *testing.T) {
	for _, encoding := range []string{"json", "form", "multipart"} {
		for _, place := range []string{"body", "query", "bearer", "oauth"} {
			t.Run(encoding+"/"+place, func(t *testing.T) {
				tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{capiSnapshot(t)} })
				params := map[string]string{"data": capiEvents(t), "test_event_code": "TEST42", "partner_agent": "woo-plugin"}
				path := "/v24.0/222/events"
				hdr := []string{}
				switch place {
				case "body":
					params["access_token"] = testIngestKey
				case "query":
					path += "?access_token=" + url.QueryEscape(testIngestKey)
				case "bearer":
					hdr = append(hdr, "Authorization", "Bearer "+testIngestKey)
				case "oauth":
					hdr = append(hdr, "Authorization", "OAuth "+testIngestKey)
				}
				body, ct := encode(t, encoding, params)
				w := tg.do("POST", path, body, append(hdr, "Content-Type", ct)...)
				var a capiAnswer
				if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != http.StatusOK {
					t.Fatalf("%d %s", w.Code, w.Body)
				}
				if a.EventsReceived == nil || *a.EventsReceived != 1 || a.Messages == nil || len(a.Messages) != 0 || a.FBTraceID == "" || a.Error != nil {
					t.Errorf("answer %s; want Meta's success shape", w.Body)
				}
				if !strings.Contains(w.Body.String(), `"messages":[]`) {
					t.Errorf("messages must be an empty array: %s", w.Body)
				}
				evs := tg.q.all()
				if len(evs) != 1 {
					t.Fatalf("%d events enqueued", len(evs))
				}
				ev := evs[0]
				if ev.EventID != "order-7" || ev.Context.SiteID != "shop" || ev.Context.TestEventCode != "TEST42" ||
					ev.Context.Source != "server" || *ev.CustomData.Value != 10.5 || ev.CustomData.Currency != "USD" ||
					len(ev.UserData.Em) != 1 || ev.UserData.Em[0] != sum("jane@example.com") || ev.UserData.Fbp != "fb.1.1700000000000.42" {
					t.Errorf("event %+v", ev)
				}
				if strings.Contains(tg.log.String(), testIngestKey) {
					t.Error("the token is in the logs")
				}
			})
		}
	}
}

func TestCAPIErrors(t *testing.T) {
	ok := func(mod func(map[string]string)) map[string]string {
		p := map[string]string{"data": capiEvents(t), "access_token": testIngestKey}
		if mod != nil {
			mod(p)
		}
		return p
	}
	old := strings.Replace(capiEvents(t), fmt.Sprint(testNow.Unix()), fmt.Sprint(testNow.Unix()-8*86400), 1)
	weak := fmt.Sprintf(`[{"event_name":"Lead","event_time":%d,"action_source":"other","user_data":{"client_user_agent":"UA"}}]`, testNow.Unix())
	cases := []struct {
		name, method, path string
		params             map[string]string
		queueErr           bool
		status, code, sub  int
		typ, userMsg       string
	}{
		{"wrong key", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["access_token"] = "EAAmetaToken-not-ours" }), false, 400, 190, 0, "OAuthException", ""},
		{"no key", "POST", "/v24.0/111/events", ok(func(p map[string]string) { delete(p, "access_token") }), false, 400, 190, 0, "OAuthException", ""},
		{"pixel of another site", "POST", "/v24.0/333/events", ok(nil), false, 400, 100, 33, "GraphMethodException", ""},
		{"unknown pixel", "POST", "/v24.0/999/events", ok(nil), false, 400, 100, 33, "GraphMethodException", ""},
		{"id of a non-Meta destination", "POST", "/v24.0/444/events", ok(nil), false, 400, 100, 33, "GraphMethodException", ""},
		{"GET", "GET", "/v24.0/111/events", nil, false, 400, 100, 33, "GraphMethodException", ""},
		{"bad version", "POST", "/24.0/111/events", ok(nil), false, 400, 2500, 0, "OAuthException", ""},
		{"no data", "POST", "/v24.0/111/events", ok(func(p map[string]string) { delete(p, "data") }), false, 400, 100, 0, "OAuthException", "data"},
		{"data not an array", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["data"] = `{"a":1}` }), false, 400, 100, 0, "OAuthException", "data"},
		{"unknown parameter", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["dataa"] = "x" }), false, 400, 100, 0, "OAuthException", "dataa"},
		{"unknown event field", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["data"] = strings.Replace(p["data"], `"event_id"`, `"eventid"`, 1) }),
			false, 400, 100, 0, "OAuthException", "data[0].eventid"},
		// tagway's consent extension belongs to /v1/events: Meta refuses the field, so does the drop-in.
		{"tagway's consent field", "POST", "/v24.0/111/events", ok(func(p map[string]string) {
			p["data"] = strings.Replace(p["data"], `"event_id"`, `"consent":{"ad_storage":"denied"},"event_id"`, 1)
		}), false, 400, 100, 0, "OAuthException", "data[0].consent"},
		{"request-level consent", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["consent"] = `{"ad_storage":"denied"}` }),
			false, 400, 100, 0, "OAuthException", "consent"},
		{"too old", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["data"] = old }), false, 400, 100, 2804003, "OAuthException", "data[0].event_time"},
		{"too little customer information", "POST", "/v24.0/111/events", ok(func(p map[string]string) { p["data"] = weak }),
			false, 400, 100, 2804050, "OAuthException", "data[0].user_data"},
		{"queue down", "POST", "/v24.0/111/events", ok(nil), true, 503, 2, 0, "OAuthException", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{capiSnapshot(t)} })
			if tc.queueErr {
				tg.q.err = errors.New("redis down")
			}
			body, ct := "", ""
			if tc.params != nil {
				body, ct = encode(t, "form", tc.params)
			}
			w := tg.do(tc.method, tc.path, body, "Content-Type", ct)
			var a capiAnswer
			if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Error == nil {
				t.Fatalf("%d %s: not Meta's error envelope", w.Code, w.Body)
			}
			e := a.Error
			if w.Code != tc.status || e.Code != tc.code || e.Subcode != tc.sub || e.Type != tc.typ || e.FBTraceID == "" || e.Message == "" {
				t.Errorf("%d %s; want %d code %d/%d %s", w.Code, w.Body, tc.status, tc.code, tc.sub, tc.typ)
			}
			if !strings.Contains(e.UserMsg, tc.userMsg) {
				t.Errorf("error_user_msg %q lacks %q", e.UserMsg, tc.userMsg)
			}
			if tc.code == 2 && (!e.Transient || w.Header().Get("Retry-After") == "") {
				t.Errorf("queue down must be transient with Retry-After: %s", w.Body)
			}
			if len(tg.q.all()) != 0 && !tc.queueErr {
				t.Error("a refused request enqueued events")
			}
			for _, secret := range []string{testIngestKey, "EAAmetaToken-not-ours"} {
				if strings.Contains(tg.log.String(), secret) || strings.Contains(w.Body.String(), secret) {
					t.Errorf("a token leaked into logs or the answer")
				}
			}
		})
	}
}

// The drop-in endpoint takes what Graph takes: numeric content_ids and
// ids, numeric strings for numbers; a customer-information value that
// cannot be used is dropped and said in messages, as Graph does.
func TestCAPIGraphLeniencies(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{capiSnapshot(t)} })
	data := fmt.Sprintf(`[{"event_name":"Purchase","event_time":%d,"event_id":77,"action_source":"website",
		"event_source_url":"https://shop.example/thanks","user_data":{"client_user_agent":"UA/1","client_ip_address":"203.0.113.9","fn":"🙂"},
		"custom_data":{"value":"10.50","currency":"usd","content_ids":[123,456],"contents":[{"id":123,"quantity":"1"}],"order_id":1001}}]`, testNow.Unix())
	for _, encoding := range []string{"json", "form", "multipart"} {
		body, ct := encode(t, encoding, map[string]string{"data": data, "access_token": testIngestKey})
		w := tg.do("POST", "/v24.0/111/events", body, "Content-Type", ct)
		var a capiAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || w.Code != 200 || a.EventsReceived == nil || *a.EventsReceived != 1 {
			t.Fatalf("%s: %d %s", encoding, w.Code, w.Body)
		}
		if len(a.Messages) != 1 || !strings.Contains(a.Messages[0], "data[0].user_data.fn") {
			t.Errorf("%s: messages %q", encoding, a.Messages)
		}
	}
	for _, ev := range tg.q.all() {
		if ev.EventID != "77" || fmt.Sprint(ev.CustomData.ContentIDs) != "[123 456]" || ev.CustomData.Contents[0].ID != "123" ||
			ev.CustomData.OrderID != "1001" || len(ev.UserData.Fn) != 0 {
			t.Errorf("event %+v", ev)
		}
	}
}

// The key comes before the body: a wrong key in the query or a header is
// refused before a byte of the body is read, and one in the body before
// its data is decoded (a body whose data would not parse still gets 190).
func TestCAPIChecksKeyFirst(t *testing.T) {
	tg := newTestGateway(t, func(o *Options) { o.Sites = staticSites{capiSnapshot(t)} })
	for _, where := range []struct{ path, header string }{
		{"/v24.0/111/events?access_token=wrong-key-wrong-key", ""},
		{"/v24.0/111/events", "Bearer wrong-key-wrong-key"},
	} {
		r := &countingReader{n: 2 << 20}
		req := newRequest("POST", where.path, r)
		if where.header != "" {
			req.Header.Set("Authorization", where.header)
		}
		w := recorder()
		tg.h.ServeHTTP(w, req)
		var a capiAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Error == nil || a.Error.Code != 190 {
			t.Errorf("%+v: %d %s", where, w.Code, w.Body)
		}
		if r.read != 0 {
			t.Errorf("%+v: read %d body bytes before checking the key", where, r.read)
		}
	}
	broken := `[{"event_name":` // data that would not parse
	for _, encoding := range []string{"json", "form"} {
		body, ct := encode(t, encoding, map[string]string{"access_token": "wrong-key-wrong-key", "data": broken})
		if encoding == "json" {
			body = `{"access_token":"wrong-key-wrong-key","data":[{"event_name":` + strings.Repeat(" ", 100) + `}`
		}
		w := tg.do("POST", "/v24.0/111/events", body, "Content-Type", ct)
		var a capiAnswer
		if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil || a.Error == nil || a.Error.Code != 190 {
			t.Errorf("%s body with a wrong key: %d %s; want 190 before the data is read", encoding, w.Code, w.Body)
		}
	}
}
