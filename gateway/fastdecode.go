package gateway

import (
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
	"github.com/tagway/tagway/internal/jsonscan"
)

// fastCollect decodes a /collect body in one pass without reflection, for
// the shape browsers send: exact field names, each at most once, strings
// without escapes, numbers of the fields' types. It reports false for
// anything else (unusual but valid input as well as invalid input), and the
// caller then reads the body with readEnvelope, leniently.
//
// For every body it accepts, the result equals what decodeStrict gives
// (req with Events left nil, and each event as decodeStrict decodes
// req.Events[i] into a collectEvent); TestFastCollectMatchesStrict and
// FuzzFastCollect hold it to that. custom_data is kept as its raw bytes (a
// subslice of body), as decodeStrict keeps it.
//
// The strings of the result share body's memory, so body must not change
// afterwards (readBody's buffer never does): that saves a copy of every
// request's body. It stops, reporting false, at the event after the first
// maxEvents.
func fastCollect(body []byte, req *collectRequest, maxEvents int) ([]collectEvent, bool) {
	s := fastScanner{b: body, str: readOnlyString(body)}
	var events []collectEvent
	const (
		fVID = 1 << iota
		fURL
		fReferrer
		fConsent
		fEvents
		fSentAt
		fDebug
	)
	seen := 0
	ok := s.object(func(key []byte) bool {
		var bit int
		switch string(key) {
		case "vid":
			bit = fVID
		case "url":
			bit = fURL
		case "referrer":
			bit = fReferrer
		case "consent":
			bit = fConsent
		case "events":
			bit = fEvents
		case "sent_at":
			bit = fSentAt
		case "debug":
			bit = fDebug
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		switch bit {
		case fVID:
			return s.stringInto(&req.VID)
		case fURL:
			return s.stringInto(&req.URL)
		case fReferrer:
			return s.stringInto(&req.Referrer)
		case fConsent:
			return s.consent(&req.Consent)
		case fSentAt:
			return s.int64Into(&req.SentAt)
		case fDebug:
			return s.boolean(&req.Debug)
		default:
			if !s.peek('[') {
				return false
			}
			events = make([]collectEvent, 0, 1)
			return s.array(func() bool {
				if len(events) == maxEvents {
					return false
				}
				events = append(events, collectEvent{})
				return s.event(&events[len(events)-1])
			})
		}
	})
	if !ok || events == nil {
		return nil, false
	}
	s.ws()
	return events, s.i == len(s.b)
}

// readOnlyString returns b as a string without copying it. The caller
// promises that b is never modified afterwards, which is what makes the
// string immutable as Go requires.
func readOnlyString(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// fastScanner reads JSON from b at i. Every method reports false on input
// it does not handle; the caller then gives up.
type fastScanner struct {
	b []byte
	i int
	// str is b as a string, when the caller made one: the strings read
	// are then substrings of it (one copy of the input instead of one per
	// string).
	str string
}

// text returns v, which rawString read (a subslice of b), as a string.
func (s *fastScanner) text(v []byte) string {
	if s.str == "" || len(v) == 0 {
		return string(v)
	}
	off := cap(s.b) - cap(v) // v = b[off:off+len(v)]
	return s.str[off : off+len(v)]
}

func (s *fastScanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek skips white space and reports whether the next byte is c.
func (s *fastScanner) peek(c byte) bool {
	s.ws()
	return s.i < len(s.b) && s.b[s.i] == c
}

// null consumes a null literal when one is next.
func (s *fastScanner) null() bool {
	if s.peek('n') && len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "null" {
		s.i += 4
		return true
	}
	return false
}

// object reads an object, calling field for each key with the scanner
// placed before the value; field must consume the value.
func (s *fastScanner) object(field func(key []byte) bool) bool {
	if !s.peek('{') {
		return false
	}
	s.i++
	if s.peek('}') {
		s.i++
		return true
	}
	for {
		key, ok := s.rawString()
		if !ok || !s.peek(':') {
			return false
		}
		s.i++
		if !field(key) {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// knownFields reads an object whose keys are among names, each at most
// once (at most 64 names), calling field with the scanner placed before
// the value of names[i]; field must consume it. Any other key fails.
func (s *fastScanner) knownFields(names []string, field func(i int) bool) bool {
	var seen uint64
	return s.object(func(key []byte) bool {
		f := -1
		for i, name := range names {
			if string(key) == name {
				f = i
				break
			}
		}
		if f < 0 || seen&(1<<f) != 0 {
			return false
		}
		seen |= 1 << f
		return field(f)
	})
}

// array reads an array, calling elem with the scanner placed before each
// element; elem must consume it.
func (s *fastScanner) array(elem func() bool) bool {
	if !s.peek('[') {
		return false
	}
	s.i++
	if s.peek(']') {
		s.i++
		return true
	}
	for {
		if !elem() {
			return false
		}
		s.ws()
		if s.i >= len(s.b) {
			return false
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			return false
		}
	}
}

// rawString reads a string without escapes, of valid UTF-8 without control
// characters, and returns its bytes (a subslice of b).
func (s *fastScanner) rawString() ([]byte, bool) {
	if !s.peek('"') {
		return nil, false
	}
	start := s.i + 1
	ascii := true
	for i := start; i < len(s.b); i++ {
		// Plain text eight bytes at a time; then the byte that ends it.
		if i += jsonscan.Plain(s.b[i:], false); i == len(s.b) {
			break
		}
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			v := s.b[start:i]
			return v, ascii || utf8.Valid(v)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, false
}

// stringInto reads a string or null (which, as encoding/json does, leaves
// dst as it is).
func (s *fastScanner) stringInto(dst *string) bool {
	if s.null() {
		return true
	}
	v, ok := s.rawString()
	if ok {
		*dst = s.text(v)
	}
	return ok
}

// strings reads an array of strings, or null.
func (s *fastScanner) strings(dst *[]string) bool {
	if s.null() {
		*dst = nil
		return true
	}
	out := []string{}
	ok := s.array(func() bool {
		v, ok := s.rawString()
		out = append(out, s.text(v))
		return ok
	})
	*dst = out
	return ok
}

// number reads a JSON number and returns its literal.
func (s *fastScanner) number() ([]byte, bool) {
	s.ws()
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
		}
		if i == d {
			return nil, false
		}
	}
	s.i = i
	return b[start:i], true
}

// int64Into reads an integer into dst, or null (which, as encoding/json
// does, leaves dst as it is).
func (s *fastScanner) int64Into(dst *int64) bool {
	if s.null() {
		return true
	}
	lit, ok := s.number()
	if !ok {
		return false
	}
	n, err := strconv.ParseInt(string(lit), 10, 64)
	if err != nil {
		return false
	}
	*dst = n
	return true
}

// fastEventJSON returns the JSON of the i-th event of a body fastCollect
// took (a subslice of body), for the rare event that needs repair.
func fastEventJSON(body []byte, i int) []byte {
	s := fastScanner{b: body}
	var out []byte
	s.object(func(key []byte) bool {
		if string(key) != "events" {
			return s.skip(0)
		}
		n := 0
		return s.array(func() bool {
			s.ws()
			start := s.i
			ok := s.skip(0)
			if n == i {
				out = body[start:s.i]
			}
			n++
			return ok
		})
	})
	return out
}

// int64Ptr reads an integer into a new *int64 (nil for null).
func (s *fastScanner) int64Ptr(dst **int64) bool {
	if s.null() {
		*dst = nil
		return true
	}
	var n int64
	if !s.int64Into(&n) {
		return false
	}
	*dst = &n
	return true
}

// intPtr reads an integer into a new *int (nil for null).
func (s *fastScanner) intPtr(dst **int) bool {
	var n *int64
	if !s.int64Ptr(&n) {
		return false
	}
	if n == nil {
		*dst = nil
		return true
	}
	v := int(*n)
	if int64(v) != *n {
		return false // wider than int on this platform
	}
	*dst = &v
	return true
}

// boolean reads true, false or null (which leaves dst as it is).
func (s *fastScanner) boolean(dst *bool) bool {
	if s.null() {
		return true
	}
	s.ws()
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		*dst, s.i = true, s.i+4
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		*dst, s.i = false, s.i+5
	default:
		return false
	}
	return true
}

// consent reads the consent object or null.
func (s *fastScanner) consent(dst **wireConsent) bool {
	if s.null() {
		*dst = nil
		return true
	}
	c := &wireConsent{}
	seen := 0
	ok := s.object(func(key []byte) bool {
		var f *string
		var bit int
		switch string(key) {
		case "ad_storage":
			f, bit = &c.AdStorage, 1
		case "ad_user_data":
			f, bit = &c.AdUserData, 2
		case "ad_personalization":
			f, bit = &c.AdPersonalization, 4
		case "analytics_storage":
			f, bit = &c.AnalyticsStorage, 8
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return s.stringInto(f)
	})
	*dst = c
	return ok
}

// eventFields are the keys of a browser event, by bit.
var eventFields = [...]string{"event_name", "event_id", "event_time", "event_source_url", "custom_data", "user_data",
	"action_source", "opt_out", "referrer_url", "data_processing_options", "data_processing_options_country",
	"data_processing_options_state"}

// event reads one browser event.
func (s *fastScanner) event(ev *collectEvent) bool {
	return s.knownFields(eventFields[:], func(f int) bool {
		switch f {
		case 0:
			return s.stringInto(&ev.EventName)
		case 1:
			return s.stringInto(&ev.EventID)
		case 2:
			return s.int64Ptr(&ev.EventTime)
		case 3:
			return s.stringInto(&ev.EventSourceURL)
		case 4:
			// Decoded here in the usual shape, so it is read once; else
			// kept raw for decodeCustomData (null included).
			if start := s.i; !s.peek('n') {
				if cd, ok := s.customData(); ok {
					ev.CustomData, ev.customData = s.b[start:s.i], cd
					return true
				}
				s.i = start
			}
			return s.rawValue(&ev.CustomData)
		case 5:
			return s.userData(&ev.UserData)
		case 6:
			return s.stringInto(&ev.ActionSource)
		case 7:
			return s.boolean(&ev.OptOut)
		case 8:
			return s.stringInto(&ev.ReferrerURL)
		case 9:
			return s.strings(&ev.DataProcessingOptions)
		case 10:
			return s.intPtr(&ev.DataProcessingOptionsCountry)
		default:
			return s.intPtr(&ev.DataProcessingOptionsState)
		}
	})
}

// userData reads user_data: an object whose values are strings, arrays of
// strings or null (as pii.RawUserData reads it), or null.
func (s *fastScanner) userData(dst *pii.RawUserData) bool {
	if s.null() {
		*dst = nil
		return true
	}
	out := make(pii.RawUserData, 4)
	// The lone values (the usual form) share one backing array; each list
	// is capped at its own element, so appending to one copies it.
	var lone []string
	ok := s.object(func(key []byte) bool {
		k := s.text(key)
		if _, dup := out[k]; dup {
			return false
		}
		if s.null() {
			out[k] = nil
			return true
		}
		if s.peek('"') {
			v, ok := s.rawString()
			if len(lone) == cap(lone) {
				lone = make([]string, 0, 8)
			}
			lone = append(lone, s.text(v))
			out[k] = pii.StringList(lone[len(lone)-1 : len(lone) : len(lone)])
			return ok
		}
		var l []string
		if !s.strings(&l) {
			return false
		}
		out[k] = l
		return true
	})
	*dst = out
	return ok
}

// rawValue reads any JSON value, checking its syntax, and keeps its bytes
// (a subslice of b).
func (s *fastScanner) rawValue(dst *json.RawMessage) bool {
	s.ws()
	start := s.i
	if !s.skip(0) {
		return false
	}
	*dst = s.b[start:s.i]
	return true
}

// skip reads any JSON value, checking its syntax (strings may hold any
// valid escape here), up to a nesting depth of 64.
func (s *fastScanner) skip(depth int) bool {
	if depth > 64 || !func() bool { s.ws(); return s.i < len(s.b) }() {
		return false
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(func([]byte) bool { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() bool { return s.skip(depth + 1) })
	case c == '"':
		return s.skipString()
	case c == 't' || c == 'f':
		var b bool
		return s.boolean(&b)
	case c == 'n':
		return s.null()
	}
	_, ok := s.number()
	return ok
}

// skipString reads a string with any valid escapes (object keys inside a
// skipped value go through rawString, so they still may not hold escapes).
func (s *fastScanner) skipString() bool {
	b := s.b
	for i := s.i + 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return true
		case c < 0x20:
			return false
		case c == '\\':
			i++
			if i >= len(b) {
				return false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return false
				}
				for _, h := range b[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false
					}
				}
				i += 4
			default:
				return false
			}
		}
	}
	return false
}

// contentKeys are the keys of one custom_data.contents item.
var contentKeys = [...]string{"id", "quantity", "item_price", "delivery_category", "title"}

// customDataKeys are the typed keys of custom_data, by bit.
var customDataKeys = [...]string{"value", "currency", "content_ids", "contents", "content_type", "content_name",
	"content_category", "num_items", "order_id", "predicted_ltv", "search_string", "status", "delivery_category"}

// fastCustomData decodes custom_data in one pass without reflection, for
// the shape browsers send: typed keys only (destinations.CustomData's), each
// at most once, strings without escapes, numbers as JSON numbers. It
// reports false for anything else (custom properties, numeric strings,
// unusual or invalid input), and the caller then decodes with
// CustomData.UnmarshalJSON. For every input it accepts, the result equals
// UnmarshalJSON's (TestFastCustomDataMatchesUnmarshal, FuzzFastCustomData).
// As with fastCollect, the strings share raw's memory: raw must not change
// afterwards.
func fastCustomData(raw []byte) (*destinations.CustomData, bool) {
	s := fastScanner{b: raw, str: readOnlyString(raw)}
	cd, ok := s.customData()
	if !ok {
		return nil, false
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, false
	}
	return cd, true
}

// customData reads a custom_data object of the shape fastCustomData
// takes, currency in upper case; false for anything else, the scanner then
// anywhere inside it.
func (s *fastScanner) customData() (*destinations.CustomData, bool) {
	cd := &destinations.CustomData{}
	ok := s.knownFields(customDataKeys[:], func(f int) bool {
		switch customDataKeys[f] {
		case "value":
			return s.float64Ptr(&cd.Value)
		case "currency":
			return s.stringInto(&cd.Currency)
		case "content_ids":
			return s.strings(&cd.ContentIDs)
		case "contents":
			return s.contents(&cd.Contents)
		case "content_type":
			return s.stringInto(&cd.ContentType)
		case "content_name":
			return s.stringInto(&cd.ContentName)
		case "content_category":
			return s.stringInto(&cd.ContentCategory)
		case "num_items":
			return s.intPtr(&cd.NumItems)
		case "order_id":
			return s.stringInto(&cd.OrderID)
		case "predicted_ltv":
			return s.float64Ptr(&cd.PredictedLTV)
		case "search_string":
			return s.stringInto(&cd.SearchString)
		case "status":
			return s.stringInto(&cd.Status)
		default:
			return s.stringInto(&cd.DeliveryCategory)
		}
	})
	if !ok || !upperASCII(cd.Currency) {
		// A code in lower case is left to the slow path, which on the
		// browser path records that it fixed it.
		return nil, false
	}
	return cd, true
}

// upperASCII reports whether s holds no lower-case ASCII letter.
func upperASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return false
		}
	}
	return true
}

// float64Ptr reads a number into a new *float64 (nil for null), as
// encoding/json reads it.
func (s *fastScanner) float64Ptr(dst **float64) bool {
	if s.null() {
		*dst = nil
		return true
	}
	lit, ok := s.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return false
	}
	*dst = &v
	return true
}

// contents reads custom_data.contents: an array of objects with the keys
// of destinations.Content, each at most once, or null.
func (s *fastScanner) contents(dst *[]destinations.Content) bool {
	if s.null() {
		*dst = nil
		return true
	}
	out := []destinations.Content{}
	ok := s.array(func() bool {
		out = append(out, destinations.Content{})
		c := &out[len(out)-1]
		return s.knownFields(contentKeys[:], func(f int) bool {
			switch contentKeys[f] {
			case "id":
				return s.stringInto(&c.ID)
			case "quantity":
				return s.intPtr(&c.Quantity)
			case "item_price":
				return s.float64Ptr(&c.ItemPrice)
			case "delivery_category":
				return s.stringInto(&c.DeliveryCategory)
			default:
				return s.stringInto(&c.Title)
			}
		})
	})
	*dst = out
	return ok
}

// customDataNeedsRepair reports whether custom_data, which decoded, holds
// what the decoders read leniently and the browser path records as a fix:
// value, predicted_ltv or num_items as a string, or a currency that is not
// an upper-case code. It reads only the top-level keys; true also for
// anything it cannot read (the repair then decides).
func customDataNeedsRepair(raw []byte) bool {
	if len(raw) == 0 {
		return false
	}
	s := fastScanner{b: raw}
	if s.null() {
		return false
	}
	repair := false
	ok := s.object(func(key []byte) bool {
		switch string(key) {
		case "value", "predicted_ltv", "num_items":
			if s.peek('"') {
				repair = true
			}
		case "currency":
			if s.peek('"') {
				v, ok := s.rawString()
				if !ok || !upperASCII(string(v)) || strings.TrimSpace(string(v)) != string(v) {
					repair = true
				}
				return ok
			}
		}
		return s.skip(0)
	})
	return repair || !ok
}
