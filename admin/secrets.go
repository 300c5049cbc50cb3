package admin

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/tagway/tagway/routing/model"
)

// Destination secrets are write-only: answers show them redacted, and a
// redacted value written back keeps the stored secret.

// redact replaces every secret setting of d with {"set":true,"last4":...}.
func (a *API) redact(d model.Destination) json.RawMessage {
	var obj map[string]json.RawMessage
	if json.Unmarshal(d.Settings, &obj) != nil || obj == nil {
		return d.Settings
	}
	for k, v := range obj {
		if !a.store.SecretFields().IsSecret(d.Type, k) {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil || s == "" {
			continue
		}
		red := map[string]any{"set": true}
		if len(s) >= 12 {
			red["last4"] = s[len(s)-4:]
		}
		obj[k], _ = json.Marshal(red)
	}
	b, _ := json.Marshal(obj)
	return b
}

// restoreSecrets puts the current value back for every secret setting given
// in its redacted form ({"set": true, ...}), so a resource read, edited and
// written back keeps its secrets. For a tenant's key it first keeps the
// operator settings (model.IsOperatorSetting) the write leaves out, and
// refuses one it sets or changes. A stored secret never follows a
// destination to a new address: when a target setting
// (model.IsTargetSetting) or the type changes, a redacted secret is
// refused and the secret must be given again.
func (a *API) restoreSecrets(p principal, d model.Destination, old *model.Destination) (json.RawMessage, *apiError) {
	obj, ok := settingsObject(d.Settings)
	if !ok {
		return d.Settings, nil
	}
	var prev map[string]json.RawMessage
	if old != nil && old.Type == d.Type {
		prev, _ = settingsObject(old.Settings)
	}
	changed := false
	if !p.root() {
		for k, v := range prev {
			if _, given := obj[k]; !given && model.IsOperatorSetting(k) {
				obj[k], changed = v, true
			}
		}
		for _, k := range sortedKeys(obj) {
			if model.IsOperatorSetting(k) && !sameJSON(obj[k], prev[k]) {
				return nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Field: "settings." + k,
					Message: "the platform's API URL is the operator's setting (its environment); a tenant key can neither set nor change it"}
			}
		}
	}
	moved := ""
	if old != nil {
		if old.Type != d.Type {
			moved = "type"
		}
		for _, k := range sortedKeys(obj, prev) {
			if moved == "" && model.IsTargetSetting(k) && !sameJSON(obj[k], prev[k]) {
				moved = "settings." + k
			}
		}
	}
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		var red struct {
			Set bool `json:"set"`
		}
		if !strings.HasPrefix(strings.TrimSpace(string(v)), "{") || json.Unmarshal(v, &red) != nil || !red.Set {
			continue
		}
		if moved != "" && old != nil && prev[k] != nil {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Code: "invalid_config", Field: "settings." + k,
				Message: "where the destination sends changed (" + moved + "): give the secret again; a stored secret never follows a destination to a new address"}
		}
		cur, ok := prev[k]
		if !ok || !a.store.SecretFields().IsSecret(d.Type, k) {
			return nil, badField("settings."+k, "a redacted secret keeps the current value, and there is none: give the secret itself")
		}
		obj[k] = cur
		changed = true
	}
	if !changed {
		return d.Settings, nil
	}
	b, _ := json.Marshal(obj)
	return b, nil
}

// settingsObject decodes destination settings as a JSON object.
func settingsObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, false
	}
	return obj, true
}

// sameJSON reports whether two JSON values are equal (nil is absent).
func sameJSON(a, b json.RawMessage) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// sortedKeys returns the keys of the maps, sorted and without repeats, so
// that errors name fields in a stable order.
func sortedKeys(maps ...map[string]json.RawMessage) []string {
	var out []string
	for _, m := range maps {
		for k := range m {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}
