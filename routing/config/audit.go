package config

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
)

// auditMaxLen caps the audit stream (approximately).
const auditMaxLen = 100000

// AuditEntry is one recorded change.
type AuditEntry struct {
	ID    string    `json:"id"` // stream id, the pagination cursor
	At    time.Time `json:"at"`
	Actor string    `json:"actor"`
	// ActorTenant is the tenant of the actor's key, always present: empty
	// for the operator (the root token, the config file).
	ActorTenant string   `json:"actor_tenant"`
	Op          string   `json:"op"`
	Kind        string   `json:"kind"`
	ResourceID  string   `json:"resource_id"`
	Tenant      string   `json:"tenant,omitempty"`
	Fields      []string `json:"fields,omitempty"`
	// Count is how many items an operation touched (AppendAudit).
	Count int `json:"count,omitempty"`
}

// AppendAudit records an operation that is not a configuration change
// (replaying or dropping dead letters) in the audit log: e's Op, Kind,
// ResourceID and Tenant say what was done to what, Fields its parameters
// (never secrets), Count how many items it touched. At defaults to now; ID
// is ignored.
func (s *Store) AppendAudit(ctx context.Context, actor Actor, e AuditEntry) error {
	if e.At.IsZero() {
		e.At = s.now()
	}
	return s.rdb.XAdd(ctx, &redis.XAddArgs{Stream: routing.AuditKey, MaxLen: auditMaxLen, Approx: true, Values: []any{
		"at", e.At.UTC().Format(time.RFC3339Nano), "actor", actor.ID, "actor_tenant", actor.Tenant, "op", e.Op, "kind", e.Kind,
		"id", e.ResourceID, "tenant", e.Tenant, "fields", strings.Join(e.Fields, ","), "count", strconv.Itoa(e.Count),
	}}).Err()
}

// ReadAudit returns up to limit audit entries older than before (a stream
// id; "" for the newest), newest first, that keep returns true for, and the
// cursor for the next page ("" at the end).
func (s *Store) ReadAudit(ctx context.Context, before string, limit int, keep func(AuditEntry) bool) ([]AuditEntry, string, error) {
	end := "+"
	if before != "" {
		end = "(" + before
	}
	var out []AuditEntry
	for {
		msgs, err := s.rdb.XRevRangeN(ctx, routing.AuditKey, end, "-", int64(max(limit, 100))).Result()
		if err != nil {
			return nil, "", err
		}
		for _, m := range msgs {
			e := auditEntry(m)
			if keep == nil || keep(e) {
				out = append(out, e)
				if len(out) == limit {
					return out, e.ID, nil
				}
			}
			end = "(" + m.ID
		}
		if len(msgs) == 0 {
			return out, "", nil
		}
	}
}

func auditEntry(m redis.XMessage) AuditEntry {
	str := func(k string) string { v, _ := m.Values[k].(string); return v }
	e := AuditEntry{ID: m.ID, Actor: str("actor"), ActorTenant: str("actor_tenant"), Op: str("op"), Kind: str("kind"),
		ResourceID: str("id"), Tenant: str("tenant")}
	e.At, _ = time.Parse(time.RFC3339Nano, str("at"))
	e.Count, _ = strconv.Atoi(str("count"))
	if f := str("fields"); f != "" {
		e.Fields = strings.Split(f, ",")
	}
	return e
}
