package destinations

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkDecodeEvents asserts that DecodeEvents gives what json.Unmarshal
// gives (events and error), and reports whether the one-pass path read
// data.
func checkDecodeEvents(t *testing.T, data []byte) bool {
	t.Helper()
	var want []Event
	werr := json.Unmarshal(data, &want)
	got, gerr := DecodeEvents(data)
	if (werr == nil) != (gerr == nil) || (werr != nil && werr.Error() != gerr.Error()) {
		t.Fatalf("%q: error %v; json.Unmarshal: %v", data, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got  %#v\n want %#v", data, got, want)
	}
	_, fast := decodeOnePass(data)
	if fast && werr != nil {
		t.Fatalf("%q: the one-pass path accepted what json.Unmarshal refuses (%v)", data, werr)
	}
	return fast
}

// appendEvents writes evs as the queue does (routing's encodeEvents).
func appendEvents(t testing.TB, evs []Event) []byte {
	t.Helper()
	b := []byte{'['}
	for i := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = evs[i].AppendJSON(b); err != nil {
			t.Fatal(err)
		}
	}
	return append(b, ']')
}

// decodeTestEvent is a queued browser purchase, as the gateway makes it.
func decodeTestEvent(n int) Event {
	value, price, qty, items := 42.5+float64(n%100), 19.99, 2, 3
	return Event{
		EventName: "Purchase", EventTime: 1772366400 + int64(n), ActionSource: "website",
		EventID:        fmt.Sprintf("3f0c2a9e-%04x-4b1d-9c2e-%012d", n%65536, n),
		EventSourceURL: "https://shop.example/checkout/thank-you?utm_source=bench&utm_medium=cpc&n=" + fmt.Sprint(n),
		ReferrerURL:    "https://www.google.com/",
		UserData: UserData{
			Em: []string{strings.Repeat("5e", 32)}, Ph: []string{strings.Repeat("73", 32)},
			ExternalID:      []string{strings.Repeat("1f", 32), strings.Repeat("2a", 32)},
			ClientIPAddress: "203.0.113.42",
			ClientUserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			Fbp:             "fb.1.1732752000000.482913756104", Fbc: "fb.1.1732752000000.IwAR2xyzABCDEF",
		},
		CustomData: &CustomData{
			Value: &value, Currency: "EUR", ContentIDs: []string{"sku-" + fmt.Sprint(n%1000), "sku-42"},
			Contents: []Content{
				{ID: "sku-42", Quantity: &qty, ItemPrice: &price, Title: "Blue mug"},
				{ID: "sku-" + fmt.Sprint(n%1000), Quantity: &qty, DeliveryCategory: "home_delivery"},
			},
			ContentType: "product", NumItems: &items, OrderID: "order-" + fmt.Sprint(n),
		},
		Context: Context{
			SiteID: "shop", ReceivedAt: 1772366400123 + int64(n), Source: "browser",
			Consent:   Consent{AdStorage: Granted, AdUserData: Granted, AdPersonalization: Granted, AnalyticsStorage: Granted},
			VisitorID: "1790000000000.123456789012", Country: "DE", Region: "BE",
			ClickIDs: map[string]ClickID{"gclid": {Value: "Cj0KCQiA", At: 1772366000000}, "ttclid": {Value: "E.C.P", At: 1}},
			Cookies:  map[string]string{"_ga": "GA1.1.123.456", "_ttp": "abc"},
		},
	}
}

// decodeTestEvents are events with every field, without any, and in
// between, with the strings and numbers the encoders treat specially.
func decodeTestEvents() map[string]Event {
	var full Event
	fill(reflect.ValueOf(&full).Elem(), "x")
	full.CustomData.Custom["value"] = json.RawMessage(`1`) // not written: a typed key
	odd := "é 日本 😀 \u2028\u2029 <a href=\"x\">&amp;</a> \\ / \x00\x01\x1f\x7f \b\f\n\r\t \xff\xed\xa0\x80 \ufffd"
	return map[string]Event{
		"every field": full,
		"zero":        {},
		"purchase":    decodeTestEvent(1),
		"page view": {
			EventName: "PageView", EventTime: 1772366400, EventID: "1c2d", ActionSource: "website",
			EventSourceURL: "https://shop.example/", UserData: UserData{ClientUserAgent: "Mozilla/5.0"},
			Context: Context{SiteID: "shop", Source: "browser", Anonymous: true, Country: "US", Region: "CA", Incomplete: IncompleteValue,
				Consent: Consent{AdStorage: Denied, AdUserData: Denied}},
		},
		"server lead": {
			EventName: "Lead", EventTime: -1, EventID: "l-1", ActionSource: "system_generated", OptOut: true,
			UserData: UserData{Em: []string{"a", "b", "c"}, Fn: []string{"f"}, Ln: []string{"l"}, Ge: []string{"m"},
				Db: []string{"19700101"}, Ct: []string{"berlin"}, St: []string{"be"}, Zp: []string{"10115"},
				Country: []string{"de"}, SubscriptionID: "s", FbLoginID: "1", LeadID: "2"},
			DataProcessingOptions:        []string{"LDU"},
			DataProcessingOptionsCountry: ptr(0), DataProcessingOptionsState: ptr(1000),
			Context: Context{SiteID: "crm", Source: "server", TestEventCode: "TEST123", Route: "r-1"},
		},
		"odd strings": {
			EventName: odd, EventID: odd, EventSourceURL: "https://a.example/?q=" + odd,
			UserData:   UserData{Em: []string{odd, ""}, ClientUserAgent: odd},
			CustomData: &CustomData{Currency: "eur" + odd, ContentName: odd, Contents: []Content{{ID: odd, Title: odd}}},
			Context: Context{SiteID: odd, VisitorID: odd, ClickIDs: map[string]ClickID{odd: {Value: odd}},
				Cookies: map[string]string{odd: odd, "": ""}},
		},
		"custom properties": {
			EventName: "Purchase",
			CustomData: &CustomData{Value: ptr(9.5), Custom: map[string]json.RawMessage{
				"gift_wrap": json.RawMessage(`true`), "note": json.RawMessage(`"a \"b\" <c> \u00e9"`),
				"tags": json.RawMessage(`["x",{"y":[1,2.5e-3,null]},[]]`), "n": json.RawMessage(`-0.5E+10`),
				"nothing": json.RawMessage(`null`), "é": json.RawMessage(`{}`),
			}},
		},
		"numbers": {
			EventTime: 9223372036854775807, Context: Context{ReceivedAt: -9223372036854775808},
			CustomData: &CustomData{Value: ptr(1e-7), PredictedLTV: ptr(1e21), NumItems: ptr(-0),
				Contents: []Content{{ItemPrice: ptr(-0.000001), Quantity: ptr(-3)}, {ItemPrice: ptr(123456789.125)}, {}}},
		},
		"empty custom data": {CustomData: &CustomData{}},
		"empty slices":      {DataProcessingOptions: []string{}, UserData: UserData{Em: []string{}}, CustomData: &CustomData{ContentIDs: []string{}}},
		"empty maps":        {Context: Context{ClickIDs: map[string]ClickID{}, Cookies: map[string]string{}}},
		"empty strings":     {DataProcessingOptions: []string{""}, UserData: UserData{Ph: []string{"", ""}}},
	}
}

// Every array the encoders write is read in one pass, to what
// json.Unmarshal reads: AppendJSON (the queue's writer), json.Marshal
// (older entries: HTML escaped) and indented JSON.
func TestDecodeEventsMatchesUnmarshal(t *testing.T) {
	events := decodeTestEvents()
	var all []Event
	for name, ev := range events {
		all = append(all, ev)
		checkEncodings(t, name, []Event{ev})
	}
	checkEncodings(t, "all", all)
	many := make([]Event, 100)
	for i := range many {
		many[i] = decodeTestEvent(i)
	}
	checkEncodings(t, "100 purchases", many)
	checkEncodings(t, "no events", []Event{})
}

func checkEncodings(t *testing.T, name string, evs []Event) {
	t.Helper()
	marshalled, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	indented, err := json.MarshalIndent(evs, " ", "\t")
	if err != nil {
		t.Fatal(err)
	}
	for form, data := range map[string][]byte{"AppendJSON": appendEvents(t, evs), "json.Marshal": marshalled, "indented": indented} {
		if !checkDecodeEvents(t, data) {
			t.Errorf("%s, %s: not read in one pass: %s", name, form, data)
		}
	}
}

// decodeCases are arrays DecodeEvents reads in one pass (fast) or leaves
// to json.Unmarshal; either way the result is json.Unmarshal's.
var decodeCases = []struct {
	data string
	fast bool
}{
	{`[]`, true},
	{` [ ] `, true},
	{`[{}]`, true},
	{`[{},{}]`, true},
	{`[{"event_name":"A","event_time":1,"tw":{"site":"s","consent":{}}}]`, true},
	{`[{"tw":{"consent":{"ad_storage":"granted","ad_storage":"denied"}}}]`, false}, // repeated key
	{`[{"event_name":"\u0041\ud83d\ude00\ud83d\u0041\ude00\\\/\"\b\f\n\r\t"}]`, true},
	{`[{"event_name":"\ud800\ud800"}]`, true},
	{`[{"event_name":"a\u00"}]`, false}, // invalid escape
	{`[{"event_name":"a\x"}]`, false},
	{`[{"event_name":"a\'"}]`, false},
	{"[{\"event_name\":\"a\x01\"}]", false}, // control character
	{"[{\"event_name\":\"\xff\xfe\"}]", true},
	{`[{"event_name":"a}]`, false}, // unterminated
	{`[{"event\u005fname":"A"}]`, true},
	{`[{"Event_Name":"A"}]`, false}, // case-folded key
	{`[{"unknown":1}]`, false},
	{`[{"event_name":null}]`, false},
	{`[{"event_name":1}]`, false},
	{`[{"event_time":1.0}]`, false},
	{`[{"event_time":1e3}]`, false},
	{`[{"event_time":"1"}]`, false},
	{`[{"event_time":-0}]`, true},
	{`[{"event_time":01}]`, false},
	{`[{"event_time":9223372036854775808}]`, false}, // overflows int64
	{`[{"event_time":-}]`, false},
	{`[{"opt_out":true,"tw":{"anonymous":false}}]`, true},
	{`[{"opt_out":tru}]`, false},
	{`[{"opt_out":truex}]`, false},
	{`[{"opt_out":1}]`, false},
	{`[{"data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000}]`, true},
	{`[{"data_processing_options_country":1.5}]`, false},
	{`[{"data_processing_options":[1]}]`, false},
	{`[{"data_processing_options":["a",]}]`, false},
	{`[{"data_processing_options":[,"a"]}]`, false},
	{`[{"user_data":{"em":["a"],"em":["b"]}}]`, false},
	{`[{"user_data":{"em":"a"}}]`, false},
	{`[{"user_data":null}]`, false},
	{`[{"custom_data":null}]`, false},
	{`[{"custom_data":{"value":"142.52"}}]`, false}, // numeric string
	{`[{"custom_data":{"value":1e400}}]`, false},    // out of range
	{`[{"custom_data":{"value":1E-2,"predicted_ltv":-0.0,"currency":"eur"}}]`, true},
	{`[{"custom_data":{"value":1.}}]`, false},
	{`[{"custom_data":{"value":.5}}]`, false},
	{`[{"custom_data":{"num_items":2.0}}]`, false},
	{`[{"custom_data":{"gift":{"a" : [1, "x"] } , "b":null}}]`, true},
	{`[{"custom_data":{"VALUE":1}}]`, false},     // matches value but for case
	{`[{"custom_data":{"ſtatus":"x"}}]`, false},  // matches status with Unicode folding
	{`[{"custom_data":{"x":1,"x":2}}]`, false},   // repeated custom key
	{`[{"custom_data":{"val\u0075e":1}}]`, true}, // escaped typed key
	{`[{"custom_data":{"x":[1,}}]`, false},
	{`[{"custom_data":{"x":{"a"}}}]`, false},
	{`[{"custom_data":{"x":nul}}]`, false},
	{`[{"custom_data":{"x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}}]`, false}, // deep
	{`[{"custom_data":{"contents":[{"id":"a","quantity":1,"item_price":2.5,"title":"t","delivery_category":"d"},{}]}}]`, true},
	{`[{"custom_data":{"contents":[{"id":"a","sku":1}]}}]`, false},
	{`[{"custom_data":{"contents":{}}}]`, false},
	{`[{"tw":{"click_ids":{"gclid":{"v":"a","at":1},"gclid":{"v":"b"}}}}]`, true}, // the last wins, as in a map
	{`[{"tw":{"click_ids":{"gclid":{"v":"a","t":1}}}}]`, false},
	{`[{"tw":{"cookies":{"_ga":"a","_ga":"b","\u00e9":"c"}}}]`, true},
	{`[{"tw":{"cookies":{"_ga":1}}}]`, false},
	{`[{"tw":{"consent":{"ad_storage":"maybe"}}}]`, true},
	{`[{"tw":{"received_at":1,"site":"s","source":"x","test_event_code":"T","country":"c","region":"r","route":"q","vid":"v"}}]`, true},
	{`[{"tw":{"site":"s"}},]`, false},
	{`[{"event_name":"A"}] x`, false}, // trailing data
	{`[{"event_name":"A"}`, false},
	{`[{"event_name":"A",}]`, false},
	{`[{"event_name" "A"}]`, false},
	{`[null]`, false},
	{`null`, false},
	{`{}`, false},
	{``, false},
	{`[1]`, false},
}

func TestDecodeEventsCases(t *testing.T) {
	for _, tc := range decodeCases {
		if got := checkDecodeEvents(t, []byte(tc.data)); got != tc.fast {
			t.Errorf("%s: one pass = %v, want %v", tc.data, got, tc.fast)
		}
	}
}

// The events share slabs; an append to one event's slice never changes
// another event.
func TestDecodeEventsSlicesDoNotAlias(t *testing.T) {
	evs, err := DecodeEvents(appendEvents(t, []Event{decodeTestEvent(1), decodeTestEvent(2)}))
	if err != nil {
		t.Fatal(err)
	}
	em := evs[1].UserData.Em[0]
	evs[0].UserData.Em = append(evs[0].UserData.Em, "x")
	evs[0].CustomData.Contents = append(evs[0].CustomData.Contents, Content{ID: "x"})
	*evs[0].CustomData.Value = -1
	if evs[1].UserData.Em[0] != em || evs[1].UserData.Ph[0] != strings.Repeat("73", 32) ||
		evs[1].CustomData.Contents[0].ID != "sku-42" || *evs[1].CustomData.Value != 44.5 {
		t.Fatalf("changing one event changed another: %+v", evs[1])
	}
}

func FuzzDecodeEvents(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.data))
	}
	for _, ev := range decodeTestEvents() {
		f.Add(appendEvents(f, []Event{ev}))
		if b, err := json.Marshal([]Event{ev}); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkDecodeEvents(t, data) })
}

// BenchmarkDecodeEvents reads an entry of 32 queued purchases, as the
// dispatcher does, in one pass and with json.Unmarshal.
func BenchmarkDecodeEvents(b *testing.B) {
	evs := make([]Event, 32)
	for i := range evs {
		evs[i] = decodeTestEvent(i)
	}
	data := appendEvents(b, evs)
	for _, bc := range []struct {
		name   string
		decode func([]byte) ([]Event, error)
	}{
		{"one-pass", DecodeEvents},
		{"json.Unmarshal", func(data []byte) ([]Event, error) {
			var evs []Event
			return evs, json.Unmarshal(data, &evs)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
