package loadgen

import (
	"strconv"
	"time"
)

// Body builds realistic POST /collect bodies: one Purchase or AddToCart with
// raw user_data (e-mail, phone and customer id, hashed by the gateway) and
// custom_data, about 600 bytes, as the demo shop's checkout sends them.
// Every call gets its own visitor seed and event id, so the gateway mints a
// new _fbp and hashes fresh values each time, as it would for distinct
// visitors.
type Body struct {
	// PageURL is the page the events happened on (default
	// http://127.0.0.1/product/sku-1); its host must be one of the site's
	// domains.
	PageURL string
	// Now stamps event_time (default time.Now).
	Now func() time.Time
	// Marker, when set, is added to custom_data as "bench_marker" so a fake
	// platform can pick out these events (the fault suite marks events it
	// wants rejected).
	Marker string
	// VisitorEvents is how many requests in a row come from one visitor
	// (default 1: each request is a new visitor). A visitor's requests
	// carry the same visitor seed and identifiers, and the load generator
	// sends back the cookies the target set on the visitor's earlier
	// answers, as a browser would.
	VisitorEvents int
}

// visitor returns the visitor of request n (counted from 1) of a worker.
func (b Body) visitor(n uint64) uint64 {
	if b.VisitorEvents <= 1 || n == 0 {
		return n
	}
	return (n-1)/uint64(b.VisitorEvents) + 1
}

// newVisitor reports whether request n (counted from 1) is its visitor's
// first.
func (b Body) newVisitor(n uint64) bool {
	return b.VisitorEvents <= 1 || n == 0 || (n-1)%uint64(b.VisitorEvents) == 0
}

// Append appends the body of request n of worker w to dst.
func (b Body) Append(dst []byte, w, n uint64) []byte {
	page := b.PageURL
	if page == "" {
		page = "http://127.0.0.1/product/sku-1"
	}
	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	t := now()
	purchase := n%2 == 0
	v := b.visitor(n)
	dst = append(dst, `{"vid":"`...)
	// The seed's time: up to a day before the hour, so that a visitor's
	// requests agree on it unless they straddle an hour (the cookies sent
	// back win then, as they do in a browser).
	dst = strconv.AppendInt(dst, t.Truncate(time.Hour).UnixMilli()-int64(v%86_400_000), 10)
	dst = append(dst, '.')
	dst = appendDigits(dst, w*1_000_000_007+v, 12)
	dst = append(dst, `","url":"`...)
	dst = append(dst, page...)
	dst = append(dst, `?utm_source=bench&utm_medium=cpc","referrer":"https://www.google.com/",`...)
	dst = append(dst, `"consent":{"ad_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"granted"},`...)
	dst = append(dst, `"events":[{"event_name":"`...)
	if purchase {
		dst = append(dst, "Purchase"...)
	} else {
		dst = append(dst, "AddToCart"...)
	}
	dst = append(dst, `","event_id":"`...)
	dst = AppendEventID(dst, w, n)
	dst = append(dst, `","event_time":`...)
	dst = strconv.AppendInt(dst, t.Unix(), 10)
	dst = append(dst, `,"custom_data":{"value":`...)
	dst = strconv.AppendInt(dst, int64(10+n%490), 10)
	dst = append(dst, `.90,"currency":"EUR","content_ids":["sku-`...)
	dst = strconv.AppendUint(dst, n%1000, 10)
	dst = append(dst, `","sku-42"],"contents":[{"id":"sku-42","quantity":1}],"content_type":"product","num_items":2`...)
	if purchase {
		dst = append(dst, `,"order_id":"`...)
		dst = strconv.AppendUint(dst, w, 10)
		dst = append(dst, '-')
		dst = strconv.AppendUint(dst, n, 10)
		dst = append(dst, '"')
	}
	if b.Marker != "" {
		dst = append(dst, `,"bench_marker":"`...)
		dst = append(dst, b.Marker...)
		dst = append(dst, '"')
	}
	dst = append(dst, `},"user_data":{"em":"Jane.Doe+`...)
	dst = strconv.AppendUint(dst, v, 10)
	dst = append(dst, `@Example.com","ph":"+1 (650) 555-`...)
	dst = appendDigits(dst, v, 4)
	dst = append(dst, `","external_id":"cust-`...)
	dst = strconv.AppendUint(dst, w, 10)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, v, 10)
	dst = append(dst, `"}}]}`...)
	return dst
}

// AppendEventID appends the event id Body uses for visitor n of worker w: a
// UUID-shaped string that is unique per (w, n) and can be recomputed.
func AppendEventID(dst []byte, w, n uint64) []byte {
	const hexd = "0123456789abcdef"
	var raw [16]byte
	for i := range 8 {
		raw[i] = byte(w >> (56 - 8*i))
		raw[8+i] = byte(n >> (56 - 8*i))
	}
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			dst = append(dst, '-')
		}
		dst = append(dst, hexd[c>>4], hexd[c&0xf])
	}
	return dst
}

// appendDigits appends the last width decimal digits of v, zero-padded.
func appendDigits(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}
