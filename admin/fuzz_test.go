package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/model"
)

// FuzzDecodeBodies: any request body the admin API decodes (every
// resource, a whole config, the bodies of keys, rotation, test events and
// dead-letter filters) gets a 4xx answer with a code and a message, never
// a panic; what decodes strictly validates without a panic and decodes
// again from its own encoding.
func FuzzDecodeBodies(f *testing.F) {
	for _, seed := range []string{
		`{"id":"shop","domains":["shop.example"],"ingest_keys":["0123456789abcdef"]}`,
		`{"id":"m","site":"shop","type":"meta","settings":{"pixel_id":"1","access_token":{"set":true}}}`,
		`{"id":"r","site":"shop","destination":"m","event_map":{"Purchase":"X"},"overrides":{"custom_data":{"currency":"EUR"}}}`,
		`{"tenants":[{"id":"a"}],"sites":[{"id":"s","tenant":"a","domains":["co.uk"],"ingest_key_hashes":["00"]}]}`,
		`{"id":"k","tenant":"a","role":"root"}`, `{"overlap":"-1h"}`, `{"destination":"d","ids":["1-0"],"since":"2h"}`,
		`{"id":1}`, `{"colour":"red"}`, `[`, `{} {}`, `null`, "",
	} {
		f.Add(seed)
	}
	targets := []func() any{
		func() any { return new(model.Site) }, func() any { return new(model.Destination) }, func() any { return new(model.Route) },
		func() any { return new(model.Tenant) }, func() any { return new(model.Config) }, func() any { return new(keyRequest) },
		func() any { return new(rotateRequest) }, func() any { return new(testEventRequest) }, func() any { return new(deadLetterQuery) },
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, target := range targets {
			v := target()
			e := decodeStrict(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)), v, maxBodyBytes)
			if e != nil {
				if e.Status < 400 || e.Status > 499 || e.Code == "" || e.Message == "" {
					t.Fatalf("%T: answer %+v", v, e)
				}
				continue
			}
			if cfg, ok := v.(*model.Config); ok {
				if _, err := model.NewSnapshot(*cfg); err != nil {
					if se := storeError(&config.InvalidError{Err: err}, ""); se.Status != http.StatusUnprocessableEntity || se.Message == "" {
						t.Fatalf("invalid config answered %+v", se)
					}
				}
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%T does not encode: %v", v, err)
			}
			if e := decodeStrict(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(again))), target(), maxBodyBytes); e != nil {
				t.Fatalf("%T: its own encoding %s does not decode: %+v", v, again, e)
			}
		}
	})
}

// FuzzRestoreSecrets: whatever settings a write gives (placeholders,
// operator settings, other types), restoring secrets never panics, never
// lets a tenant's write set or change a *_url setting, and never carries
// a stored secret to a destination whose address changed.
func FuzzRestoreSecrets(f *testing.F) {
	f.Add(`{"pixel_id":"1","access_token":{"set":true}}`, `{"pixel_id":"1","access_token":"EAAsecret-0123456789"}`, false)
	f.Add(`{"pixel_id":"1","access_token":{"set":true},"graph_url":"http://x"}`, `{"pixel_id":"1","access_token":"EAAsecret-0123456789"}`, true)
	f.Add(`{"url":"https://b","token":{"set":true}}`, `{"url":"https://a","token":"t-0123456789"}`, true)
	f.Add(`[]`, `{"a":1}`, false)
	a := &API{store: config.NewStore(nil, nil, config.WithSecretFields(model.SecretFields{"meta": {"access_token"}}))}
	f.Fuzz(func(t *testing.T, settings, old string, root bool) {
		p := principal{id: "k", tenant: "a", role: model.RoleAdmin}
		if root {
			p = principal{id: "root"}
		}
		oldDest := &model.Destination{ID: "d", Type: "meta", Settings: json.RawMessage(old)}
		out, e := a.restoreSecrets(p, model.Destination{ID: "d", Type: "meta", Settings: json.RawMessage(settings)}, oldDest)
		if e != nil {
			return
		}
		newObj, ok1 := settingsObject(out)
		oldObj, ok2 := settingsObject(json.RawMessage(old))
		if !ok1 || !ok2 {
			return
		}
		moved := false
		for _, k := range sortedKeys(newObj, oldObj) {
			if model.IsTargetSetting(k) && !sameJSON(newObj[k], oldObj[k]) {
				moved = true
				if !root && model.IsOperatorSetting(k) {
					t.Fatalf("a tenant's write changed %s: %s", k, out)
				}
			}
		}
		if !moved {
			return
		}
		for k, v := range newObj {
			if a.store.SecretFields().IsSecret("meta", k) && oldObj[k] != nil && sameJSON(v, oldObj[k]) &&
				strings.Contains(settings, `"set"`) && !strings.Contains(settings, string(oldObj[k])) {
				t.Fatalf("the stored %s followed the destination to a new address: %s", k, out)
			}
		}
	})
}
