package queue

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	c := NewCodec()
	for _, n := range []int{1, 2, 40} {
		evs := make([]destinations.Event, n)
		for i := range evs {
			evs[i] = realisticEvent(i)
		}
		payload, err := json.Marshal(evs)
		if err != nil {
			t.Fatal(err)
		}
		stored := c.compress(nil, payload)
		values := map[string]any{}
		kv := entryValues(stored)
		for i := 0; i < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				values[kv[i].(string)] = v
			case []byte:
				values[kv[i].(string)] = string(v) // as Redis returns it
			}
		}
		if values["v"] != entryVersionS2 {
			t.Errorf("%d events: version %v; want %s", n, values["v"], entryVersionS2)
		}
		if len(stored) >= len(payload) {
			t.Errorf("%d events: stored %d bytes of %d", n, len(stored), len(payload))
		}
		t.Logf("%d events: %d bytes of JSON per event, %d stored", n, len(payload)/n, len(stored)/n)
		got, err := c.Decode(values)
		if err != nil {
			t.Fatal(err)
		}
		var want []destinations.Event
		_ = json.Unmarshal(payload, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d events do not round-trip", n)
		}
	}
	// Small payloads stay JSON, without a version.
	small := []byte(`[{"event_name":"A","event_time":1,"event_id":"x","action_source":"website","user_data":{},"tw":{"site":"s","consent":{}}}]`)
	if got := c.compress(nil, small); string(got) != string(small) || entryVersion(got) != "" {
		t.Errorf("a %d-byte payload was stored as %q", len(small), got)
	}
}

func TestEntryCodecRefuses(t *testing.T) {
	c := NewCodec()
	big := []byte("[" + strings.Repeat(`{"event_name":"A"},`, 40) + `{}]`)
	huge := binary.AppendUvarint(nil, maxInflatedEntry+1)
	for name, values := range map[string]map[string]any{
		"unknown version":  {"v": "9", "e": "[]"},
		"corrupt zlib":     {"v": "1", "e": "x\x01garbage"},
		"bad checksum":     {"v": "1", "e": string(flipLast(zlibBytes(t, big)))},
		"corrupt s2":       {"v": "2", "e": string(flipLast(c.compress(nil, big)))},
		"truncated s2":     {"v": "2", "e": string(c.compress(nil, big)[:20])},
		"s2 over the size": {"v": "2", "e": string(append(huge, 0))},
		"not JSON":         {"e": "{"},
	} {
		if _, err := c.Decode(values); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// Entries of version 1 (zlib), written by earlier versions and still in
// streams and spools after an upgrade, are read; the first byte of a
// stored payload tells its version.
func TestEntryCodecReadsZlibEntries(t *testing.T) {
	c := NewCodec()
	evs := []destinations.Event{realisticEvent(1), realisticEvent(2)}
	payload, _ := json.Marshal(evs)
	old := zlibBytes(t, payload)
	if v := entryVersion(old); v != entryVersionZlib {
		t.Fatalf("zlib payload read as version %q", v)
	}
	if v := entryVersion(c.compress(nil, payload)); v != entryVersionS2 {
		t.Fatalf("S2 payload read as version %q", v)
	}
	if v := entryVersion(payload); v != "" {
		t.Fatalf("JSON payload read as version %q", v)
	}
	got, err := c.Decode(map[string]any{"v": entryVersionZlib, "e": string(old)})
	if err != nil {
		t.Fatal(err)
	}
	var want []destinations.Event
	_ = json.Unmarshal(payload, &want)
	if !reflect.DeepEqual(got, want) {
		t.Fatal("zlib entry does not decode to its events")
	}
}

// The dictionary of version 2 is part of the stored format: entries in
// Redis and in spools need these exact bytes to be read. A change must be
// a new version, never an edit.
func TestEntryDictV2Frozen(t *testing.T) {
	sum := sha256.Sum256([]byte(entryDictV2))
	const want = "4baf2cf0dc0bf3859cb046add1957004fdd8765906ace515e3e5df2996880350"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("entryDictV2 changed (sha256 %s): entries written with the old one can no longer be read; add a version instead", got)
	}
	// Entries stay readable by a codec built anew (another process).
	evs := []destinations.Event{realisticEvent(7)}
	payload, _ := json.Marshal(evs)
	stored := NewCodec().compress(nil, payload)
	if _, err := NewCodec().Decode(map[string]any{"v": entryVersionS2, "e": string(stored)}); err != nil {
		t.Fatal(err)
	}
}

func zlibBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func flipLast(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[len(b)-1] ^= 0xff
	return b
}

// BenchmarkEntryCodec measures storing and reading back one entry of 32
// events as the group commit forms them under load (S2 with the
// dictionary), against plain JSON and zlib (version 1), and compressing a
// lone event, the common entry of a gateway that is not saturated.
func BenchmarkEntryCodec(b *testing.B) {
	evs := make([]destinations.Event, 32)
	for i := range evs {
		evs[i] = realisticEvent(i)
	}
	payload, _ := json.Marshal(evs)
	c := NewCodec()
	stored := c.compress(nil, payload)
	old := zlibBytes(b, payload)
	b.Run("compress", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			c.compress(nil, payload)
		}
		b.ReportMetric(float64(len(stored))/32, "stored-B/event")
	})
	// Version 1's writer, reused as its codec reused it.
	var zbuf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&zbuf, zlib.BestSpeed)
	zlibReused := func(p []byte) int {
		zbuf.Reset()
		zw.Reset(&zbuf)
		_, _ = zw.Write(p)
		_ = zw.Close()
		return zbuf.Len()
	}
	b.Run("compress-zlib", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			zlibReused(payload)
		}
		b.ReportMetric(float64(len(old))/32, "stored-B/event")
	})
	one, _ := json.Marshal(evs[:1])
	b.Run("compress-one", func(b *testing.B) {
		b.SetBytes(int64(len(one)))
		for b.Loop() {
			c.compress(nil, one)
		}
		b.ReportMetric(float64(len(c.compress(nil, one))), "stored-B")
	})
	b.Run("compress-one-zlib", func(b *testing.B) {
		b.SetBytes(int64(len(one)))
		for b.Loop() {
			zlibReused(one)
		}
		b.ReportMetric(float64(zlibReused(one)), "stored-B")
	})
	for _, tc := range []struct {
		name   string
		values map[string]any
	}{
		{"decode-json", map[string]any{"e": string(payload)}},
		{"decode-zlib", map[string]any{"v": entryVersionZlib, "e": string(old)}},
		{"decode-s2", map[string]any{"v": entryVersionS2, "e": string(stored)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Decode(tc.values); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Entries as the queue writes them (Event.AppendJSON, through
// encodeEvents) decode to what json.Unmarshal makes of their JSON.
func TestEntryCodecDecodesQueuedEvents(t *testing.T) {
	c := NewCodec()
	evs := make([]destinations.Event, 32)
	for i := range evs {
		evs[i] = realisticEvent(i)
	}
	evs[1].Context.Cookies = map[string]string{"_ga": "GA1.1.1.2"}
	evs[2].Context.ClickIDs = map[string]destinations.ClickID{"gclid": {Value: "Cj0", At: 1}}
	evs[3].CustomData.Custom = map[string]json.RawMessage{"gift_wrap": json.RawMessage(`true`)}
	evs[4].EventSourceURL = "https://shop.example/?q=<é>&x=\"y\""
	for _, n := range []int{1, len(evs)} {
		payload, err := encodeEvents(nil, "shop", evs[:n], 1772366400123)
		if err != nil {
			t.Fatal(err)
		}
		stored := c.compress(nil, payload)
		values := map[string]any{"e": string(stored)}
		if v := entryVersion(stored); v != "" {
			values["v"] = v
		}
		got, err := c.Decode(values)
		if err != nil {
			t.Fatal(err)
		}
		var want []destinations.Event
		if err := json.Unmarshal(payload, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%d events: decoded\n%#v\nwant\n%#v", n, got, want)
		}
	}
}
