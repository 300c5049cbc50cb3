package gateway

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

// strictCollect decodes body the way collectEvents does without the fast
// path.
func strictCollect(body []byte) (collectRequest, []collectEvent, bool) {
	var req collectRequest
	if e := decodeStrict(body, &req, ""); e != nil {
		return req, nil, false
	}
	var events []collectEvent
	for _, raw := range req.Events {
		var ev collectEvent
		if e := decodeStrict(raw, &ev, "events[0]."); e != nil {
			return req, nil, false
		}
		events = append(events, ev)
	}
	req.Events = nil
	return req, events, true
}

// checkFastCollect asserts that when fastCollect accepts body, decodeStrict
// accepts it too with the same result, and reports whether it was accepted.
func checkFastCollect(t *testing.T, body []byte) bool {
	t.Helper()
	var req collectRequest
	fast, ok := fastCollect(body, &req, DefaultMaxEvents)
	if !ok {
		return false
	}
	sreq, sevents, sok := strictCollect(body)
	if !sok {
		t.Fatalf("fast path accepted what decodeStrict refuses: %q", body)
	}
	if len(sevents) == 0 {
		sevents = fast[:0:0]
	}
	// custom_data decoded in place must be what decoding its bytes gives,
	// and fastEventJSON must find each event's JSON.
	for i := range fast {
		var again collectEvent
		if e := decodeStrict(fastEventJSON(body, i), &again, ""); e != nil || again.EventName != fast[i].EventName {
			t.Fatalf("event %d's JSON %q does not decode to it: %v", i, fastEventJSON(body, i), e)
		}
		if cd := fast[i].customData; cd != nil {
			want, e := decodeCustomData("", fast[i].CustomData, nil)
			if e != nil && e.Field != "custom_data.currency" {
				t.Fatalf("custom_data decoded in place from %q, which decodeCustomData refuses: %+v", fast[i].CustomData, e)
			}
			if e == nil && !reflect.DeepEqual(cd, want) {
				t.Fatalf("custom_data %q decoded in place as %#v; decodeCustomData: %#v", fast[i].CustomData, cd, want)
			}
			fast[i].customData = nil
		}
	}
	if !reflect.DeepEqual(req, sreq) {
		t.Fatalf("request differs for %q:\nfast   %#v\nstrict %#v", body, req, sreq)
	}
	if !reflect.DeepEqual(fast, sevents) {
		t.Fatalf("events differ for %q:\nfast   %#v\nstrict %#v", body, fast, sevents)
	}
	return true
}

var fastCollectCases = []struct {
	body string
	fast bool // the fast path must take it
}{
	{purchaseBody, true},
	{benchCollectBody(time.Unix(1772366400, 0)), true},
	{`{"events":[{"event_name":"PageView"}]}`, true},
	{` { "vid" : "1.2" , "events" : [ { "event_name" : "A" , "event_time" : -0 } ] } ` + "\n", true},
	{`{"events":[]}`, true},
	{`{"consent":null,"events":[{"event_name":"A","user_data":null,"custom_data":null,"event_id":null,"opt_out":null}]}`, true},
	{`{"consent":{},"events":[{"event_name":"A","user_data":{},"opt_out":true,"data_processing_options":[],"data_processing_options_country":0,"data_processing_options_state":1000}]}`, true},
	{`{"events":[{"event_name":"A","user_data":{"em":["a@b.co","c@d.ee"],"ph":null,"fn":[],"zz":"x"}}]}`, true},
	{`{"events":[{"event_name":"A","custom_data":{"a":[1,-2.5e-3,{"b":"\u00e9\n\"x"}],"c":true,"d":false,"e":null,"f":"Größe"}}]}`, true},
	{`{"events":[{"event_name":"A","custom_data":"x"}]}`, true},
	{`{"url":"https://shop.example/ä","events":[{"event_name":"A"},{"event_name":"B","event_time":1772366400}]}`, true},
	{`{"events":[{"event_name":"A","data_processing_options":["LDU"],"data_processing_options_country":1,"data_processing_options_state":1000}]}`, true},
	{`{"events":[{"event_name":"A","opt_out":false,"action_source":"website","referrer_url":"https://a.example/","event_source_url":"https://b.example/"}]}`, true},
	{`{"sent_at":1772366400000,"debug":true,"events":[{"event_name":"A"}]}`, true},
	{`{"sent_at":null,"debug":null,"events":[{"event_name":"A"}]}`, true},

	// Valid but unusual: decodeStrict decides.
	{`{"VID":"1.2","events":[{"event_name":"A"}]}`, false},
	{`{"vid":"a","vid":"b","events":[{"event_name":"A"}]}`, false},
	{`{"events":[{"event_name":"A\"B"}]}`, false},
	{`{"events":[{"event_name":"A","user_data":{"em":["a",null]}}]}`, false},
	{`{"events":[{"event_name":"A","user_data":{"em":"a","em":"b"}}]}`, false},
	{`{"events":[{"event_name":"A","event_time":1.0}]}`, false},
	{`{"events":[{"event_name":"A","event_time":1e3}]}`, false},
	{`{"events":[null]}`, false},
	{`{"sent_at":1.5,"events":[{"event_name":"A"}]}`, false},
	{`{"sent_at":"1772366400000","events":[{"event_name":"A"}]}`, false},
	{`{"debug":1,"events":[{"event_name":"A"}]}`, false},
	{`{"events":[` + strings.Repeat(`{"event_name":"A"},`, DefaultMaxEvents) + `{"event_name":"A"}]}`, false},
	{`{"events":null}`, false},
	{`null`, false},
	{"{\"events\":[{\"event_name\":\"A\xff\"}]}", false},
	{`{"events":[{"event_name":"A","custom_data":{"\u0061":1}}]}`, false},

	// Invalid: decodeStrict reports it.
	{`{"events":[{"event_name":"A"}]} x`, false},
	{`{"events":[{"event_name":"A"}]`, false},
	{`{"events":[{"event_name":"A","custom_data":{"a":01}}]}`, false},
	{`{"events":[{"event_name":"A","custom_data":{"a":"\x"}}]}`, false},
	{`{"events":[{"event_name":"A","custom_data":{"a":1.}}]}`, false},
	{`{"events":[{"event_name":"A","custom_data":{"a":[1,]}}]}`, false},
	{`{"events":[{"event_name":"A","custom_data":{"a":tru}}]}`, false},
	{`{"events":[{"event_name":"A","unknown":1}]}`, false},
	{`{"events":[{"event_name":1}]}`, false},
	{`{"events":[{"event_name":"A","opt_out":"yes"}]}`, false},
	{`{"events":[{"event_name":"A","data_processing_options_country":99999999999999999999}]}`, false},
	{"", false},
	{"\x00", false},
}

func TestFastCollectMatchesStrict(t *testing.T) {
	for _, tc := range fastCollectCases {
		if got := checkFastCollect(t, []byte(tc.body)); got != tc.fast {
			t.Errorf("fast path taken = %v, want %v for %q", got, tc.fast, tc.body)
		}
	}
}

func FuzzFastCollect(f *testing.F) {
	for _, tc := range fastCollectCases {
		f.Add(tc.body)
	}
	f.Fuzz(func(t *testing.T, body string) {
		checkFastCollect(t, []byte(body))
	})
}

// decodeCustomData calls CustomData.UnmarshalJSON directly on bytes the
// body's decoder checked; its errors must be json.Unmarshal's.
func TestDecodeCustomDataErrorsAsUnmarshal(t *testing.T) {
	for _, raw := range []string{
		`{"value":true}`, `{"value":"x"}`, `{"num_items":1.5}`, `{"contents":[{"id":1}]}`, `{"contents":{}}`,
		`{"content_ids":"a","x":1}`, `{"currency":5}`, `{"value":1e400}`, `{"predicted_ltv":"1e400"}`,
	} {
		_, got := decodeCustomData("events[0].", json.RawMessage(raw), nil)
		var cd destinations.CustomData
		err := json.Unmarshal([]byte(raw), &cd)
		if err == nil || got == nil {
			t.Fatalf("%s: want an error from both, got %v and %v", raw, got, err)
		}
		if want := jsonError(err, "events[0].custom_data."); *got != *want {
			t.Errorf("%s:\n got  %+v\n want %+v", raw, *got, *want)
		}
	}
}

// BenchmarkCollectFastDecode measures fastCollect on the bench body: the
// decoding /collect does for a browser's body (BenchmarkCollectDecode
// measures the strict path it falls back to).
func BenchmarkCollectFastDecode(b *testing.B) {
	body := []byte(benchCollectBody(time.Now()))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var req collectRequest
		if _, ok := fastCollect(body, &req, DefaultMaxEvents); !ok {
			b.Fatal("not decoded")
		}
	}
}

// checkFastCustomData asserts that when fastCustomData accepts raw,
// CustomData.UnmarshalJSON accepts it too with the same result, and
// reports whether it was accepted.
func checkFastCustomData(t *testing.T, raw []byte) bool {
	t.Helper()
	fast, ok := fastCustomData(raw)
	if !ok {
		return false
	}
	var want destinations.CustomData
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatalf("fast path accepted what UnmarshalJSON refuses (%v): %q", err, raw)
	}
	if !reflect.DeepEqual(*fast, want) {
		t.Fatalf("custom_data differs for %q:\nfast      %#v\nunmarshal %#v", raw, *fast, want)
	}
	return true
}

var fastCustomDataCases = []struct {
	raw  string
	fast bool // the fast path must take it
}{
	{`{"value":398.9,"currency":"EUR","content_ids":["sku-878","sku-42"],"contents":[{"id":"sku-42","quantity":1}],"content_type":"product","num_items":2,"order_id":"45-878"}`, true},
	{`{}`, true},
	{` { "value" : -0.5e-3 , "predicted_ltv" : 12 , "num_items" : 0 } `, true},
	{`{"value":null,"currency":null,"content_ids":null,"contents":null,"num_items":null,"status":null}`, true},
	{`{"content_ids":[],"contents":[]}`, true},
	{`{"contents":[{"id":"a","quantity":2,"item_price":9.99,"delivery_category":"home_delivery","title":"Größe"},{}]}`, true},
	{`{"contents":[{"id":null,"quantity":null,"item_price":null}]}`, true},
	{`{"content_name":"x","content_category":"y","search_string":"z","status":"s","delivery_category":"curbside"}`, true},

	// Valid but unusual, or invalid: UnmarshalJSON decides.
	{`{"value":"12.5"}`, false},
	// A code in lower case: the browser path records that it fixed it.
	{`{"value":1,"currency":"eur"}`, false},
	{`{"value":1e400}`, false},
	{`{"num_items":1.5}`, false},
	{`{"num_items":99999999999999999999}`, false},
	{`{"custom_prop":1}`, false},
	{`{"value":1,"value":2}`, false},
	{`{"contents":[{"id":"a","id":"b"}]}`, false},
	{`{"contents":[{"id":"a","extra":1}]}`, false},
	{`{"contents":[null]}`, false},
	{`{"content_ids":["a",null]}`, false},
	{`{"content_ids":"a"}`, false},
	{`{"currency":"e\u0075r"}`, false},
	{`{"value":true}`, false},
	{`{"value":1} x`, false},
	{`{"value":1`, false},
	{"{\"order_id\":\"\xff\"}", false},
	{`[]`, false},
}

func TestFastCustomDataMatchesUnmarshal(t *testing.T) {
	for _, tc := range fastCustomDataCases {
		if got := checkFastCustomData(t, []byte(tc.raw)); got != tc.fast {
			t.Errorf("fast path taken = %v, want %v for %q", got, tc.fast, tc.raw)
		}
	}
}

func FuzzFastCustomData(f *testing.F) {
	for _, tc := range fastCustomDataCases {
		f.Add(tc.raw)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		checkFastCustomData(t, []byte(raw))
	})
}

// eventNameOracle is the grammar validEventName implements by hand.
var eventNameOracle = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_ -]*$`)

func FuzzValidEventName(f *testing.F) {
	for _, s := range []string{"Purchase", "add_to_cart", "Add To-Cart 2", "", " A", "-A", "_", "A\n", "Ä", "A.B", "A\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validEventName(s), eventNameOracle.MatchString(s); got != want {
			t.Fatalf("validEventName(%q) = %v; the grammar says %v", s, got, want)
		}
	})
}

// A browser's custom_data is decoded in the body's one pass; null, other
// shapes and custom properties are left raw for decodeCustomData.
func TestFastCollectDecodesCustomDataInPlace(t *testing.T) {
	for body, inPlace := range map[string]bool{
		benchCollectBody(time.Unix(1772366400, 0)):                                   true,
		`{"events":[{"event_name":"A","custom_data":{"value":1,"currency":"EUR"}}]}`: true,
		`{"events":[{"event_name":"A","custom_data":{"value":1,"currency":"eur"}}]}`: false,
		`{"events":[{"event_name":"A","custom_data":null}]}`:                         false,
		`{"events":[{"event_name":"A","custom_data":{"color":"red"}}]}`:              false,
		`{"events":[{"event_name":"A","custom_data":"x"}]}`:                          false,
	} {
		var req collectRequest
		fast, ok := fastCollect([]byte(body), &req, DefaultMaxEvents)
		if !ok || len(fast) != 1 {
			t.Fatalf("fastCollect(%s) = %v, %v", body, fast, ok)
		}
		if got := fast[0].customData != nil; got != inPlace {
			t.Errorf("%s: decoded in place %v; want %v", body, got, inPlace)
		}

	}
}
