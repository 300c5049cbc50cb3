package queue

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// FuzzEntryCodec: whatever a stream entry or a spool record holds (a
// corrupt, truncated or hostile payload of any version), reading it never
// panics and stays within its bounds; a payload that reads as events reads
// as the same events once stored again by the writer's codec.
func FuzzEntryCodec(f *testing.F) {
	c := NewCodec()
	one, _ := json.Marshal([]destinations.Event{realisticEvent(1)})
	many, _ := json.Marshal([]destinations.Event{realisticEvent(1), realisticEvent(2), realisticEvent(3)})
	for _, p := range [][]byte{one, many} {
		f.Add("", p)
		f.Add(entryVersionS2, c.compress(nil, p))
		f.Add(entryVersionZlib, zlibBytes(f, p))
	}
	f.Add("", []byte(`[{"event_name":"A","tw":{"site":"s"}}]`))
	f.Add(entryVersionS2, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00})
	f.Add("9", []byte("[]"))
	f.Fuzz(func(t *testing.T, version string, payload []byte) {
		values := map[string]any{"e": string(payload)}
		if version != "" {
			values["v"] = version
		}
		evs, err := c.Decode(values)
		if err != nil {
			return
		}
		stored, err := json.Marshal(evs)
		if err != nil {
			t.Fatalf("decoded events do not encode: %v", err)
		}
		again := map[string]any{}
		kv := entryValues(c.compress(nil, stored))
		for i := 0; i+1 < len(kv); i += 2 {
			switch v := kv[i+1].(type) {
			case string:
				again[kv[i].(string)] = v
			case []byte:
				again[kv[i].(string)] = string(v)
			}
		}
		got, err := c.Decode(again)
		if err != nil {
			t.Fatalf("re-stored events do not decode: %v", err)
		}
		var want []destinations.Event
		_ = json.Unmarshal(stored, &want)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("events do not survive being stored again:\n%+v\n%+v", got, want)
		}

		// The same payload as a spool record round-trips its header.
		rec := spoolRec{site: "shop", writer: "w1", seq: "7", slot: "", flushSeq: "", payload: payload}
		back, ok := decodeSpoolRec(rec.encode())
		if !ok || back.site != rec.site || back.seq != rec.seq || string(back.payload) != string(payload) {
			t.Fatalf("spool record does not round-trip: %+v", back)
		}
	})
}
