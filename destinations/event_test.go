package destinations

import (
	"encoding/json"
	"testing"
)

func TestCustomDataRoundTrip(t *testing.T) {
	in := `{"value":"142.52","currency":"usd","num_items":"3","content_ids":["a"],"contents":[{"id":"a","quantity":2,"item_price":9.5}],"gift_wrap":true,"note":"x"}`
	var cd CustomData
	if err := json.Unmarshal([]byte(in), &cd); err != nil {
		t.Fatal(err)
	}
	if cd.Value == nil || *cd.Value != 142.52 || cd.NumItems == nil || *cd.NumItems != 3 || cd.Currency != "USD" {
		t.Fatalf("typed fields: %+v", cd)
	}
	out, err := json.Marshal(cd)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"value":142.52,"currency":"USD","content_ids":["a"],"contents":[{"id":"a","quantity":2,"item_price":9.5}],"num_items":3,"gift_wrap":true,"note":"x"}`
	if string(out) != want {
		t.Fatalf("marshal:\n got %s\nwant %s", out, want)
	}
}

func TestCustomDataRejectsWrongTypes(t *testing.T) {
	for _, in := range []string{`{"value":"abc"}`, `{"value":true}`, `{"content_ids":"a"}`, `{"num_items":"1.5"}`, `[]`} {
		var cd CustomData
		if err := json.Unmarshal([]byte(in), &cd); err == nil {
			t.Errorf("%s: accepted", in)
		}
	}
}

func TestCustomDataOnlyCustom(t *testing.T) {
	cd := CustomData{Custom: map[string]json.RawMessage{"b": json.RawMessage(`1`), "a": json.RawMessage(`"x"`), "value": json.RawMessage(`9`)}}
	out, _ := json.Marshal(cd)
	if string(out) != `{"a":"x","b":1}` {
		t.Fatalf("got %s", out)
	}
}
