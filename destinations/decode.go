package destinations

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// DecodeEvents reads a JSON array of events. For every input it gives what
// json.Unmarshal into a []Event gives: the same events, or an error exactly
// when json.Unmarshal fails (then json.Unmarshal's error, and no events).
//
// The array Event.AppendJSON writes (and json.Marshal wrote before it) is
// read in one pass without reflection: keys in any order but spelled
// exactly and each once, values of the fields' types (no null), strings
// with any escape, and custom_data's custom properties. Anything else (an
// unknown or case-folded key, a repeated key, null, a numeric string, a
// number of the wrong form, invalid JSON) is left to json.Unmarshal, so
// the result never differs; TestDecodeEventsMatchesUnmarshal and
// FuzzDecodeEvents hold it to that.
//
// The events' strings share the memory of one copy of data, so keeping
// any of them keeps that copy.
func DecodeEvents(data []byte) ([]Event, error) {
	if evs, ok := decodeOnePass(data); ok {
		return evs, nil
	}
	var evs []Event
	if err := json.Unmarshal(data, &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// decodeOnePass reads data in one pass, or reports false.
func decodeOnePass(data []byte) ([]Event, bool) {
	d := eventDecoder{b: data, s: string(data)}
	return d.events()
}

// eventDecoder reads JSON from s (b: the same bytes) at i. Every method
// reports false on input it does not handle (valid or not); the whole
// decode then falls back.
//
// Strings without escapes are substrings of s. Pointers and short slices
// are carved from slabs shared by the events of one decode, so an event
// costs no allocation of its own but for its maps and escaped strings.
type eventDecoder struct {
	b []byte
	s string
	i int
	// left estimates the events still to read (the current one
	// included); it sizes new slabs.
	left int

	floats   []float64
	ints     []int
	strs     []string
	customs  []CustomData
	contents []Content

	// Scratch for arrays of unknown length, copied into a slab when read.
	strBuf     []string
	contentBuf []Content
}

// maxSkipDepth bounds the nesting of a custom property's value; deeper
// values are left to encoding/json.
const maxSkipDepth = 64

// carve returns n zeroed elements of *slab, capped so that an append to
// them never reaches a neighbour. A new slab holds at least want elements.
// n == 0 gives an empty slice that is not nil, as encoding/json gives for
// an empty array.
func carve[T any](slab *[]T, n, want int) []T {
	if n == 0 {
		return []T{}
	}
	s := *slab
	if cap(s)-len(s) < n {
		s = make([]T, 0, max(n, want))
	}
	*slab = s[:len(s)+n]
	return s[len(s) : len(s)+n : len(s)+n]
}

func (d *eventDecoder) events() ([]Event, bool) {
	// A capacity hint; `{"event_name"` is cheaper to count than the key
	// alone, whose first byte, a quote, is everywhere.
	n := strings.Count(d.s, `{"event_name"`)
	d.left = max(n, 1)
	evs := make([]Event, 0, n)
	ok := d.array(func() bool {
		evs = append(evs, Event{})
		ok := d.event(&evs[len(evs)-1])
		d.left = max(d.left-1, 1)
		return ok
	})
	d.ws()
	return evs, ok && d.i == len(d.s)
}

// object reads an object, calling member for each key with the decoder
// placed before the value. member reads the value and returns the key's
// bit, which fails the object when it comes again (0: the key may
// repeat), or false for a key it does not handle.
func (d *eventDecoder) object(member func(key string) (uint32, bool)) bool {
	if !d.consume('{') {
		return false
	}
	var seen uint32
	for first := true; ; first = false {
		done, ok := d.next(first, '}')
		if !ok {
			return false
		}
		if done {
			return true
		}
		key, ok := d.str()
		if !ok || !d.consume(':') {
			return false
		}
		bit, ok := member(key)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
}

// array reads an array, calling elem to read each element.
func (d *eventDecoder) array(elem func() bool) bool {
	if !d.consume('[') {
		return false
	}
	for first := true; ; first = false {
		done, ok := d.next(first, ']')
		if !ok {
			return false
		}
		if done {
			return true
		}
		if !elem() {
			return false
		}
	}
}

// next moves to the next element or member of an array or object whose
// opening bracket was read (first: none read yet); done reports its
// closing bracket end.
func (d *eventDecoder) next(first bool, end byte) (done, ok bool) {
	d.ws()
	if d.i >= len(d.s) {
		return false, false
	}
	if d.s[d.i] == end {
		d.i++
		return true, true
	}
	if first {
		return false, true
	}
	return false, d.consume(',') // a value must follow: the caller reads it
}

func (d *eventDecoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// consume skips white space and reads c.
func (d *eventDecoder) consume(c byte) bool {
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == c {
		d.i++
		return true
	}
	return false
}

// scanString reads a string, checking it as encoding/json does, and
// returns its bounds inside the quotes; plain reports that its bytes are
// its value (no escape, valid UTF-8).
func (d *eventDecoder) scanString() (start, end int, plain, ok bool) {
	d.ws()
	s, i := d.s, d.i
	if i >= len(s) || s[i] != '"' {
		return 0, 0, false, false
	}
	i++
	start, plain = i, true
	// Eight bytes at a time while none needs a look.
	for i+8 <= len(d.b) && !special(binary.LittleEndian.Uint64(d.b[i:])) {
		i += 8
	}
	for i < len(s) {
		switch c := s[i]; {
		case c == '"':
			d.i = i + 1
			return start, i, plain, true
		case c < 0x20:
			return 0, 0, false, false
		case c == '\\':
			plain = false
			if i+1 >= len(s) {
				return 0, 0, false, false
			}
			switch s[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(s) || hex4(s[i+2:i+6]) < 0 {
					return 0, 0, false, false
				}
				i += 6
			default:
				return 0, 0, false, false
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				plain = false // becomes U+FFFD
			}
			i += size
		}
	}
	return 0, 0, false, false
}

// special reports whether any of the eight bytes of x is a quote, a
// backslash, a control character or not ASCII. (A borrow may flag a byte
// above one of those too, which only matters when there is one.)
func special(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(lo*'"'), x^(lo*'\\')
	return ((q-lo)&^q|(bs-lo)&^bs|(x-lo*0x20)|x)&hi != 0
}

// str reads a string's value.
func (d *eventDecoder) str() (string, bool) {
	start, end, plain, ok := d.scanString()
	switch {
	case !ok:
		return "", false
	case plain:
		return d.s[start:end], true
	}
	return unescape(d.s[start:end]), true
}

// strInto reads a string into dst.
func (d *eventDecoder) strInto(dst *string) bool {
	var ok bool
	*dst, ok = d.str()
	return ok
}

// consentInto reads a consent state into dst.
func (d *eventDecoder) consentInto(dst *ConsentState) bool {
	s, ok := d.str()
	*dst = ConsentState(s)
	return ok
}

// unescape gives the value of a string's checked contents as
// encoding/json does: escapes resolved, a \u escape of half a surrogate
// pair and invalid UTF-8 each as U+FFFD.
func unescape(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			e := s[i+1]
			i += 2
			switch e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'u':
				r := hex4(s[i : i+4])
				i += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2 = hex4(s[i+2 : i+6])
					}
					if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
						i += 6
						b.WriteRune(dec)
						continue
					}
					r = unicode.ReplacementChar
				}
				b.WriteRune(r)
			default: // '"', '\\', '/'
				b.WriteByte(e)
			}
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			i++
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			b.WriteRune(r)
			i += size
		}
	}
	return b.String()
}

// hex4 returns the value of four hex digits, or -1.
func hex4(s string) rune {
	var r rune
	for i := range 4 {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}

// number reads a JSON number and returns its literal; integer reports
// that it has neither fraction nor exponent.
func (d *eventDecoder) number() (lit string, integer, ok bool) {
	d.ws()
	s, i := d.s, d.i
	start := i
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return "", false, false
	}
	integer = true
	if i < len(s) && s[i] == '.' {
		integer = false
		i++
		if i = digits(s, i); i < 0 {
			return "", false, false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		integer = false
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if i = digits(s, i); i < 0 {
			return "", false, false
		}
	}
	d.i = i
	return s[start:i], integer, true
}

// digits skips the digits of s at i, at least one; -1 when there is none.
func digits(s string, i int) int {
	start := i
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	if i == start {
		return -1
	}
	return i
}

// int64Into reads an integer into dst, as encoding/json reads one into an
// integer of bits bits.
func (d *eventDecoder) int64Into(dst *int64, bits int) bool {
	lit, integer, ok := d.number()
	if !ok || !integer {
		return false
	}
	n, err := strconv.ParseInt(lit, 10, bits)
	*dst = n
	return err == nil
}

// intPtr reads an integer into a new *int.
func (d *eventDecoder) intPtr(dst **int) bool {
	var n int64
	if !d.int64Into(&n, strconv.IntSize) {
		return false
	}
	p := &carve(&d.ints, 1, 2*d.left)[0]
	*p = int(n)
	*dst = p
	return true
}

// floatPtr reads a number into a new *float64.
func (d *eventDecoder) floatPtr(dst **float64) bool {
	lit, _, ok := d.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(lit, 64)
	if err != nil {
		return false
	}
	p := &carve(&d.floats, 1, 2*d.left)[0]
	*p = f
	*dst = p
	return true
}

// boolInto reads true or false into dst.
func (d *eventDecoder) boolInto(dst *bool) bool {
	d.ws()
	switch rest := d.s[d.i:]; {
	case strings.HasPrefix(rest, "true"):
		*dst = true
		d.i += 4
	case strings.HasPrefix(rest, "false"):
		*dst = false
		d.i += 5
	default:
		return false
	}
	return true
}

// stringList reads an array of strings into dst.
func (d *eventDecoder) stringList(dst *[]string) bool {
	buf := d.strBuf[:0]
	ok := d.array(func() bool {
		s, ok := d.str()
		buf = append(buf, s)
		return ok
	})
	d.strBuf = buf
	*dst = carve(&d.strs, len(buf), 8*d.left)
	copy(*dst, buf)
	return ok
}

// event reads one event into ev (a zero Event).
func (d *eventDecoder) event(ev *Event) bool {
	return d.object(func(key string) (uint32, bool) {
		switch key {
		case "event_name":
			return 1 << 0, d.strInto(&ev.EventName)
		case "event_time":
			return 1 << 1, d.int64Into(&ev.EventTime, 64)
		case "event_id":
			return 1 << 2, d.strInto(&ev.EventID)
		case "event_source_url":
			return 1 << 3, d.strInto(&ev.EventSourceURL)
		case "referrer_url":
			return 1 << 4, d.strInto(&ev.ReferrerURL)
		case "action_source":
			return 1 << 5, d.strInto(&ev.ActionSource)
		case "opt_out":
			return 1 << 6, d.boolInto(&ev.OptOut)
		case "user_data":
			return 1 << 7, d.userData(&ev.UserData)
		case "custom_data":
			return 1 << 8, d.customData(&ev.CustomData)
		case "data_processing_options":
			return 1 << 9, d.stringList(&ev.DataProcessingOptions)
		case "data_processing_options_country":
			return 1 << 10, d.intPtr(&ev.DataProcessingOptionsCountry)
		case "data_processing_options_state":
			return 1 << 11, d.intPtr(&ev.DataProcessingOptionsState)
		case "tw":
			return 1 << 12, d.context(&ev.Context)
		}
		return 0, false
	})
}

func (d *eventDecoder) userData(u *UserData) bool {
	return d.object(func(key string) (uint32, bool) {
		switch key {
		case "em":
			return 1 << 0, d.stringList(&u.Em)
		case "ph":
			return 1 << 1, d.stringList(&u.Ph)
		case "fn":
			return 1 << 2, d.stringList(&u.Fn)
		case "ln":
			return 1 << 3, d.stringList(&u.Ln)
		case "ge":
			return 1 << 4, d.stringList(&u.Ge)
		case "db":
			return 1 << 5, d.stringList(&u.Db)
		case "ct":
			return 1 << 6, d.stringList(&u.Ct)
		case "st":
			return 1 << 7, d.stringList(&u.St)
		case "zp":
			return 1 << 8, d.stringList(&u.Zp)
		case "country":
			return 1 << 9, d.stringList(&u.Country)
		case "external_id":
			return 1 << 10, d.stringList(&u.ExternalID)
		case "client_ip_address":
			return 1 << 11, d.strInto(&u.ClientIPAddress)
		case "client_user_agent":
			return 1 << 12, d.strInto(&u.ClientUserAgent)
		case "fbc":
			return 1 << 13, d.strInto(&u.Fbc)
		case "fbp":
			return 1 << 14, d.strInto(&u.Fbp)
		case "subscription_id":
			return 1 << 15, d.strInto(&u.SubscriptionID)
		case "fb_login_id":
			return 1 << 16, d.strInto(&u.FbLoginID)
		case "lead_id":
			return 1 << 17, d.strInto(&u.LeadID)
		}
		return 0, false
	})
}

// customData reads custom_data as CustomData.UnmarshalJSON does, into a
// new CustomData. A custom property (a key of no typed field) is kept as
// its raw value unless its key matches a typed field's but for case
// (encoding/json would then read it into that field too).
func (d *eventDecoder) customData(dst **CustomData) bool {
	c := &carve(&d.customs, 1, d.left)[0]
	*dst = c
	ok := d.object(func(key string) (uint32, bool) {
		switch key {
		case "value":
			return 1 << 0, d.floatPtr(&c.Value)
		case "currency":
			return 1 << 1, d.strInto(&c.Currency)
		case "content_ids":
			return 1 << 2, d.stringList(&c.ContentIDs)
		case "contents":
			return 1 << 3, d.contentList(&c.Contents)
		case "content_type":
			return 1 << 4, d.strInto(&c.ContentType)
		case "content_name":
			return 1 << 5, d.strInto(&c.ContentName)
		case "content_category":
			return 1 << 6, d.strInto(&c.ContentCategory)
		case "num_items":
			return 1 << 7, d.intPtr(&c.NumItems)
		case "order_id":
			return 1 << 8, d.strInto(&c.OrderID)
		case "predicted_ltv":
			return 1 << 9, d.floatPtr(&c.PredictedLTV)
		case "search_string":
			return 1 << 10, d.strInto(&c.SearchString)
		case "status":
			return 1 << 11, d.strInto(&c.Status)
		case "delivery_category":
			return 1 << 12, d.strInto(&c.DeliveryCategory)
		}
		return 0, d.customProperty(c, key)
	})
	c.Currency = strings.ToUpper(c.Currency)
	return ok
}

// customProperty reads the value of custom property key into c.Custom.
func (d *eventDecoder) customProperty(c *CustomData, key string) bool {
	for _, k := range typedCustomKeys {
		if strings.EqualFold(key, k) {
			return false
		}
	}
	if _, repeated := c.Custom[key]; repeated {
		return false
	}
	d.ws()
	start := d.i
	if !d.skip(0) {
		return false
	}
	if c.Custom == nil {
		c.Custom = make(map[string]json.RawMessage)
	}
	c.Custom[key] = json.RawMessage(d.s[start:d.i])
	return true
}

// skip reads any JSON value, checking its syntax, up to maxSkipDepth
// levels of nesting.
func (d *eventDecoder) skip(depth int) bool {
	d.ws()
	if d.i >= len(d.s) || depth > maxSkipDepth {
		return false
	}
	switch d.s[d.i] {
	case '{':
		return d.object(func(string) (uint32, bool) { return 0, d.skip(depth + 1) })
	case '[':
		return d.array(func() bool { return d.skip(depth + 1) })
	case '"':
		_, _, _, ok := d.scanString()
		return ok
	case 't', 'f':
		var b bool
		return d.boolInto(&b)
	case 'n':
		if strings.HasPrefix(d.s[d.i:], "null") {
			d.i += 4
			return true
		}
		return false
	}
	_, _, ok := d.number()
	return ok
}

// contentList reads custom_data.contents into dst.
func (d *eventDecoder) contentList(dst *[]Content) bool {
	buf := d.contentBuf[:0]
	ok := d.array(func() bool {
		buf = append(buf, Content{})
		return d.content(&buf[len(buf)-1])
	})
	d.contentBuf = buf
	*dst = carve(&d.contents, len(buf), 2*d.left)
	copy(*dst, buf)
	return ok
}

func (d *eventDecoder) content(c *Content) bool {
	return d.object(func(key string) (uint32, bool) {
		switch key {
		case "id":
			return 1 << 0, d.strInto(&c.ID)
		case "quantity":
			return 1 << 1, d.intPtr(&c.Quantity)
		case "item_price":
			return 1 << 2, d.floatPtr(&c.ItemPrice)
		case "delivery_category":
			return 1 << 3, d.strInto(&c.DeliveryCategory)
		case "title":
			return 1 << 4, d.strInto(&c.Title)
		}
		return 0, false
	})
}

func (d *eventDecoder) context(c *Context) bool {
	return d.object(func(key string) (uint32, bool) {
		switch key {
		case "site":
			return 1 << 0, d.strInto(&c.SiteID)
		case "received_at":
			return 1 << 1, d.int64Into(&c.ReceivedAt, 64)
		case "source":
			return 1 << 2, d.strInto(&c.Source)
		case "consent":
			return 1 << 3, d.consent(&c.Consent)
		case "test_event_code":
			return 1 << 4, d.strInto(&c.TestEventCode)
		case "country":
			return 1 << 5, d.strInto(&c.Country)
		case "region":
			return 1 << 6, d.strInto(&c.Region)
		case "route":
			return 1 << 7, d.strInto(&c.Route)
		case "vid":
			return 1 << 8, d.strInto(&c.VisitorID)
		case "click_ids":
			return 1 << 9, d.clickIDs(&c.ClickIDs)
		case "cookies":
			return 1 << 10, d.cookies(&c.Cookies)
		case "anonymous":
			return 1 << 11, d.boolInto(&c.Anonymous)
		case "incomplete":
			return 1 << 12, d.strInto(&c.Incomplete)
		}
		return 0, false
	})
}

func (d *eventDecoder) consent(c *Consent) bool {
	return d.object(func(key string) (uint32, bool) {
		switch key {
		case "ad_storage":
			return 1 << 0, d.consentInto(&c.AdStorage)
		case "ad_user_data":
			return 1 << 1, d.consentInto(&c.AdUserData)
		case "ad_personalization":
			return 1 << 2, d.consentInto(&c.AdPersonalization)
		case "analytics_storage":
			return 1 << 3, d.consentInto(&c.AnalyticsStorage)
		}
		return 0, false
	})
}

// clickIDs reads the click_ids map; as with encoding/json, a repeated
// key's last value wins.
func (d *eventDecoder) clickIDs(dst *map[string]ClickID) bool {
	m := make(map[string]ClickID)
	*dst = m
	return d.object(func(key string) (uint32, bool) {
		var id ClickID
		ok := d.object(func(key string) (uint32, bool) {
			switch key {
			case "v":
				return 1 << 0, d.strInto(&id.Value)
			case "at":
				return 1 << 1, d.int64Into(&id.At, 64)
			}
			return 0, false
		})
		m[key] = id
		return 0, ok
	})
}

// cookies reads the cookies map; as with encoding/json, a repeated key's
// last value wins.
func (d *eventDecoder) cookies(dst *map[string]string) bool {
	m := make(map[string]string)
	*dst = m
	return d.object(func(key string) (uint32, bool) {
		v, ok := d.str()
		m[key] = v
		return 0, ok
	})
}
