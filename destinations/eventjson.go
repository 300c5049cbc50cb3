package destinations

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/tagway/tagway/internal/jsonscan"
)

// AppendJSON appends e's JSON to dst: byte for byte what a json.Encoder
// with SetEscapeHTML(false) writes for e (without the newline), several
// times faster, without reflection. It fails, as the encoder does, on a
// NaN or infinite number. TestAppendJSONMatchesEncoder holds every field
// of Event to it, so a field added to Event without a line here fails that
// test.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	b := append(dst, `{"event_name":`...)
	b = appendJSONString(b, e.EventName, false)
	b = append(b, `,"event_time":`...)
	b = strconv.AppendInt(b, e.EventTime, 10)
	b = append(b, `,"event_id":`...)
	b = appendJSONString(b, e.EventID, false)
	b = appendStringField(b, `,"event_source_url":`, e.EventSourceURL, false)
	b = appendStringField(b, `,"referrer_url":`, e.ReferrerURL, false)
	b = append(b, `,"action_source":`...)
	b = appendJSONString(b, e.ActionSource, false)
	if e.OptOut {
		b = append(b, `,"opt_out":true`...)
	}
	b = append(b, `,"user_data":`...)
	b = e.UserData.appendJSON(b)
	if e.CustomData != nil {
		b = append(b, `,"custom_data":`...)
		var err error
		if b, err = e.CustomData.appendJSON(b); err != nil {
			return dst, err
		}
	}
	if len(e.DataProcessingOptions) > 0 {
		b = append(b, `,"data_processing_options":`...)
		b = appendStrings(b, e.DataProcessingOptions, false)
	}
	b = appendIntField(b, `,"data_processing_options_country":`, e.DataProcessingOptionsCountry)
	b = appendIntField(b, `,"data_processing_options_state":`, e.DataProcessingOptionsState)
	b = append(b, `,"tw":`...)
	b = e.Context.appendJSON(b)
	return append(b, '}'), nil
}

func (u *UserData) appendJSON(b []byte) []byte {
	b = append(b, '{')
	n := len(b)
	for _, f := range [...]struct {
		key    string
		values []string
	}{
		{`"em":`, u.Em}, {`"ph":`, u.Ph}, {`"fn":`, u.Fn}, {`"ln":`, u.Ln}, {`"ge":`, u.Ge}, {`"db":`, u.Db},
		{`"ct":`, u.Ct}, {`"st":`, u.St}, {`"zp":`, u.Zp}, {`"country":`, u.Country}, {`"external_id":`, u.ExternalID},
	} {
		if len(f.values) > 0 {
			b = appendKey(b, n, f.key)
			b = appendStrings(b, f.values, false)
		}
	}
	for _, f := range [...]struct{ key, value string }{
		{`"client_ip_address":`, u.ClientIPAddress}, {`"client_user_agent":`, u.ClientUserAgent},
		{`"fbc":`, u.Fbc}, {`"fbp":`, u.Fbp}, {`"subscription_id":`, u.SubscriptionID},
		{`"fb_login_id":`, u.FbLoginID}, {`"lead_id":`, u.LeadID},
	} {
		if f.value != "" {
			b = appendKey(b, n, f.key)
			b = appendJSONString(b, f.value, false)
		}
	}
	return append(b, '}')
}

// appendJSON writes what MarshalJSON writes, compacted as an encoder
// writes a Marshaler's output: the typed fields HTML-escaped (MarshalJSON
// uses json.Marshal), then the custom properties in key order.
func (c *CustomData) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	n := len(b)
	var err error
	if b, err = appendFloatField(b, n, `"value":`, c.Value); err != nil {
		return b, err
	}
	if c.Currency != "" {
		b = appendKey(b, n, `"currency":`)
		b = appendJSONString(b, c.Currency, true)
	}
	if len(c.ContentIDs) > 0 {
		b = appendKey(b, n, `"content_ids":`)
		b = appendStrings(b, c.ContentIDs, true)
	}
	if len(c.Contents) > 0 {
		b = appendKey(b, n, `"contents":`)
		b = append(b, '[')
		for i := range c.Contents {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = c.Contents[i].appendJSON(b); err != nil {
				return b, err
			}
		}
		b = append(b, ']')
	}
	for _, f := range [...]struct{ key, value string }{
		{`"content_type":`, c.ContentType}, {`"content_name":`, c.ContentName}, {`"content_category":`, c.ContentCategory},
	} {
		if f.value != "" {
			b = appendKey(b, n, f.key)
			b = appendJSONString(b, f.value, true)
		}
	}
	if c.NumItems != nil {
		b = appendKey(b, n, `"num_items":`)
		b = strconv.AppendInt(b, int64(*c.NumItems), 10)
	}
	if c.OrderID != "" {
		b = appendKey(b, n, `"order_id":`)
		b = appendJSONString(b, c.OrderID, true)
	}
	if b, err = appendFloatField(b, n, `"predicted_ltv":`, c.PredictedLTV); err != nil {
		return b, err
	}
	for _, f := range [...]struct{ key, value string }{
		{`"search_string":`, c.SearchString}, {`"status":`, c.Status}, {`"delivery_category":`, c.DeliveryCategory},
	} {
		if f.value != "" {
			b = appendKey(b, n, f.key)
			b = appendJSONString(b, f.value, true)
		}
	}
	if len(c.Custom) > 0 {
		keys := make([]string, 0, len(c.Custom))
		for k := range c.Custom {
			if !knownCustomKeys[k] {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			if len(b) > n {
				b = append(b, ',')
			}
			b = appendJSONString(b, k, true)
			b = append(b, ':')
			var buf bytes.Buffer
			if err := json.Compact(&buf, c.Custom[k]); err != nil {
				return b, err // as the encoder fails on an invalid Marshaler output
			}
			b = append(b, buf.Bytes()...)
		}
	}
	return append(b, '}'), nil
}

func (c *Content) appendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, c.ID, true)
	if c.Quantity != nil {
		b = append(b, `,"quantity":`...)
		b = strconv.AppendInt(b, int64(*c.Quantity), 10)
	}
	var err error
	if b, err = appendFloatField(b, 0, `"item_price":`, c.ItemPrice); err != nil {
		return b, err
	}
	b = appendStringField(b, `,"delivery_category":`, c.DeliveryCategory, true)
	b = appendStringField(b, `,"title":`, c.Title, true)
	return append(b, '}'), nil
}

func (c *Context) appendJSON(b []byte) []byte {
	b = append(b, `{"site":`...)
	b = appendJSONString(b, c.SiteID, false)
	if c.ReceivedAt != 0 {
		b = append(b, `,"received_at":`...)
		b = strconv.AppendInt(b, c.ReceivedAt, 10)
	}
	b = appendStringField(b, `,"source":`, c.Source, false)
	b = append(b, `,"consent":{`...)
	n := len(b)
	for _, f := range [...]struct {
		key   string
		value ConsentState
	}{
		{`"ad_storage":`, c.Consent.AdStorage}, {`"ad_user_data":`, c.Consent.AdUserData},
		{`"ad_personalization":`, c.Consent.AdPersonalization}, {`"analytics_storage":`, c.Consent.AnalyticsStorage},
	} {
		if f.value != "" {
			b = appendKey(b, n, f.key)
			b = appendJSONString(b, string(f.value), false)
		}
	}
	b = append(b, '}')
	b = appendStringField(b, `,"test_event_code":`, c.TestEventCode, false)
	b = appendStringField(b, `,"country":`, c.Country, false)
	b = appendStringField(b, `,"region":`, c.Region, false)
	b = appendStringField(b, `,"route":`, c.Route, false)
	b = appendStringField(b, `,"vid":`, c.VisitorID, false)
	if len(c.ClickIDs) > 0 {
		b = append(b, `,"click_ids":{`...)
		for i, k := range sortedKeys(c.ClickIDs) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k, false)
			b = append(b, `:{"v":`...)
			b = appendJSONString(b, c.ClickIDs[k].Value, false)
			b = append(b, `,"at":`...)
			b = strconv.AppendInt(b, c.ClickIDs[k].At, 10)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	if len(c.Cookies) > 0 {
		b = append(b, `,"cookies":{`...)
		for i, k := range sortedKeys(c.Cookies) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k, false)
			b = append(b, ':')
			b = appendJSONString(b, c.Cookies[k], false)
		}
		b = append(b, '}')
	}
	if c.Anonymous {
		b = append(b, `,"anonymous":true`...)
	}
	b = appendStringField(b, `,"incomplete":`, c.Incomplete, false)
	return append(b, '}')
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendKey appends a comma unless the object (whose first member would
// start at start) is still empty, then the quoted key and colon.
func appendKey(b []byte, start int, key string) []byte {
	if len(b) > start {
		b = append(b, ',')
	}
	return append(b, key...)
}

// appendStringField appends ,"key":"value" unless value is empty
// (omitempty); key includes the comma.
func appendStringField(b []byte, key, value string, escapeHTML bool) []byte {
	if value == "" {
		return b
	}
	return appendJSONString(append(b, key...), value, escapeHTML)
}

func appendIntField(b []byte, key string, v *int) []byte {
	if v == nil {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(*v), 10)
}

// appendFloatField appends a *float64 member unless nil; start is as for
// appendKey (0: always a comma).
func appendFloatField(b []byte, start int, key string, v *float64) ([]byte, error) {
	if v == nil {
		return b, nil
	}
	if start == 0 {
		b = append(b, ',')
		b = append(b, key...)
	} else {
		b = appendKey(b, start, key)
	}
	return appendFloat(b, *v)
}

func appendStrings(b []byte, values []string, escapeHTML bool) []byte {
	b = append(b, '[')
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v, escapeHTML)
	}
	return append(b, ']')
}

// appendFloat formats f as encoding/json does.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 becomes e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

// appendJSONString quotes s as encoding/json does: invalid UTF-8 becomes
// U+FFFD, U+2028 and U+2029 are escaped, and with escapeHTML so are <, >
// and &.
func appendJSONString(b []byte, s string, escapeHTML bool) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		// Plain text eight bytes at a time; then the byte that ends it.
		if n := jsonscan.PlainString(s[i:], escapeHTML); n > 0 {
			i += n
			continue
		}
		if c := s[i]; c < utf8.RuneSelf { // an ASCII byte to escape
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
