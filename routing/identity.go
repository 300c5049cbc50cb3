package routing

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
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
var identityFields = [...]string{"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}

// identityFieldArgs are identityFields as command arguments, converted once
// (a string turned into an interface value at run time is an allocation).
var identityFieldArgs = func() []any {
	out := make([]any, len(identityFields))
	for i, f := range identityFields {
		out[i] = f
	}
	return out
}()

// identityMaxValues is the most digests kept per field (user_data fields
// are lists; the first ones are kept).
const identityMaxValues = 16

// IdentityKey is the Redis hash holding the hashed identifiers of one
// visitor of a site. The visitor key (an _fbp value, a visitor seed) is
// itself SHA-256 hashed, so no first-party id appears in Redis either.
func IdentityKey(siteID, visitorKey string) string {
	sum := sha256.Sum256([]byte(visitorKey))
	var digest [2 * sha256.Size]byte
	hex.Encode(digest[:], sum[:])
	var b strings.Builder
	b.Grow(len("tw:{}:id:") + len(siteID) + len(digest))
	b.WriteString("tw:{")
	b.WriteString(siteID)
	b.WriteString("}:id:")
	b.Write(digest[:])
	return b.String()
}

// DefaultIdentityRewrite is how long the queue leaves out a visitor's
// identifiers that are unchanged since this process last stored them.
const DefaultIdentityRewrite = 10 * time.Minute

// identityRecentMax bounds how many visitors' last writes a store
// remembers (two generations of up to this many).
const identityRecentMax = 1 << 13

// IdentityOptions configure an IdentityStore.
type IdentityOptions struct {
	// TTL is how long identifiers live after the visitor was last seen;
	// default DefaultIdentityTTL.
	TTL time.Duration
	// Timeout bounds one Enrich call's round trip (default 2s).
	Timeout time.Duration
	// Rewrite is how long the queue skips storing a visitor's identifiers
	// again when they equal what this process stored last for the visitor
	// (a logged-in shopper's every page view carries the same e-mail and
	// customer id); default DefaultIdentityRewrite, negative to store every
	// time; at most half the TTL. Within it a visitor's TTL is not
	// refreshed by writes (reads refresh it), and when replicas store
	// different values for one visitor, a repeat of an older value may wait
	// this long to win. The window is per process.
	Rewrite time.Duration
	// Now is the clock of Rewrite (default time.Now).
	Now func() time.Time
}

// IdentityStore keeps, per visitor, the hashed identifiers (em, ph,
// external_id...) seen in any of the visitor's events, and adds them to
// the visitor's events that lack them: an AddToCart on the page after a
// login gets the e-mail the login identified, raising Meta's match quality
// as Meta recommends. Only SHA-256 digests are stored (values that are not
// digests are skipped), under a hashed visitor key (a hash of field →
// comma-joined digests), with a TTL refreshed whenever the visitor is read
// or written (a repeated write within IdentityOptions.Rewrite is left out).
//
// Writing and reading are split so that neither needs a script:
//
//   - The queue writes (QueueOptions.Identity): the identifiers of each
//     Enqueue call go in the same pipeline as, and before, the stream
//     entry holding its events, one HSET per visitor. Writes are applied in
//     the order events are received, so a field's newest value wins, and
//     an entry is never read before the identifiers of its own events are
//     stored. They are best effort: events spooled while Redis is down
//     are queued without them.
//   - The dispatcher reads (DispatcherOptions.Identity): each round, one
//     pipelined HGETALL (and EXPIRE) per visitor, before policy and
//     delivery. Reading is idempotent, so every destination of a site may
//     do it, at its own pace.
//
// Only events with marketing consent that are not anonymous take part, in
// either direction; the visitor key is the event's _fbp, else tagway's
// visitor id. It is safe for concurrent use.
type IdentityStore struct {
	rdb     redis.UniversalClient
	ttl     time.Duration
	ttlArg  any // ttl in seconds, EXPIRE's argument
	timeout time.Duration
	recent  *recentWrites // nil: store every time
}

// NewIdentityStore returns an IdentityStore on rdb.
func NewIdentityStore(rdb redis.UniversalClient, opts IdentityOptions) *IdentityStore {
	if opts.TTL <= 0 {
		opts.TTL = DefaultIdentityTTL
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	// EXPIRE takes whole seconds; 0 would delete the key.
	secs := max(1, int64((opts.TTL+time.Second-1)/time.Second))
	s := &IdentityStore{rdb: rdb, ttl: opts.TTL, ttlArg: secs, timeout: opts.Timeout}
	if opts.Rewrite == 0 {
		opts.Rewrite = DefaultIdentityRewrite
	}
	if opts.Rewrite >= opts.TTL {
		// A key must not expire while its repeats are left out.
		opts.Rewrite = opts.TTL / 2
	}
	if opts.Rewrite > 0 {
		if opts.Now == nil {
			opts.Now = time.Now
		}
		s.recent = newRecentWrites(opts.Rewrite, identityRecentMax, opts.Now)
	}
	return s
}

// identityWrite is one visitor's identifiers to store.
type identityWrite struct {
	key  string
	hset []any // the command: "hset", key, field, comma-joined digests, ...
	// keySum and sum identify the visitor and the whole write, and seq
	// the write, for recentWrites.
	keySum, sum, seq uint64
}

// visitorKey returns the identity visitor key of ev, or "" when ev does
// not take part (no marketing consent, anonymous, no _fbp nor visitor id).
func visitorKey(ev *destinations.Event) string {
	if !ev.Context.Consent.Marketing() || ev.Context.Anonymous {
		return ""
	}
	if ev.UserData.Fbp != "" {
		return ev.UserData.Fbp
	}
	return ev.Context.VisitorID
}

// writes returns what to store of the identifiers of events (one Enqueue
// call of site siteID): per visitor, per field, the digests of its last
// event holding some (events are in the order they were received).
func (s *IdentityStore) writes(siteID string, events []destinations.Event) []identityWrite {
	var out []identityWrite
	for i := range events {
		key := visitorKey(&events[i])
		if key == "" {
			continue
		}
		var vals [len(identityFields)]string // "" for none
		n := 0
		for j, f := range identityFields {
			if vals[j] = digests(*identitySlot(&events[i].UserData, f)); vals[j] != "" {
				n++
			}
		}
		if n == 0 {
			continue
		}
		rk := IdentityKey(siteID, key)
		j := slices.IndexFunc(out, func(w identityWrite) bool { return w.key == rk })
		if j < 0 {
			out = append(out, identityWrite{key: rk, hset: make([]any, 2, 2+2*n)})
			j = len(out) - 1
			out[j].hset[0], out[j].hset[1] = "hset", rk
		}
		// The same visitor again in this call appends to its HSET, which
		// applies its arguments in order: the later event's fields win.
		for k, v := range vals {
			if v != "" {
				out[j].hset = append(out[j].hset, identityFieldArgs[k], v)
			}
		}
	}
	if s.recent != nil {
		// Every write kept here must reach stored (queue's caller runs
		// the pipeline and reports it); one that does not only stops its
		// visitor's repeats from being left out.
		kept := out[:0]
		for _, w := range out {
			w.keySum, w.sum = s.recent.sums(w.hset)
			var write bool
			if w.seq, write = s.recent.begin(w.keySum, w.sum); write {
				kept = append(kept, w)
			}
		}
		out = kept
	}
	return out
}

// queuedWrite is an identity write added to a pipeline, and its HSET.
type queuedWrite struct {
	w    identityWrite
	hset *redis.Cmd
}

// queue adds writes to pipe, one HSET and one EXPIRE per visitor, and
// appends them to sent; once pipe ran, pass sent to stored.
func (s *IdentityStore) queue(ctx context.Context, pipe redis.Pipeliner, writes []identityWrite, sent []queuedWrite) []queuedWrite {
	for _, w := range writes {
		sent = append(sent, queuedWrite{w: w, hset: pipe.Do(ctx, w.hset...)})
		pipe.Do(ctx, "expire", w.hset[1], s.ttlArg)
	}
	return sent
}

// stored reports which writes of sent Redis applied, so that repeats of
// them are left out for a while (IdentityOptions.Rewrite).
func (s *IdentityStore) stored(sent []queuedWrite) {
	if s.recent == nil {
		return
	}
	for _, q := range sent {
		s.recent.stored(q.w.keySum, q.w.sum, q.w.seq, q.hset.Err() == nil)
	}
}

// unsent reports writes that were never sent.
func (s *IdentityStore) unsent(writes []identityWrite) {
	if s.recent == nil {
		return
	}
	for _, w := range writes {
		s.recent.stored(w.keySum, w.sum, w.seq, false)
	}
}

// Remember stores the identifiers of events at once (the queue stores them
// with each write; this is for callers without a queue, such as tests).
func (s *IdentityStore) Remember(ctx context.Context, siteID string, events []destinations.Event) error {
	writes := s.writes(siteID, events)
	if len(writes) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	sent := s.queue(ctx, pipe, writes, nil)
	_, err := pipe.Exec(ctx)
	s.stored(sent)
	return err
}

// Enrich fills in each event's missing identifier fields from what is
// stored for its visitor; an event's own fields win. One pipelined round
// trip (HGETALL and EXPIRE per visitor) bounded by the store's Timeout
// (and ctx). On error the events of the visitors not answered are left as
// they were.
func (s *IdentityStore) Enrich(ctx context.Context, siteID string, events []*destinations.Event) error {
	var order []string
	byVisitor := map[string][]*destinations.Event{}
	for _, ev := range events {
		key := visitorKey(ev)
		if key == "" {
			continue
		}
		if _, ok := byVisitor[key]; !ok {
			order = append(order, key)
		}
		byVisitor[key] = append(byVisitor[key], ev)
	}
	if len(order) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// go-redis bounds a hung server's answer by the client's read timeout,
	// not by ctx: wait for the round trip on the side, and give up at the
	// deadline (the commands are then left to fail or finish unread).
	answered := make(chan []*redis.MapStringStringCmd, 1)
	go func() {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(order))
		for i, k := range order {
			key := IdentityKey(siteID, k)
			cmds[i] = pipe.HGetAll(ctx, key)
			pipe.Expire(ctx, key, s.ttl)
		}
		_, _ = pipe.Exec(ctx)
		answered <- cmds
	}()
	var cmds []*redis.MapStringStringCmd
	select {
	case cmds = <-answered:
	case <-ctx.Done():
		return fmt.Errorf("identity: %w", ctx.Err())
	}
	var firstErr error
	for i, k := range order {
		known, err := cmds[i].Result()
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		for f, v := range known {
			if v == "" {
				continue
			}
			values := strings.Split(v, ",")
			for _, ev := range byVisitor[k] {
				if slot := identitySlot(&ev.UserData, f); slot != nil && len(*slot) == 0 {
					*slot = slices.Clone(values)
				}
			}
		}
	}
	if firstErr != nil {
		return fmt.Errorf("identity: %w", firstErr)
	}
	return nil
}

// digests returns the digests among values (at most identityMaxValues),
// comma-joined; "" when there are none.
func digests(values []string) string {
	if len(values) == 1 && isDigest(values[0]) {
		return values[0] // the common case, without a copy
	}
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
