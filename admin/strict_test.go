package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/tagway/tagway/routing/model"
)

// TestUnknownFieldsAreNamed: an unknown field is 400 invalid_field naming
// it, wherever it is (nested objects, arrays of objects) and whatever
// comes first in the text, as encoding/json reports it; members decoded
// as raw JSON, maps and names differing only in case are not unknown.
func TestUnknownFieldsAreNamed(t *testing.T) {
	for _, c := range []struct {
		body, field, message string
		target               func() any
	}{
		{`{"sites":[{"id":"x","colour":"red"}]}`, "colour", `unknown field "colour"`, cfg},
		{`{"ID":"x","Domains":["x.example"],"colour":"red"}`, "colour", `unknown field "colour"`, site},
		{`{"colour":"red","id":1}`, "colour", `unknown field "colour"`, site},
		{`{"id":1,"colour":"red"}`, "id", "must be a JSON string", site},
		{`{"id":"r","overrides":{"custom_data":{"currency":"EUR"},"nope":1}}`, "nope", `unknown field "nope"`, route},
		{`{"id":"r","region_rules":[{"regions":["US-CA"]},{"regions":[],"withold":true}]}`, "withold", `unknown field "withold"`, route},
		{`{"id":"r","event_map":{"Purchase":"X"}}`, "", "", route},
		{`{"id":"m","settings":{"anything":{"goes":1}}}`, "", "", dest},
		{`{"id":"k","tenant":"a","role":"viewer","scopes":["x"]}`, "scopes", `unknown field "scopes"`, func() any { return new(keyRequest) }},
	} {
		e := decodeStrict(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(c.body)), c.target(), maxBodyBytes)
		switch {
		case c.field == "" && e != nil:
			t.Errorf("%s: %+v", c.body, e)
		case c.field != "" && (e == nil || e.Status != 400 || e.Code != "invalid_field" || e.Field != c.field || e.Message != c.message):
			t.Errorf("%s: %+v; want field %q, %q", c.body, e, c.field, c.message)
		}
	}
}

func cfg() any   { return new(model.Config) }
func site() any  { return new(model.Site) }
func route() any { return new(model.Route) }
func dest() any  { return new(model.Destination) }

// FuzzUnknownFieldMatchesEncodingJSON: for any body, the admin API names
// an unknown field exactly when encoding/json refuses one, and the same
// one.
func FuzzUnknownFieldMatchesEncodingJSON(f *testing.F) {
	for _, seed := range []string{
		`{"sites":[{"id":"x","colour":"red"}]}`, `{"colour":"red","id":1}`, `{"id":1,"colour":"red"}`,
		`{"tenants":[{"id":"a","NAME":"x","x":1}],"routes":[{"overrides":{"y":2}}]}`,
		`{"id":"r","region_rules":[{"regions":["US-CA"],"Drop":["em"],"z":0}]}`, `{"settings":{"a":{"b":1}},"c":1}`,
		`{"event_map":{"a":"b"},"ingest_key_hints":{"k":"v"},"q":null}`, `[{"a":1}]`, `{"a":[{"b":{"c":1}}]}`,
	} {
		f.Add(seed)
	}
	targets := []func() any{site, dest, route, cfg, func() any { return new(model.Tenant) }, func() any { return new(keyRequest) },
		func() any { return new(deadLetterQuery) }}
	f.Fuzz(func(t *testing.T, body string) {
		for i, target := range targets {
			dec := json.NewDecoder(bytes.NewReader([]byte(body)))
			dec.DisallowUnknownFields()
			want := ""
			if err := dec.Decode(target()); err != nil {
				if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
					want, _ = strconv.Unquote(name)
				}
			}
			e := decodeStrict(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), target(), maxBodyBytes)
			got := ""
			if e != nil && strings.HasPrefix(e.Message, "unknown field ") {
				got = e.Field
			}
			if got != want {
				t.Fatalf("target %d, %s: named %q, encoding/json %q (%+v)", i, body, got, want, e)
			}
		}
	})
}
