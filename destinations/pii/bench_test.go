package pii

import (
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkHashUserData normalizes and hashes a full user_data: every
// hashed key Meta defines, raw, plus external_id.
func BenchmarkHashUserData(b *testing.B) {
	var raw RawUserData
	if err := json.Unmarshal([]byte(`{"em":" Jane.Doe+1001@Example.com ","ph":"+1 (650) 555-1212","fn":"Jäne","ln":"Doe-Smith",
		"ge":"Female","db":"1990-02-14","ct":"Menlo Park","st":"California","zp":"94025-1234","country":"US","external_id":"cust-9-1001"}`), &raw); err != nil {
		b.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashUserData(raw, now); err != nil {
			b.Fatal(err)
		}
	}
}
