package routing

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	var c entryCodec
	for _, n := range []int{1, 2, 40} {
		evs := make([]destinations.Event, n)
		for i := range evs {
			evs[i] = realisticEvent(i)
		}
		payload, err := json.Marshal(evs)
		if err != nil {
			t.Fatal(err)
		}
		stored := c.compress(payload)
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
		if values["v"] != entryVersionZlib {
			t.Errorf("%d events: version %v; want %s", n, values["v"], entryVersionZlib)
		}
		if len(stored) >= len(payload) {
			t.Errorf("%d events: stored %d bytes of %d", n, len(stored), len(payload))
		}
		t.Logf("%d events: %d bytes of JSON per event, %d stored", n, len(payload)/n, len(stored)/n)
		got, err := c.decode(values)
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
	if got := c.compress(small); string(got) != string(small) || entryVersion(got) != "" {
		t.Errorf("a %d-byte payload was stored as %q", len(small), got)
	}
}

func TestEntryCodecRefuses(t *testing.T) {
	var c entryCodec
	for name, values := range map[string]map[string]any{
		"unknown version": {"v": "9", "e": "[]"},
		"corrupt zlib":    {"v": "1", "e": "x\x01garbage"},
		"bad checksum":    {"v": "1", "e": string(flipLast(c.compress([]byte("[" + strings.Repeat(`{"event_name":"A"},`, 40) + `{}]`))))},
		"not JSON":        {"e": "{"},
	} {
		if _, err := c.decode(values); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func flipLast(b []byte) []byte {
	b = append([]byte(nil), b...)
	b[len(b)-1] ^= 0xff
	return b
}

// Entries written before versions existed (JSON, no v) are still
// delivered, next to compressed ones; an entry of an unknown version is
// dead-lettered with a reason instead of blocking the stream.
func TestDispatcherReadsEveryEntryVersion(t *testing.T) {
	h := newHarness(t, testConfig(dest{id: "meta"}))
	ctx := context.Background()
	old, _ := json.Marshal([]destinations.Event{func() destinations.Event {
		ev := event("old-1", "Lead")
		ev.Context.SiteID = testSite
		return ev
	}()})
	if err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey(testSite), Values: []any{"e", old}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := h.rdb.XAdd(ctx, &redis.XAddArgs{Stream: StreamKey(testSite), Values: []any{"v", "9", "e", "?"}}).Err(); err != nil {
		t.Fatal(err)
	}
	var batch []destinations.Event
	for i := range 20 {
		batch = append(batch, event(fmt.Sprint("new-", i), "Purchase"))
	}
	h.enqueue(batch...)
	msgs, _ := h.rdb.XRange(ctx, StreamKey(testSite), "-", "+").Result()
	if last := msgs[len(msgs)-1]; last.Values["v"] != entryVersionZlib {
		t.Fatalf("a 20-event entry was stored as %v", last.Values["v"])
	}
	p := newPlatform()
	h.run(fakes(map[string]destinations.Destination{"meta": p.accept()}), h.fastOptions())
	waitFor(t, "old and new entries delivered", func() bool { return p.total() == 21 && h.groupDone("meta") })
	if p.count("old-1") != 1 || p.count("new-19") != 1 {
		t.Errorf("deliveries: %v", p.got)
	}
	dls := h.deadLetters("meta")
	if len(dls) != 1 || !strings.Contains(dls[0].Message, `unknown version "9"`) {
		t.Errorf("dead letters %+v; want the entry of version 9", dls)
	}
}

// BenchmarkEntryCodec measures storing and reading back one entry of 32
// events as the group commit forms them under load (compressed), against
// plain JSON.
func BenchmarkEntryCodec(b *testing.B) {
	evs := make([]destinations.Event, 32)
	for i := range evs {
		evs[i] = realisticEvent(i)
	}
	payload, _ := json.Marshal(evs)
	var c entryCodec
	stored := c.compress(payload)
	b.Run("compress", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			c.compress(payload)
		}
		b.ReportMetric(float64(len(stored))/32, "stored-B/event")
	})
	for _, tc := range []struct {
		name   string
		values map[string]any
	}{
		{"decode-json", map[string]any{"e": string(payload)}},
		{"decode-zlib", map[string]any{"v": entryVersionZlib, "e": string(stored)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.decode(tc.values); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
