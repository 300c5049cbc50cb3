package routing

import (
	"bytes"
	"compress/zlib"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/tagway/tagway/destinations"
)

// Stored forms of a stream entry's events. Field e holds the events; field
// v, when present, names how:
//
//	(no v)  e is the JSON array of destinations.Event (the first form;
//	        entries written before v existed have it)
//	v = 1   e is that JSON array compressed with zlib (RFC 1950)
//
// Compression pays for multi-event entries above all: across the events of
// one entry, field names, user agents, URLs and consent repeat, and the hex
// SHA-256 digests shrink to about half. A dispatcher refuses (dead-letters)
// an entry of a version it does not know.
const (
	entryVersionZlib = "1"
	// compressMinBytes is the smallest payload worth compressing.
	compressMinBytes = 256
	// maxInflatedEntry bounds an entry's decompressed size; the queue
	// writes at most MaxEntryBytes (64 KiB by default) per entry.
	maxInflatedEntry = 64 << 20
)

// entryCodec writes and reads stored entries. It reuses compressors:
// creating one costs more than compressing a small entry. The zero value is
// ready; it is safe for concurrent use.
type entryCodec struct {
	writers sync.Pool // *zlib.Writer
	readers sync.Pool // io.ReadCloser from zlib.NewReader
}

// compress returns the stored form of an entry's JSON array: zlib (version
// 1) when the payload is large enough to gain from it, else the JSON as is.
func (c *entryCodec) compress(payload []byte) []byte {
	if len(payload) < compressMinBytes {
		return payload
	}
	var buf bytes.Buffer
	buf.Grow(len(payload)/4 + 64)
	w, _ := c.writers.Get().(*zlib.Writer)
	if w == nil {
		w, _ = zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	} else {
		w.Reset(&buf)
	}
	_, _ = w.Write(payload) // a bytes.Buffer does not fail
	_ = w.Close()
	c.writers.Put(w)
	return buf.Bytes()
}

// entryVersion tells the version of a stored payload from its first byte:
// a JSON array starts with '[', a zlib stream never does.
func entryVersion(payload []byte) string {
	if len(payload) > 0 && payload[0] != '[' {
		return entryVersionZlib
	}
	return ""
}

// entryValues are the stream entry fields for a stored payload.
func entryValues(payload []byte) []any {
	if v := entryVersion(payload); v != "" {
		return []any{"v", v, "e", payload}
	}
	return []any{"e", payload}
}

// decode reads the events of a stream entry's fields.
func (c *entryCodec) decode(values map[string]any) ([]destinations.Event, error) {
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
	default:
		return nil, fmt.Errorf("entry of unknown version %q (written by a newer tagway?)", v)
	}
	var evs []destinations.Event
	if err := json.Unmarshal(data, &evs); err != nil {
		return nil, err
	}
	return evs, nil
}

// inflate decompresses a zlib payload.
func (c *entryCodec) inflate(data []byte) ([]byte, error) {
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
