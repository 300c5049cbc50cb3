package orders

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"strconv"
	"time"
)

// minOrderUnix is the earliest order time accepted, 2000-01-01 UTC.
const minOrderUnix = 946684800

// problems collects a payload's problems, each a *PayloadError.
type problems []error

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, payloadErr(field, format, args...))
}

// err joins the problems; nil when there are none.
func (p problems) err() error { return errors.Join(p...) }

// decode reads body into v: one JSON object, nothing after it.
func decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return payloadErr("", "the body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return payloadErr("", "unexpected data after the JSON object")
	}
	return nil
}

// requireID checks a required id.
func (p *problems) requireID(field string, id jsonID) string {
	switch {
	case id.bad:
		p.add(field, "must be a positive integer or a string of digits")
	case id.v == "":
		p.add(field, "is required")
	}
	return id.v
}

// orderTime checks a required time of the order, read by parse.
func (p *problems) orderTime(field string, s *string, now time.Time, parse func(string) (time.Time, bool)) time.Time {
	if s == nil || *s == "" {
		p.add(field, "is required")
		return time.Time{}
	}
	t, ok := parse(*s)
	if !ok {
		p.add(field, "must be a date and time (RFC 3339)")
		return time.Time{}
	}
	if t.Unix() < minOrderUnix || t.After(now.Add(clockSkew)) {
		p.add(field, "is out of range (2000 to a day from now)")
		return time.Time{}
	}
	return t
}

// optionalTime reads a time that may be absent or null; a malformed one
// is a problem.
func (p *problems) optionalTime(field string, s *string, parse func(string) (time.Time, bool)) time.Time {
	if s == nil || *s == "" {
		return time.Time{}
	}
	t, ok := parse(*s)
	if !ok {
		p.add(field, "must be a date and time (RFC 3339)")
	}
	return t
}

func parseRFC3339(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t.UTC(), err == nil
}

// currency checks an ISO 4217 code and returns it upper case.
func (p *problems) currency(field, s string, required bool) string {
	if s == "" && !required {
		return ""
	}
	if len(s) != 3 {
		p.add(field, "must be a 3-letter ISO 4217 code")
		return ""
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		default:
			p.add(field, "must be a 3-letter ISO 4217 code")
			return ""
		}
	}
	return string(b)
}

// amount checks a required amount that may not be negative.
func (p *problems) amount(field string, a jsonAmount) Amount {
	switch {
	case a.bad:
		p.add(field, "must be a decimal amount (a number or a numeric string)")
	case !a.set:
		p.add(field, "is required")
	case a.v < 0:
		p.add(field, "must not be negative")
	}
	return a.v
}

// rawLineItem is a line item of either platform's payload; each fills its
// own variant field (Shopify variant_id, WooCommerce variation_id).
type rawLineItem struct {
	ID          jsonID     `json:"id"`
	ProductID   jsonID     `json:"product_id"`
	VariantID   jsonID     `json:"variant_id"`
	VariationID jsonID     `json:"variation_id"`
	SKU         *string    `json:"sku"`
	Quantity    jsonInt    `json:"quantity"`
	Price       jsonAmount `json:"price"`
}

// lineItems checks the line items and sets them on o, the first
// MaxLineItems of them.
func (p *problems) lineItems(o *Order, items []rawLineItem) {
	for i, li := range items {
		if i == MaxLineItems {
			o.LineItemsTruncated = true
			return
		}
		field := index("line_items", i)
		for _, id := range []jsonID{li.ID, li.ProductID, li.VariantID, li.VariationID} {
			if id.bad {
				p.add(field, "has an id that is not a positive integer")
			}
		}
		if li.Quantity.bad {
			p.add(field+".quantity", "must be a whole number from 0 to 10^9")
		}
		if li.Price.bad {
			p.add(field+".price", "must be a decimal amount (a number or a numeric string)")
		}
		id := cmp.Or(li.VariantID.v, li.VariationID.v, li.ProductID.v)
		if id == "" && li.SKU != nil && len(*li.SKU) <= MaxIDLen {
			id = *li.SKU
		}
		o.LineItems = append(o.LineItems, LineItem{ID: cmp.Or(id, li.ID.v), Quantity: li.Quantity.v, Price: li.Price.v})
	}
}

func index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }
