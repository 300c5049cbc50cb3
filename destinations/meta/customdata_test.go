package meta

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// customDataEmpty must agree with the encoding: empty exactly when the
// custom_data encodes as {}. Each field of CustomData is set in turn (by
// reflection, so a field added later is covered too).
func TestCustomDataEmptyMatchesEncoding(t *testing.T) {
	check := func(name string, c *destinations.CustomData) {
		t.Helper()
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := customDataEmpty(c), string(b) == "{}"; got != want {
			t.Errorf("%s: customDataEmpty = %v; encodes as %s", name, got, b)
		}
	}
	check("zero", &destinations.CustomData{})
	check("empty lists", &destinations.CustomData{ContentIDs: []string{}, Contents: []destinations.Content{}})
	check("known key in Custom", &destinations.CustomData{Custom: map[string]json.RawMessage{"value": json.RawMessage(`1`)}})
	check("custom property", &destinations.CustomData{Custom: map[string]json.RawMessage{"color": json.RawMessage(`"red"`)}})
	typ := reflect.TypeOf(destinations.CustomData{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		var c destinations.CustomData
		v := reflect.ValueOf(&c).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Pointer:
			v.Set(reflect.New(f.Type.Elem()))
		case reflect.Slice:
			v.Set(reflect.MakeSlice(f.Type, 1, 1))
		case reflect.Map:
			if f.Name == "Custom" {
				continue // above
			}
			t.Fatalf("field %s: no case for maps", f.Name)
		default:
			t.Fatalf("field %s of kind %s: add a case", f.Name, v.Kind())
		}
		check(f.Name, &c)
	}
}
