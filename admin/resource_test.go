package admin

import (
	"slices"
	"strings"
	"testing"
)

// TestEveryKindAnswersAlike: the five kinds of resource go through the
// same endpoints with the same answers: create (201, then 409 on the same
// id), read with an ETag, list, replace with a required If-Match (keys are
// never replaced: 405), delete with an optional one, 404 after; and the
// audit log has one entry per change.
func TestEveryKindAnswersAlike(t *testing.T) {
	e := newEnv(t, true, rootToken)
	e.seed()
	for _, c := range []struct {
		plural, kind, id string
		create, replace  map[string]any // replace nil: no PUT
	}{
		{"tenants", "tenant", "t-new", map[string]any{"id": "t-new", "name": "T"}, map[string]any{"id": "t-new", "name": "T2"}},
		{"sites", "site", "s-new", map[string]any{"id": "s-new", "tenant": "a", "domains": []string{"s-new.example"}},
			map[string]any{"id": "s-new", "tenant": "a", "domains": []string{"s-new.example", "www.s-new.example"}}},
		{"destinations", "destination", "d-new",
			map[string]any{"id": "d-new", "site": "a-shop", "type": "meta", "settings": map[string]any{"pixel_id": "5", "access_token": tokenA}},
			map[string]any{"id": "d-new", "site": "a-shop", "type": "meta", "settings": map[string]any{"pixel_id": "6", "access_token": tokenA}}},
		{"routes", "route", "r-new", map[string]any{"id": "r-new", "site": "a-shop", "destination": "a-meta"},
			map[string]any{"id": "r-new", "site": "a-shop", "destination": "a-meta", "test_mode": true}},
		{"keys", "key", "k-new", map[string]any{"id": "k-new", "tenant": "a", "role": "viewer"}, nil},
	} {
		t.Run(c.plural, func(st *testing.T) {
			e.t = st
			defer func() { e.t = t }()
			t := st
			coll, item := "/admin/v1/"+c.plural, "/admin/v1/"+c.plural+"/"+c.id
			r := e.must(201, e.do("root", "POST", coll, c.create))
			if c.kind == "key" {
				tok, _ := r.body["token"].(string)
				key, _ := r.body["key"].(map[string]any)
				if !strings.HasPrefix(tok, "twk_k-new_") || key["id"] != c.id || r.header.Get("ETag") != "" {
					t.Errorf("created key: %s %v", r.raw, r.header)
				}
			} else if r.body["id"] != c.id || r.header.Get("ETag") == "" {
				t.Errorf("created: %s %v", r.raw, r.header)
			}
			if r := e.do("root", "POST", coll, c.create); r.status != 409 || r.errCode() != "already_exists" || r.errField() != "id" ||
				!strings.Contains(r.raw, `\"`+c.id+`\" is taken`) {
				t.Errorf("created twice: %d %s", r.status, r.raw)
			}
			r = e.must(200, e.do("root", "GET", item, nil))
			etag := r.header.Get("ETag")
			if r.body["id"] != c.id || etag == "" || strings.Contains(r.raw, `"hash"`) {
				t.Errorf("read: %s %v", r.raw, r.header)
			}
			r = e.must(200, e.do("root", "GET", coll+"?limit=200", nil))
			if !strings.Contains(r.raw, `"id": "`+c.id+`"`) {
				t.Errorf("list lacks %s: %s", c.id, r.raw)
			}
			ops := []string{"create"}
			if c.replace == nil {
				if r := e.do("root", "PUT", item, c.create, "If-Match", etag); r.status != 405 {
					t.Errorf("PUT: %d %s", r.status, r.raw)
				}
			} else {
				if r := e.do("root", "PUT", item, c.replace); r.status != 428 || r.errCode() != "precondition_required" {
					t.Errorf("PUT without If-Match: %d %s", r.status, r.raw)
				}
				if r := e.do("root", "PUT", item, c.replace, "If-Match", `"stale"`); r.status != 412 || r.errCode() != "precondition_failed" {
					t.Errorf("PUT with a stale If-Match: %d %s", r.status, r.raw)
				}
				if r := e.must(200, e.do("root", "PUT", item, c.replace, "If-Match", etag)); r.header.Get("ETag") == etag {
					t.Errorf("the ETag did not change: %v", r.header)
				}
				ops = append(ops, "update")
			}
			if r := e.do("root", "DELETE", item, nil, "If-Match", `"stale"`); r.status != 412 {
				t.Errorf("DELETE with a stale If-Match: %d %s", r.status, r.raw)
			}
			e.must(204, e.do("root", "DELETE", item, nil))
			for _, m := range []string{"GET", "DELETE"} {
				if r := e.do("root", m, item, nil); r.status != 404 || !strings.Contains(r.raw, `no `+c.kind+` \"`+c.id+`\"`) {
					t.Errorf("%s after the delete: %d %s", m, r.status, r.raw)
				}
			}
			ops = append(ops, "delete")
			var got []string
			for _, it := range e.must(200, e.do("root", "GET", "/admin/v1/audit?limit=200", nil)).body["items"].([]any) {
				if m := it.(map[string]any); m["kind"] == c.kind && m["resource_id"] == c.id && m["actor"] == "root" {
					got = append(got, m["op"].(string))
				}
			}
			slices.Reverse(got)
			if !slices.Equal(got, ops) {
				t.Errorf("audit ops %v, want %v", got, ops)
			}
		})
	}
}
