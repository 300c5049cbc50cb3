package destinations

import (
	"reflect"
	"testing"
)

func TestTypedCustomKeysMatchKnown(t *testing.T) {
	if len(typedCustomKeys) != len(knownCustomKeys) {
		t.Fatalf("%d typed keys, %d known keys", len(typedCustomKeys), len(knownCustomKeys))
	}
	for _, k := range typedCustomKeys {
		if !knownCustomKeys[k] {
			t.Errorf("%q is not a known key", k)
		}
	}
}

// checkCustomDataFast asserts that UnmarshalJSON gives what the general
// path gives (value and error), and reports whether the one-pass path was
// taken.
func checkCustomDataFast(t *testing.T, data string) bool {
	t.Helper()
	var fast, general CustomData
	ferr := fast.UnmarshalJSON([]byte(data))
	gerr := general.unmarshalGeneral([]byte(data))
	if (ferr == nil) != (gerr == nil) || (ferr != nil && ferr.Error() != gerr.Error()) {
		t.Fatalf("%q: error %v, general path %v", data, ferr, gerr)
	}
	if ferr == nil && !reflect.DeepEqual(fast, general) {
		t.Fatalf("%q:\none pass %#v\ngeneral  %#v", data, fast, general)
	}
	return onlyTypedKeys([]byte(data))
}

var customDataCases = []struct {
	data string
	fast bool
}{
	{`{"value":129.90,"currency":"eur","content_ids":["sku-1","sku-42"],"contents":[{"id":"sku-42","quantity":1}],"content_type":"product","num_items":2,"order_id":"1001"}`, true},
	{` { "value" : 1 , "status" : "a,b}\"c" , "contents" : [ { "id" : "x]}" } ] } `, true},
	{`{}`, true},
	{`{"value":null,"predicted_ltv":1e3,"search_string":"[{"}`, true},
	{`{"value":true}`, true},           // a type error, the same one
	{`{"contents":[{"id":1}]}`, true},  // a type error inside contents
	{`{"value":"142.52"}`, false},      // numeric string
	{`{"num_items":"3","x":1}`, false}, // numeric string and a custom key
	{`{"value":1,"value":2}`, false},   // repeated key
	{`{"Value":1}`, false},             // case-folded match
	{`{"gift_wrap":true}`, false},      // custom key
	{`{"val\u0075e":1}`, false},        // escaped key
	{`{"value":1,}`, false},            // syntax error
	{`{"value":1`, false},              // truncated
	{`[]`, false},                      // not an object
	{`null`, false},
}

func TestCustomDataOnePass(t *testing.T) {
	for _, tc := range customDataCases {
		if got := checkCustomDataFast(t, tc.data); got != tc.fast {
			t.Errorf("%q: one pass = %v, want %v", tc.data, got, tc.fast)
		}
	}
}

func FuzzCustomDataOnePass(f *testing.F) {
	for _, tc := range customDataCases {
		f.Add(tc.data)
	}
	f.Fuzz(func(t *testing.T, data string) { checkCustomDataFast(t, data) })
}

// BenchmarkCustomDataUnmarshal decodes the demo checkout's custom_data with
// UnmarshalJSON (one pass) and with the general path it falls back to.
func BenchmarkCustomDataUnmarshal(b *testing.B) {
	data := []byte(customDataCases[0].data)
	for _, bc := range []struct {
		name string
		fn   func(*CustomData, []byte) error
	}{{"one-pass", (*CustomData).UnmarshalJSON}, {"general", (*CustomData).unmarshalGeneral}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var cd CustomData
				if err := bc.fn(&cd, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
