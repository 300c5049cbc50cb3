package routing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
)

// DefaultIdentityTTL is how long a visitor's hashed identifiers are kept
// after the visitor was last seen: 30 days, long enough to cover a
// consideration window (Meta attributes clicks for 7 days, views for 1) and
// short enough that a shared device soon forgets its last shopper.
const DefaultIdentityTTL = 30 * 24 * time.Hour

// identityFields are the user_data keys an IdentityStore keeps: the hashed
// customer-information parameters, and nothing else.
var identityFields = []string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// Bounds of one Enrich call.
const (
	// identityMaxKeys is the most visitors one script call carries; a round
	// with more sends several calls in one pipeline.
	identityMaxKeys = 200
	// identityMaxValues is the most digests kept per field (user_data
	// fields are lists; the first ones are kept).
	identityMaxValues = 16
)

// IdentityKey is the Redis hash holding the hashed identifiers of one
// visitor of a site. The visitor key (an _fbp value, a visitor seed) is
// itself SHA-256 hashed, so no first-party id appears in Redis either.
func IdentityKey(siteID, visitorKey string) string {
	sum := sha256.Sum256([]byte(visitorKey))
	return "tw:{" + siteID + "}:id:" + hex.EncodeToString(sum[:])
}

// identityScript merges, for each visitor key of KEYS, the identifiers
// ARGV gives, refreshes the key's TTL and returns all it holds, in one
// atomic call. ARGV[1] is the TTL in seconds; then, per key in order, a
// count n and n triples (field, received-at ms, value). A triple replaces
// the stored field when (received-at, value) is greater than the stored
// (t:<field>, value), a field without t:<field> (written by an older
// tagway) counting as received at 0: the newest identifiers win whatever
// the order in which destinations process the events, and running a
// triple twice changes nothing.
const identityScript = `
local ttl = ARGV[1]
local a = 2
local out = {}
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[a])
  a = a + 1
  for _ = 1, n do
    local f, ts, v = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    a = a + 3
    local cur = redis.call('HMGET', key, 't:' .. f, f)
    local curTs, newTs = tonumber(cur[1]) or 0, tonumber(ts)
    if newTs > curTs or (newTs == curTs and (not cur[2] or v > cur[2])) then
      redis.call('HSET', key, f, v, 't:' .. f, ts)
    end
  end
  local all = redis.call('HGETALL', key)
  if #all > 0 then
    redis.call('EXPIRE', key, ttl)
  end
  out[i] = all
end
return out
`

// IdentityOptions configure an IdentityStore.
type IdentityOptions struct {
	// TTL is how long identifiers live after the visitor was last seen;
	// default DefaultIdentityTTL.
	TTL time.Duration
	// Timeout bounds one Enrich call's round trip (default 2s).
	Timeout time.Duration
}

// IdentityStore keeps, per visitor, the hashed identifiers (em, ph,
// external_id...) seen in any of the visitor's events, and adds them to
// the visitor's events that lack them: an AddToCart on the page after a
// login gets the e-mail the login identified, raising Meta's match quality
// as Meta recommends. Only SHA-256 digests are stored (values that are not
// digests are skipped), under a hashed visitor key, with a TTL. The
// dispatcher runs it over each round of events before policy and delivery
// (DispatcherOptions.Identity), so ingest does no identity work.
//
// Every field is stored with the time its event was received, and a field
// is only replaced by a newer one: each destination of a site processes
// the same events, at its own pace, and the result does not depend on
// which gets there first.
//
// It is safe for concurrent use.
type IdentityStore struct {
	rdb     redis.UniversalClient
	script  *redis.Script
	ttl     string // seconds
	timeout time.Duration
}

// NewIdentityStore returns an IdentityStore on rdb.
func NewIdentityStore(rdb redis.UniversalClient, opts IdentityOptions) *IdentityStore {
	if opts.TTL <= 0 {
		opts.TTL = DefaultIdentityTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	return &IdentityStore{rdb: rdb, script: redis.NewScript(identityScript),
		ttl: strconv.FormatInt(int64(opts.TTL/time.Second), 10), timeout: opts.Timeout}
}

// identityCall is one script call: up to identityMaxKeys visitors, and the
// user data of their events to fill in from its answer.
type identityCall struct {
	keys  []string
	args  []any
	users [][]*destinations.UserData // by key
}

// Enrich remembers the hashed identifiers of events (all of site siteID)
// and fills in each event's missing identifier fields from what is known
// of its visitor, this batch's events included; an event's own fields win.
// Only events with marketing consent that are not anonymous take part, in
// either direction; the visitor key is the event's _fbp, else tagway's
// visitor id, and events without either are left alone. One script call
// per identityMaxKeys visitors, all in one pipelined round trip bounded by
// the store's Timeout (and ctx). On error the events whose visitors were
// not answered are left as they were.
func (s *IdentityStore) Enrich(ctx context.Context, siteID string, events []*destinations.Event) error {
	calls := s.calls(siteID, events)
	if len(calls) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// go-redis bounds a hung server's answer by the client's read timeout,
	// not by ctx: wait for the round trip on the side, and give up at the
	// deadline (the calls are then left to fail or finish unread).
	answered := make(chan []*redis.Cmd, 1)
	go func() { answered <- s.run(ctx, calls) }()
	var cmds []*redis.Cmd
	select {
	case cmds = <-answered:
	case <-ctx.Done():
		return fmt.Errorf("identity: %w", ctx.Err())
	}
	var errs []error
	for i, c := range calls {
		if err := c.fill(cmds[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("identity: %w", errors.Join(errs...))
	}
	return nil
}

// calls groups the taking-part events by visitor, in their order, into
// script calls.
func (s *IdentityStore) calls(siteID string, events []*destinations.Event) []*identityCall {
	var order []string
	byVisitor := map[string][]*destinations.Event{}
	for _, ev := range events {
		if !ev.Context.Consent.Marketing() || ev.Context.Anonymous {
			continue
		}
		key := ev.UserData.Fbp
		if key == "" {
			key = ev.Context.VisitorID
		}
		if key == "" {
			continue
		}
		if _, ok := byVisitor[key]; !ok {
			order = append(order, key)
		}
		byVisitor[key] = append(byVisitor[key], ev)
	}
	var calls []*identityCall
	for chunk := range slices.Chunk(order, identityMaxKeys) {
		c := &identityCall{args: []any{s.ttl}}
		for _, k := range chunk {
			evs := byVisitor[k]
			c.keys = append(c.keys, IdentityKey(siteID, k))
			c.args = append(c.args, remembered(evs)...)
			uds := make([]*destinations.UserData, len(evs))
			for i, ev := range evs {
				uds[i] = &ev.UserData
			}
			c.users = append(c.users, uds)
		}
		calls = append(calls, c)
	}
	return calls
}

// run sends calls in one pipeline; calls the server answers NOSCRIPT (the
// script is not cached there yet) are sent again with the script itself.
func (s *IdentityStore) run(ctx context.Context, calls []*identityCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	pipe := s.rdb.Pipeline()
	for i, c := range calls {
		cmds[i] = s.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx)
	var missing []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		pipe := s.rdb.Pipeline()
		for _, i := range missing {
			cmds[i] = s.script.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		_, _ = pipe.Exec(ctx)
	}
	return cmds
}

// fill adds to the call's user data the fields they lack from the script's
// answer: one HGETALL reply per key.
func (c *identityCall) fill(cmd *redis.Cmd) error {
	replies, err := cmd.Slice()
	if err != nil {
		return err
	}
	if len(replies) != len(c.keys) {
		return fmt.Errorf("script answered %d visitors of %d", len(replies), len(c.keys))
	}
	for i, r := range replies {
		known, _ := r.([]any)
		for j := 0; j+1 < len(known); j += 2 {
			f, _ := known[j].(string)
			v, _ := known[j+1].(string)
			if v == "" {
				continue
			}
			values := strings.Split(v, ",")
			for _, ud := range c.users[i] {
				if slot := identitySlot(ud, f); slot != nil && len(*slot) == 0 {
					*slot = slices.Clone(values)
				}
			}
		}
	}
	return nil
}

// remembered returns one visitor's part of the script's ARGV: the count of
// fields, then per field the (field, received-at, value) of its newest
// event holding digests of it (of equal times, the greater value, as the
// script decides), the digests comma-joined.
func remembered(evs []*destinations.Event) []any {
	out := []any{0}
	for _, f := range identityFields {
		var best string
		bestAt := int64(-1)
		for _, ev := range evs {
			v := digests(*identitySlot(&ev.UserData, f))
			at := max(ev.Context.ReceivedAt, 0)
			if v != "" && (at > bestAt || at == bestAt && v > best) {
				best, bestAt = v, at
			}
		}
		if bestAt >= 0 {
			out = append(out, f, bestAt, best)
		}
	}
	out[0] = (len(out) - 1) / 3
	return out
}

// digests returns the digests among values (at most identityMaxValues),
// comma-joined; "" when there are none.
func digests(values []string) string {
	var b strings.Builder
	n := 0
	for _, v := range values {
		if !isDigest(v) || n == identityMaxValues {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteString(v)
		n++
	}
	return b.String()
}

// isDigest reports whether v is a lowercase hex SHA-256 digest, optionally
// followed by Meta's parameter-builder appendix (".AQQCAQMC"); commas, which
// would break the stored list, cannot occur in either.
func isDigest(v string) bool {
	if len(v) < 64 || len(v) > 64+17 || (len(v) > 64 && v[64] != '.') {
		return false
	}
	for i := 0; i < 64; i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return !strings.ContainsAny(v[64:], ", ")
}

// identitySlot returns the field of u holding the hashed key f; nil for
// any other hash field (such as a t: timestamp).
func identitySlot(u *destinations.UserData, f string) *[]string {
	switch f {
	case "em":
		return &u.Em
	case "ph":
		return &u.Ph
	case "fn":
		return &u.Fn
	case "ln":
		return &u.Ln
	case "ge":
		return &u.Ge
	case "db":
		return &u.Db
	case "ct":
		return &u.Ct
	case "st":
		return &u.St
	case "zp":
		return &u.Zp
	case "country":
		return &u.Country
	case "external_id":
		return &u.ExternalID
	}
	return nil
}

// enrich runs the dispatcher's identity store (if any) over the round's
// jobs that are still to be decided and have not been through a route's
// policy: stream events, and replayed dead letters that never reached a
// route. A retry already went through its route's policy, which may have
// dropped identifiers (a region rule): enriching it again would add them
// back, so it goes as it is (it was enriched on its first attempt). A
// failure is logged and the round goes out unenriched.
func (w *worker) enrich(ctx context.Context, jobs []*job) {
	id := w.d.opts.Identity
	if id == nil {
		return
	}
	var evs []*destinations.Event
	for _, j := range jobs {
		if j.out.kind == 0 && j.event.Context.Route == "" {
			evs = append(evs, &j.event)
		}
	}
	if len(evs) == 0 {
		return
	}
	if err := id.Enrich(ctx, w.site, evs); err != nil {
		w.log.Warn("identity enrichment failed; the events go out without it", "events", len(evs), "err", err)
	}
}
