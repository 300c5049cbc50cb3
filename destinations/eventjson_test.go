package destinations

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// encoderJSON is what a json.Encoder without HTML escaping writes for ev.
func encoderJSON(ev *Event) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// fill sets every field reachable from v (structs, pointers, slices, maps)
// to a non-zero value derived from s, so a field AppendJSON does not write
// shows up as a difference.
func fill(v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), s+v.Type().Field(i).Name)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), s)
	case reflect.Slice:
		if v.Type() == reflect.TypeFor[json.RawMessage]() {
			v.SetBytes([]byte(`{"a": [1, "` + s + `"]}`))
			return
		}
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), s+"0")
		fill(v.Index(1), s+"1")
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for _, k := range []string{"zz" + s, "a<&>" + s} {
			e := reflect.New(v.Type().Elem()).Elem()
			fill(e, s+k)
			v.SetMapIndex(reflect.ValueOf(k), e)
		}
	case reflect.String:
		v.SetString(s + " <&> \"q\" \\ \u2028 é \x01\x7f")
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(len(s)) * -7919)
	case reflect.Float64:
		v.SetFloat(float64(len(s)) / 3)
	case reflect.Bool:
		v.SetBool(true)
	default:
		panic("fill: unhandled kind " + v.Kind().String() + " in " + s)
	}
}

func TestAppendJSONMatchesEncoder(t *testing.T) {
	var full Event
	fill(reflect.ValueOf(&full).Elem(), "x")
	full.CustomData.Custom["value"] = json.RawMessage(`1`) // a known key in Custom is not written
	events := map[string]Event{
		"every field": full,
		"zero":        {},
		"typical": {
			EventName: "Purchase", EventTime: 1772366400, EventID: "3f0c", ActionSource: "website",
			EventSourceURL: "https://shop.example/p?a=1&b=<2>",
			UserData:       UserData{Em: []string{strings.Repeat("a", 64)}, ClientIPAddress: "203.0.113.9", Fbp: "fb.1.1.1"},
			CustomData:     &CustomData{Value: ptr(129.9), Currency: "EUR", Contents: []Content{{ID: "1", Quantity: ptr(2)}}},
			Context:        Context{SiteID: "shop", ReceivedAt: 1, Consent: Consent{AdStorage: Granted}},
		},
		"empty custom data":  {CustomData: &CustomData{}},
		"only custom keys":   {CustomData: &CustomData{Custom: map[string]json.RawMessage{"b": json.RawMessage(`[ 1 ,2 ]`), "a": json.RawMessage(`"x<"`)}}},
		"floats":             {CustomData: &CustomData{Value: ptr(1e-7), PredictedLTV: ptr(1e21), Contents: []Content{{ItemPrice: ptr(-0.000001)}, {ItemPrice: ptr(123456789.125)}}}},
		"invalid UTF-8":      {EventName: "a\xffb\xc3", UserData: UserData{Fn: []string{"\xed\xa0\x80"}}},
		"empty slices":       {DataProcessingOptions: []string{}, UserData: UserData{Em: []string{}}},
		"empty dpo slice ok": {DataProcessingOptions: []string{""}},
	}
	for name, ev := range events {
		want, err := encoderJSON(&ev)
		if err != nil {
			t.Fatalf("%s: encoder: %v", name, err)
		}
		got, err := ev.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got[len("prefix"):], want) || string(got[:6]) != "prefix" {
			t.Errorf("%s:\n got  %s\n want %s", name, got, want)
		}
	}
	// What the encoder refuses, AppendJSON refuses.
	for _, ev := range []Event{
		{CustomData: &CustomData{Value: ptr(mathInf())}},
		{CustomData: &CustomData{Custom: map[string]json.RawMessage{"x": json.RawMessage(`{`)}}},
	} {
		if _, err := encoderJSON(&ev); err == nil {
			t.Fatal("encoder accepted a bad event")
		}
		if _, err := ev.AppendJSON(nil); err == nil {
			t.Errorf("AppendJSON accepted %+v", ev.CustomData)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func mathInf() float64 { z := 0.0; return 1 / z }

func FuzzAppendJSON(f *testing.F) {
	f.Add("Purchase", "https://a.example/?x=<1>&y", "jane@example.com", `{"k":[1,2]}`, 1.5, 3)
	f.Add("\u2028\x00\"", "\xff", "", `"x"`, 1e-9, -1)
	f.Fuzz(func(t *testing.T, name, url, em, raw string, value float64, n int) {
		if !json.Valid([]byte(raw)) {
			return
		}
		ev := Event{EventName: name, EventSourceURL: url, UserData: UserData{Em: []string{em}, Fbc: url},
			CustomData: &CustomData{Value: &value, NumItems: &n, ContentName: name, Custom: map[string]json.RawMessage{name: json.RawMessage(raw)}},
			Context:    Context{Cookies: map[string]string{name: em}, ClickIDs: map[string]ClickID{em: {Value: url, At: int64(n)}}}}
		want, werr := encoderJSON(&ev)
		got, gerr := ev.AppendJSON(nil)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("encoder error %v, AppendJSON error %v", werr, gerr)
		}
		if werr == nil && !bytes.Equal(got, want) {
			t.Fatalf("\n got  %s\n want %s", got, want)
		}
	})
}

// BenchmarkEventJSON encodes the typical queued browser event.
func BenchmarkEventJSON(b *testing.B) {
	ev := Event{
		EventName: "Purchase", EventTime: 1772366400, EventID: "3f0c6a52-9b1e-4c7e-8d2a-5b7f1e0c9a11", ActionSource: "website",
		EventSourceURL: "https://shop.example/checkout/thank-you?utm_source=bench&utm_medium=cpc", ReferrerURL: "https://www.google.com/",
		UserData: UserData{Em: []string{strings.Repeat("5e", 32)}, Ph: []string{strings.Repeat("73", 32)}, ExternalID: []string{strings.Repeat("1f", 32)},
			ClientIPAddress: "203.0.113.6", ClientUserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
			Fbp: "fb.1.1795833546924.100000000005"},
		CustomData: &CustomData{Value: ptr(47.5), Currency: "EUR", ContentIDs: []string{"sku-5", "sku-42"},
			Contents: []Content{{ID: "sku-42", Quantity: ptr(2)}}, ContentType: "product", NumItems: ptr(2), OrderID: "order-5"},
		Context: Context{SiteID: "default", ReceivedAt: 1772366400123, Source: "browser",
			Consent: Consent{AdStorage: Granted, AdUserData: Granted, AdPersonalization: Granted, AnalyticsStorage: Granted}},
	}
	b.Run("AppendJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf, _ = ev.AppendJSON(buf[:0])
		}
	})
	b.Run("encoder", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		for b.Loop() {
			buf.Reset()
			_ = enc.Encode(&ev)
		}
	})
}
