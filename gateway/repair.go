package gateway

// Repair of one event's JSON before it is decoded again strictly: on the
// browser path, everything a shop's page gets wrong that can be read
// unambiguously is rewritten and recorded as a fix, and what cannot is
// dropped; on the server paths, only the type coercions Meta's Graph API
// itself applies are made (graphCoerce). Either way the result goes through
// the same strict decoding and validation as a clean event, so that a fix
// can never let through what validation refuses. Only an event that failed
// that strict path comes here: the clean path never pays for it.

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// repairer rewrites the decoded JSON of one event, recording what it did.
type repairer struct {
	// browser: repair everything fixable and drop the rest (the /collect
	// path); otherwise only Graph's coercions, leaving anything else for
	// the strict decoder to report.
	browser bool
	fixes   []fix
	noted   map[string]bool // field+reason pairs already recorded
}

// note records one fix, once per field and reason.
func (r *repairer) note(field, reason string) {
	k := field + "\x00" + reason
	if r.noted[k] {
		return
	}
	if r.noted == nil {
		r.noted = map[string]bool{}
	}
	r.noted[k] = true
	r.fixes = append(r.fixes, fix{field, reason})
}

// drop records that a field was dropped for reason and reports that it
// goes (false), on the browser path; on the server paths the value stays
// for the strict decoder to refuse.
func (r *repairer) drop(field, reason string) bool {
	if !r.browser {
		return true
	}
	r.note(field, reason)
	return false
}

// decodeJSON decodes one JSON value keeping numbers as their literals.
func decodeJSON(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err == nil {
		return nil, false // trailing data
	}
	return v, true
}

// stringified decodes a string that holds a JSON value of the kind wanted
// ('[' or '{'), as a page whose Array.prototype.toJSON returns a string
// (Prototype.js) sends arrays.
func stringified(s string, kind byte) (any, bool) {
	t := strings.TrimSpace(s)
	if t == "" || t[0] != kind {
		return nil, false
	}
	v, ok := decodeJSON([]byte(t))
	if !ok {
		return nil, false
	}
	switch v.(type) {
	case []any:
		return v, kind == '['
	case map[string]any:
		return v, kind == '{'
	}
	return nil, false
}

// numberText is a JSON number as an id: its literal, or for an exponent
// form the plain decimal form of its value.
func numberText(n json.Number) string {
	s := string(n)
	if strings.ContainsAny(s, "eE") {
		if f, err := n.Float64(); err == nil {
			return strconv.FormatFloat(f, 'f', -1, 64)
		}
	}
	return s
}

// plainDecimal reports whether s is a decimal number Graph reads where a
// number goes: an optional minus, digits, an optional fraction.
func plainDecimal(s string, integer bool) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	start := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == start {
		return false
	}
	if i < len(s) && s[i] == '.' && !integer {
		i++
		frac := i
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i == frac {
			return false
		}
	}
	return i == len(s)
}

// str reads a string field: a number becomes its text (Graph does the
// same). keep is false when the field is to be dropped.
func (r *repairer) str(v any, field string) (out any, keep bool) {
	switch x := v.(type) {
	case nil, string:
		return v, true
	case json.Number:
		r.note(field, reasonNumberToString)
		return numberText(x), true
	}
	return v, r.drop(field, reasonInvalid)
}

// amount reads a monetary field: a number, or (browser) a number written
// as text in the shop's locale (parseAmount), or (server) a plain decimal
// string as Graph reads it.
func (r *repairer) amount(v any, field, currency string) (any, bool) {
	switch x := v.(type) {
	case nil:
		return v, true
	case json.Number:
		if f, err := x.Float64(); err == nil && !math.IsInf(f, 0) {
			return v, true
		}
		return v, r.drop(field, reasonInvalid)
	case string:
		if !r.browser {
			if t := strings.TrimSpace(x); plainDecimal(t, false) {
				r.note(field, reasonNumericString)
				return json.Number(t), true
			}
			return v, true
		}
		f, reason, ok := parseAmount(x, currency)
		if !ok {
			return v, r.drop(field, reason)
		}
		r.note(field, reason)
		return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), true
	}
	return v, r.drop(field, reasonInvalid)
}

// integer reads an integer field: an integer, or (browser) an integral
// number in any form or an integer written as text, or (server) a plain
// integer string as Graph reads it.
func (r *repairer) integer(v any, field string) (any, bool) {
	var f float64
	switch x := v.(type) {
	case nil:
		return v, true
	case json.Number:
		if _, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return v, true
		}
		if !r.browser {
			return v, true
		}
		var err error
		if f, err = x.Float64(); err != nil {
			return v, r.drop(field, reasonInvalid)
		}
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			r.note(field, reasonFloatToInteger)
		}
	case string:
		if !r.browser {
			if t := strings.TrimSpace(x); plainDecimal(t, true) {
				r.note(field, reasonNumericString)
				return json.Number(t), true
			}
			return v, true
		}
		var reason string
		var ok bool
		if f, reason, ok = parseAmount(x, ""); !ok {
			return v, r.drop(field, reason)
		}
		if f == math.Trunc(f) {
			r.note(field, reason)
		}
	default:
		return v, r.drop(field, reasonInvalid)
	}
	if f != math.Trunc(f) || math.Abs(f) >= 1<<53 {
		return v, r.drop(field, reasonNotInteger)
	}
	return json.Number(strconv.FormatInt(int64(f), 10)), true
}

// strList reads a list of strings (content_ids, data_processing_options):
// numbers become their text; on the browser path a list sent as a JSON
// string is read, a lone value wrapped, and other elements dropped.
func (r *repairer) strList(v any, field string) (any, bool) {
	switch x := v.(type) {
	case nil:
		return v, true
	case []any:
		out := x[:0:0]
		for _, e := range x {
			switch y := e.(type) {
			case string:
				out = append(out, y)
			case json.Number:
				r.note(field, reasonNumberToString)
				out = append(out, numberText(y))
			default:
				if !r.browser {
					out = append(out, e)
					continue
				}
				r.note(field, reasonInvalid)
			}
		}
		return out, true
	case string:
		if !r.browser {
			return v, true
		}
		if l, ok := stringified(x, '['); ok {
			r.note(field, reasonStringifiedArray)
			return r.strList(l, field)
		}
		r.note(field, reasonWrapped)
		return []any{x}, true
	case json.Number:
		if !r.browser {
			return v, true
		}
		r.note(field, reasonWrapped)
		return r.strList([]any{x}, field)
	}
	return v, r.drop(field, reasonInvalid)
}

// object reads an object field; on the browser path one sent as a JSON
// string is read.
func (r *repairer) object(v any, field string) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case string:
		if r.browser {
			if o, ok := stringified(x, '{'); ok {
				r.note(field, reasonStringifiedObject)
				return o.(map[string]any), true
			}
		}
	}
	return nil, false
}

// customStrings are the string fields of custom_data.
var customStrings = []string{"content_type", "content_name", "content_category", "order_id", "search_string", "status", "delivery_category"}

// customData repairs custom_data in place: its currency first (an amount
// may need it), then the typed fields; custom properties stay as they are.
func (r *repairer) customData(m map[string]any) {
	currency := ""
	if v, ok := m["currency"]; ok && v != nil {
		switch s, isString := v.(string); {
		case !isString:
			if r.drop("custom_data.currency", reasonInvalid) {
				break
			}
			delete(m, "currency")
		case r.browser:
			code, reason, ok := normalizeCurrency(s)
			if !ok {
				r.note("custom_data.currency", reason)
				delete(m, "currency")
				break
			}
			if reason != "" {
				r.note("custom_data.currency", reason)
			}
			m["currency"], currency = code, code
		default:
			currency = s
		}
	}
	set := func(key string, v any, keep bool) {
		if keep {
			m[key] = v
		} else {
			delete(m, key)
		}
	}
	for _, k := range []string{"value", "predicted_ltv"} {
		if v, ok := m[k]; ok {
			out, keep := r.amount(v, "custom_data."+k, currency)
			set(k, out, keep)
		}
	}
	if v, ok := m["num_items"]; ok {
		out, keep := r.integer(v, "custom_data.num_items")
		set("num_items", out, keep)
	}
	for _, k := range customStrings {
		if v, ok := m[k]; ok {
			out, keep := r.str(v, "custom_data."+k)
			set(k, out, keep)
		}
	}
	if v, ok := m["content_ids"]; ok {
		out, keep := r.strList(v, "custom_data.content_ids")
		set("content_ids", out, keep)
	}
	if v, ok := m["contents"]; ok {
		out, keep := r.contents(v, currency)
		set("contents", out, keep)
	}
}

// contents repairs custom_data.contents.
func (r *repairer) contents(v any, currency string) (any, bool) {
	const field = "custom_data.contents"
	var items []any
	switch x := v.(type) {
	case nil:
		return v, true
	case []any:
		items = x
	case string:
		l, ok := stringified(x, '[')
		if !r.browser || !ok {
			return v, r.drop(field, reasonInvalid)
		}
		r.note(field, reasonStringifiedArray)
		items = l.([]any)
	case map[string]any:
		if !r.browser {
			return v, true
		}
		r.note(field, reasonWrapped)
		items = []any{x}
	default:
		return v, r.drop(field, reasonInvalid)
	}
	out := items[:0:0]
	for i, it := range items {
		prefix := field + "[" + strconv.Itoa(i) + "]"
		item, ok := r.object(it, prefix)
		if !ok {
			if r.drop(prefix, reasonInvalid) {
				out = append(out, it)
			}
			continue
		}
		for _, k := range []string{"id", "title", "delivery_category"} {
			if v, ok := item[k]; ok {
				if nv, keep := r.str(v, prefix+"."+k); keep {
					item[k] = nv
				} else {
					delete(item, k)
				}
			}
		}
		if v, ok := item["quantity"]; ok {
			if nv, keep := r.integer(v, prefix+".quantity"); keep {
				item["quantity"] = nv
			} else {
				delete(item, "quantity")
			}
		}
		if v, ok := item["item_price"]; ok {
			if nv, keep := r.amount(v, prefix+".item_price", currency); keep {
				item["item_price"] = nv
			} else {
				delete(item, "item_price")
			}
		}
		out = append(out, item)
	}
	return out, true
}

// userData repairs user_data values in place: numbers become their text
// (Graph does the same); on the browser path a list sent as a JSON string
// is read and values of other types are dropped. Normalization problems
// are left to cleanUserData.
func (r *repairer) userData(m map[string]any) {
	for k, v := range m {
		field := "user_data." + k
		switch x := v.(type) {
		case nil, string:
		case json.Number:
			r.note(field, reasonNumberToString)
			m[k] = numberText(x)
		case []any:
			out, _ := r.strList(x, field)
			m[k] = out
		default:
			if !r.drop(field, reasonInvalid) {
				delete(m, k)
			}
		}
		if s, ok := m[k].(string); ok && r.browser {
			if l, ok := stringified(s, '['); ok {
				r.note(field, reasonStringifiedArray)
				out, _ := r.strList(l, field)
				m[k] = out
			}
		}
	}
}

// graphCoerce applies to one server event (the raw JSON of an element of
// data) the type coercions Meta's Graph API makes: a number where a string
// goes (content_ids, contents[].id, order_id, event_id, user_data values)
// becomes its text, and a plain decimal string where a number goes
// (value, predicted_ltv, num_items, contents[].quantity and item_price,
// event_time) its number. changed reports whether anything changed; the
// rest is left for the strict decoder to refuse as Graph would.
func graphCoerce(raw []byte) (out []byte, changed bool) {
	v, ok := decodeJSON(raw)
	m, isObject := v.(map[string]any)
	if !ok || !isObject {
		return raw, false
	}
	r := &repairer{}
	if x, ok := m["event_id"]; ok {
		m["event_id"], _ = r.str(x, "event_id")
	}
	if x, ok := m["event_time"]; ok {
		m["event_time"], _ = r.integer(x, "event_time")
	}
	if cd, ok := m["custom_data"].(map[string]any); ok {
		r.customData(cd)
	}
	if ud, ok := m["user_data"].(map[string]any); ok {
		r.userData(ud)
	}
	if len(r.fixes) == 0 {
		return raw, false
	}
	b, err := json.Marshal(m)
	if err != nil {
		return raw, false
	}
	return b, true
}

// maxRepairDepth bounds how deep a browser event may nest before it is
// refused rather than repaired.
const maxRepairDepth = 64

// depthOK reports whether b nests no deeper than maxRepairDepth.
func depthOK(b []byte) bool {
	depth, inString := 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString:
			if c == '\\' {
				i++
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxRepairDepth {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}

// browserKeys are the keys of a browser event.
var browserKeys = func() map[string]bool {
	m := map[string]bool{}
	for _, k := range eventFields {
		m[k] = true
	}
	return m
}()

// repairBrowserEvent rewrites one /collect event so that it decodes and
// validates: every fixable field fixed, every unusable one dropped, each
// recorded. It refuses the event only when nothing usable remains: not an
// object, or no usable event_name. id is the event's own event_id when it
// sent a usable one.
func repairBrowserEvent(raw []byte) (clean []byte, id string, fixes []fix, refused *eventError) {
	r := &repairer{browser: true}
	v, ok := any(nil), depthOK(raw)
	if ok {
		v, ok = decodeJSON(raw)
	}
	if s, isString := v.(string); ok && isString {
		if o, found := stringified(s, '{'); found {
			r.note("event", reasonStringifiedObject)
			v = o
		}
	}
	m, isObject := v.(map[string]any)
	if !ok || !isObject {
		return nil, "", nil, &eventError{Field: "", Reason: refusedNotObject, Message: "an event must be a JSON object"}
	}
	if s, ok := m["event_id"].(string); ok && checkText("", s, maxEventIDLen) == nil {
		id = s
	}

	switch name := m["event_name"].(type) {
	case nil:
		return nil, id, nil, &eventError{Field: "event_name", Reason: refusedMissing, Message: "event_name is required"}
	case string:
		t := strings.TrimSpace(name)
		if t == "" {
			return nil, id, nil, &eventError{Field: "event_name", Reason: refusedMissing, Message: "event_name is required"}
		}
		if e := checkEventName("event_name", t); e != nil {
			return nil, id, nil, &eventError{Field: "event_name", Reason: refusedInvalid, Message: e.Message}
		}
		if t != name {
			r.note("event_name", reasonTrimmed)
			m["event_name"] = t
		}
	default:
		return nil, id, nil, &eventError{Field: "event_name", Reason: refusedInvalid, Message: "event_name must be a string"}
	}

	for k := range m {
		if !browserKeys[k] {
			r.note(k, reasonUnknownField)
			delete(m, k)
		}
	}
	set := func(key string, v any, keep bool) {
		if keep {
			m[key] = v
		} else {
			delete(m, key)
		}
	}
	if v, ok := m["event_id"]; ok {
		out, keep := r.str(v, "event_id")
		if s, isString := out.(string); keep && isString && checkText("", s, maxEventIDLen) != nil {
			reason := reasonInvalid
			if utf8.RuneCountInString(s) > maxEventIDLen {
				reason = reasonTooLong
			}
			keep = r.drop("event_id", reason) // a new id is minted
		}
		set("event_id", out, keep)
	}
	if v, ok := m["event_time"]; ok {
		out, keep := r.eventTime(v)
		set("event_time", out, keep)
	}
	for _, k := range []string{"event_source_url", "referrer_url"} {
		if v, ok := m[k]; ok {
			out, keep := r.url(v, k)
			set(k, out, keep)
		}
	}
	if v, ok := m["action_source"]; ok {
		s, isString := v.(string)
		t := strings.ToLower(strings.TrimSpace(s))
		switch {
		case v == nil:
		case !isString || checkActionSource("", t) != nil:
			set("action_source", nil, r.drop("action_source", reasonInvalid))
		case t != s:
			r.note("action_source", reasonLowercase)
			m["action_source"] = t
		}
	}
	if v, ok := m["opt_out"]; ok {
		if _, isBool := v.(bool); !isBool && v != nil {
			set("opt_out", nil, r.drop("opt_out", reasonInvalid))
		}
	}
	r.dataProcessing(m)
	if v, ok := m["custom_data"]; ok && v != nil {
		cd, isObject := r.object(v, "custom_data")
		if !isObject {
			set("custom_data", nil, r.drop("custom_data", reasonInvalid))
		} else {
			r.customData(cd)
			m["custom_data"] = r.boundCustomData(cd)
			if m["custom_data"] == nil {
				delete(m, "custom_data")
			}
		}
	}
	if v, ok := m["user_data"]; ok && v != nil {
		ud, isObject := r.object(v, "user_data")
		if !isObject {
			set("user_data", nil, r.drop("user_data", reasonInvalid))
		} else {
			r.userData(ud)
			m["user_data"] = ud
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, id, nil, &eventError{Field: "", Reason: refusedNotObject, Message: "the event could not be read"}
	}
	return b, id, r.fixes, nil
}

// eventTime reads event_time: Unix seconds; milliseconds are divided, a
// fraction dropped, a numeric string read; anything else is dropped (the
// event then takes the time it arrived).
func (r *repairer) eventTime(v any) (any, bool) {
	var f float64
	switch x := v.(type) {
	case nil:
		return v, true
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return v, r.drop("event_time", reasonInvalid)
		}
		if f != math.Trunc(f) {
			r.note("event_time", reasonFloatToInteger)
		}
	case string:
		var reason string
		var ok bool
		if f, reason, ok = parseAmount(x, ""); !ok {
			return v, r.drop("event_time", reasonInvalid)
		}
		r.note("event_time", reason)
	default:
		return v, r.drop("event_time", reasonInvalid)
	}
	f = math.Trunc(f)
	if f > millisecondsThreshold && f < millisecondsThreshold*1000 {
		r.note("event_time", reasonMilliseconds)
		f = math.Trunc(f / 1000)
	}
	if f <= 0 || f > millisecondsThreshold {
		return v, r.drop("event_time", reasonInvalid)
	}
	return json.Number(strconv.FormatInt(int64(f), 10)), true
}

// url reads an absolute http(s) URL: one over 2,048 bytes is truncated;
// anything else unusable is dropped (the page's URL then stands in).
func (r *repairer) url(v any, field string) (any, bool) {
	s, ok := v.(string)
	switch {
	case v == nil:
		return v, true
	case !ok:
		return v, r.drop(field, reasonInvalid)
	case len(s) > maxURLLen:
		t, ok := truncateURL(s, maxURLLen)
		if !ok {
			return v, r.drop(field, reasonInvalid)
		}
		r.note(field, reasonTruncated)
		return t, true
	case checkURL(field, s) != nil:
		return v, r.drop(field, reasonInvalid)
	}
	return v, true
}

// dataProcessing repairs Meta's Limited Data Use fields, erring on the
// private side: "LDU" in any case is kept, other options dropped; a
// country or state that is not one of Meta's values becomes 0 (Meta
// geolocates), as does a state missing beside a country.
func (r *repairer) dataProcessing(m map[string]any) {
	if v, ok := m["data_processing_options"]; ok {
		out, keep := r.strList(v, "data_processing_options")
		if l, isList := out.([]any); keep && isList {
			opts := l[:0:0]
			for _, o := range l {
				s, _ := o.(string)
				if strings.EqualFold(strings.TrimSpace(s), "LDU") {
					if s != "LDU" {
						r.note("data_processing_options", reasonLowercase)
					}
					opts = append(opts, "LDU")
				} else {
					r.note("data_processing_options", reasonInvalid)
				}
			}
			m["data_processing_options"] = opts
		} else if !keep {
			delete(m, "data_processing_options")
		}
	}
	for _, f := range []struct {
		key     string
		allowed int
	}{{"data_processing_options_country", 1}, {"data_processing_options_state", 1000}} {
		v, ok := m[f.key]
		if !ok || v == nil {
			continue
		}
		out, keep := r.integer(v, f.key)
		n, err := strconv.Atoi(string(numberOr(out)))
		if !keep || err != nil || (n != 0 && n != f.allowed) {
			r.note(f.key, reasonGeolocate)
			out = json.Number("0")
		}
		m[f.key] = out
	}
	if c, ok := m["data_processing_options_country"]; ok && c != nil {
		if s, ok := m["data_processing_options_state"]; !ok || s == nil {
			r.note("data_processing_options_state", reasonGeolocate)
			m["data_processing_options_state"] = json.Number("0")
		}
	}
}

func numberOr(v any) json.Number {
	n, _ := v.(json.Number)
	return n
}

// boundCustomData keeps custom_data within maxCustomDataBytes: custom
// properties go first, then contents, then the whole of it.
func (r *repairer) boundCustomData(cd map[string]any) any {
	size := func() int {
		b, err := json.Marshal(cd)
		if err != nil {
			return math.MaxInt
		}
		return len(b)
	}
	if size() <= maxCustomDataBytes {
		return cd
	}
	for k := range cd {
		if !knownFieldPaths["custom_data."+k] {
			delete(cd, k)
		}
	}
	r.note("custom_data", reasonTooLarge)
	if size() <= maxCustomDataBytes {
		return cd
	}
	delete(cd, "contents")
	r.note("custom_data.contents", reasonTooLarge)
	if size() <= maxCustomDataBytes {
		return cd
	}
	return nil
}
