package queue

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/tagway/tagway/destinations"
)

// Stored forms of a stream entry's events. Field e holds the events; field
// v, when present, names how:
//
//	(no v)  e is the JSON array of destinations.Event (the first form;
//	        entries written before v existed have it, and small entries)
//	v = 1   e is that JSON array compressed with zlib (RFC 1950); written
//	        by earlier versions, still read
//	v = 2   e is that JSON array as one S2 block (github.com/klauspost/
//	        compress/s2, block format) compressed against entryDictV2
//
// Writers write v = 2: the dictionary holds what every event repeats
// (field names, consent, the common user agents and values), so only the
// digests and ids of an event stay literal. A dispatcher refuses
// (dead-letters) an entry of a version it does not know.
const (
	entryVersionZlib = "1"
	entryVersionS2   = "2"
	// compressMinBytes is the smallest payload worth compressing. It must
	// stay at least 128: an S2 block then starts with a two-byte length
	// (first byte >= 0x80), a zlib stream with 0x78 and JSON with '[', so
	// the first byte tells a stored payload's version (entryVersion).
	compressMinBytes = 256
	// maxInflatedEntry bounds an entry's decompressed size; the queue
	// writes at most MaxEntryBytes (64 KiB by default) per entry.
	maxInflatedEntry = 64 << 20
)

// entryDictV2 is the S2 dictionary of version 2. It is part of the stored
// format: entries written with it can only be read with these exact bytes,
// so it never changes (TestEntryDictV2Frozen); a new dictionary is a new
// version. It is one representative queued event per shape, in the order
// Event.AppendJSON writes fields, most common content last (S2 finds
// recent matches first).
const entryDictV2 = `[{"event_name":"ViewContent","event_time":1790000000,"event_id":"0b9e5c7a-2f4d-4c1e-9a3b-7d6e5f4a3b2c",` +
	`"event_source_url":"https://www.shop.example/products/","referrer_url":"https://www.google.com/","action_source":"website",` +
	`"user_data":{"client_ip_address":"2a01:cb00::1","client_user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) ` +
	`AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1","fbc":"fb.1.1790000000000.IwAR",` +
	`"fbp":"fb.1.1790000000000.1234567890"},"custom_data":{"value":29.99,"currency":"USD","content_ids":["SKU-1"],` +
	`"content_type":"product","content_name":"","content_category":""},"tw":{"site":"shop","received_at":1790000000000,` +
	`"source":"server","consent":{"ad_storage":"denied","ad_user_data":"denied","ad_personalization":"denied",` +
	`"analytics_storage":"denied"},"country":"US","region":"CA","vid":"1790000000000.123456789012","anonymous":true,` +
	`"click_ids":{"gclid":{"v":"","t":1790000000000},"ttclid":{"v":"","t":1790000000000}},"cookies":{"_ga":"GA1.1.","_ttp":""}}},` +
	`{"event_name":"PageView","event_time":1790000000,"event_id":"1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",` +
	`"event_source_url":"https://shop.example/collections/","referrer_url":"https://www.facebook.com/","action_source":"website",` +
	`"user_data":{"client_ip_address":"192.0.2.1","client_user_agent":"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 ` +
	`(KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36","fbp":"fb.1.1790000000000.1234567890"},` +
	`"data_processing_options":["LDU"],"data_processing_options_country":0,"data_processing_options_state":0,` +
	`"tw":{"site":"shop","received_at":1790000000000,"source":"browser","consent":{"ad_storage":"granted",` +
	`"ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"granted"},"vid":"1790000000000.123456789012"}},` +
	`{"event_name":"AddToCart","event_time":1790000000,"event_id":"2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a",` +
	`"event_source_url":"https://shop.example/products/","referrer_url":"https://shop.example/","action_source":"website",` +
	`"user_data":{"em":["","],"ph":["],"fn":["],"ln":["],"ct":["],"st":["],"zp":["],"country":["],"external_id":["],` +
	`"client_ip_address":"203.0.113.1","client_user_agent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) ` +
	`AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15","fbp":"fb.1.1790000000000.1234567890"},` +
	`"custom_data":{"value":49.9,"currency":"EUR","content_ids":["sku-1","sku-2"],"contents":[{"id":"sku-1","quantity":1,` +
	`"item_price":19.9},{"id":"sku-2","quantity":2,"item_price":15}],"content_type":"product","num_items":3},` +
	`"tw":{"site":"shop","received_at":1790000000000,"source":"browser","consent":{"ad_storage":"granted",` +
	`"ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"granted"},"vid":"1790000000000.123456789012"}},` +
	`{"event_name":"Purchase","event_time":1790000000,"event_id":"3e4f5a6b-7c8d-4e9f-0a1b-2c3d4e5f6a7b",` +
	`"event_source_url":"https://www.shop.example/checkout/thank-you?utm_source=facebook&utm_medium=cpc&utm_campaign=",` +
	`"referrer_url":"https://www.shop.example/checkout/","action_source":"website","user_data":{"em":["],"ph":["],` +
	`"external_id":["],"client_ip_address":"198.51.100.1","client_user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) ` +
	`AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36","fbc":"fb.1.1790000000000.","fbp":"fb.1.1790000000000.` +
	`"},"custom_data":{"value":129.9,"currency":"EUR","content_ids":["sku-1"],"contents":[{"id":"sku-1","quantity":1}],` +
	`"content_type":"product","num_items":1,"order_id":"1001"},"tw":{"site":"shop","received_at":1790000000000,"source":"browser",` +
	`"consent":{"ad_storage":"granted","ad_user_data":"granted","ad_personalization":"granted","analytics_storage":"granted"},` +
	`"vid":"1790000000000.123456789012"}}]`

// Codec writes and reads stored entries. It is safe for concurrent use;
// build it with NewCodec.
type Codec struct {
	dict    *s2.Dict
	readers sync.Pool // io.ReadCloser from zlib.NewReader (version 1)
}

// NewCodec returns a Codec.
func NewCodec() *Codec {
	return &Codec{dict: s2.MakeDict([]byte(entryDictV2), []byte(`{"event_name":"Purchase"`))}
}

// compress returns the stored form of an entry's JSON array: an S2 block
// (version 2) when the payload is large enough to gain from it, else the
// JSON as is. The block is written into dst's capacity when it has
// s2.MaxEncodedLen(len(payload)) bytes (dst may be nil).
func (c *Codec) compress(dst, payload []byte) []byte {
	if len(payload) < compressMinBytes {
		return payload
	}
	return c.dict.Encode(dst[:cap(dst)], payload)
}

// entryVersion tells the version of a stored payload from its first byte
// (see compressMinBytes): '[' starts a JSON array, a byte below 0x80 a zlib
// stream (0x78 for the window zlib writes), and 0x80 or above the length
// of an S2 block of at least 128 bytes. A spool written by an earlier
// version holds zlib payloads, which keep their version this way.
func entryVersion(payload []byte) string {
	switch {
	case len(payload) == 0 || payload[0] == '[':
		return ""
	case payload[0] < 0x80:
		return entryVersionZlib
	}
	return entryVersionS2
}

// entryValues are the stream entry fields for a stored payload.
func entryValues(payload []byte) []any {
	if v := entryVersion(payload); v != "" {
		return []any{"v", v, "e", payload}
	}
	return []any{"e", payload}
}

// Decode reads the events of a stream entry's fields.
func (c *Codec) Decode(values map[string]any) ([]destinations.Event, error) {
	raw, _ := values["e"].(string)
	v, _ := values["v"].(string)
	data := []byte(raw)
	switch v {
	case "":
	case entryVersionZlib:
		var err error
		if data, err = c.inflate(data); err != nil {
			return nil, fmt.Errorf("entry of version %s does not decompress: %w", v, err)
		}
	case entryVersionS2:
		n, err := s2.DecodedLen(data)
		if err == nil && n > maxInflatedEntry {
			err = fmt.Errorf("larger than %d bytes", maxInflatedEntry)
		}
		if err == nil {
			data, err = c.dict.Decode(nil, data)
		}
		if err != nil {
			return nil, fmt.Errorf("entry of version %s does not decompress: %w", v, err)
		}
	default:
		return nil, fmt.Errorf("entry of unknown version %q (written by a newer tagway?)", v)
	}
	// The writer is Event.AppendJSON (json.Marshal before it): DecodeEvents
	// reads that shape in one pass, anything else as json.Unmarshal does.
	return destinations.DecodeEvents(data)
}

// inflate decompresses a zlib payload.
func (c *Codec) inflate(data []byte) ([]byte, error) {
	var r io.ReadCloser
	if pooled, ok := c.readers.Get().(io.ReadCloser); ok {
		if err := pooled.(zlib.Resetter).Reset(bytes.NewReader(data), nil); err != nil {
			return nil, err
		}
		r = pooled
	} else {
		var err error
		if r, err = zlib.NewReader(bytes.NewReader(data)); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	out.Grow(len(data) * 6)
	_, err := io.Copy(&out, io.LimitReader(r, maxInflatedEntry+1))
	if err == nil {
		err = r.Close() // checks the Adler-32 checksum
	}
	if err != nil {
		return nil, err
	}
	c.readers.Put(r)
	if out.Len() > maxInflatedEntry {
		return nil, fmt.Errorf("larger than %d bytes", maxInflatedEntry)
	}
	return out.Bytes(), nil
}
