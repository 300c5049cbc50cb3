package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/routing"
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

// DefaultIdentityMaxPerSite caps the visitors a site keeps identifiers
// for. Anyone can post /collect, each time as a new visitor: without a cap
// a flood would grow Redis for the 30 days of the TTL. A visitor's
// identifiers take about 400 bytes (with their index entry), so a site at
// the cap holds about 200 MB.
const DefaultIdentityMaxPerSite = 500_000

// identityEvictMax bounds the visitors one round evicts.
const identityEvictMax = 1000

// DefaultIdentityRewrite is how long a store leaves out a visitor's
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
	// Rewrite is how long the store skips storing a visitor's identifiers
	// again when they equal what this process stored last for the visitor
	// (a logged-in shopper's every page view carries the same e-mail and
	// customer id); default DefaultIdentityRewrite, negative to store every
	// time; at most half the TTL. Within it a visitor's TTL is not
	// refreshed by writes (reads refresh it), and when replicas store
	// different values for one visitor, a repeat of an older value may wait
	// this long to win. The window is per process.
	Rewrite time.Duration
	// Now is the clock of Rewrite and of the index (default time.Now).
	Now func() time.Time
	// MaxPerSite caps how many visitors' identifiers a site keeps
	// (default DefaultIdentityMaxPerSite; negative: no cap). Past it, the
	// visitors whose identifiers were written longest ago are evicted
	// (their identifiers deleted), counted in
	// tagway_identities_evicted_total.
	MaxPerSite int64
}

// IdentityStore keeps, per visitor, the hashed identifiers (em, ph,
// external_id...) seen in the visitor's events, and adds them to the
// visitor's events that lack them: an AddToCart after a login gets the
// login's e-mail. Only SHA-256 digests are stored, under the hash of the
// event's _fbp, else tagway's visitor id (routing.IdentityKey), with a TTL
// refreshed on every read. Only events with marketing consent that are not
// anonymous take part, in either direction. The dispatcher calls Enrich
// once per round, before policy (Options.Identity). It is safe for
// concurrent use.
type IdentityStore struct {
	rdb      redis.UniversalClient
	ttl      time.Duration
	ttlArg   any // the TTL in seconds, EXPIRE's argument
	timeout  time.Duration
	recent   *recentWrites // nil: store every time
	now      func() time.Time
	max      int64 // MaxPerSite; 0: no cap
	evicted  prometheus.Counter
	evictCmd *redis.Script
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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case opts.MaxPerSite == 0:
		opts.MaxPerSite = DefaultIdentityMaxPerSite
	case opts.MaxPerSite < 0:
		opts.MaxPerSite = 0
	}
	s := &IdentityStore{rdb: rdb, ttl: opts.TTL, ttlArg: secs, timeout: opts.Timeout, now: opts.Now, max: opts.MaxPerSite,
		evictCmd: redis.NewScript(evictScript),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagway_identities_evicted_total",
			Help: "Visitors whose stored identifiers were deleted because their site passed its cap (TAGWAY_IDENTITY_MAX_PER_SITE).",
		})}
	if opts.Rewrite == 0 {
		opts.Rewrite = DefaultIdentityRewrite
	}
	if opts.Rewrite >= opts.TTL {
		// A key must not expire while its repeats are left out.
		opts.Rewrite = opts.TTL / 2
	}
	if opts.Rewrite > 0 {
		s.recent = newRecentWrites(opts.Rewrite, identityRecentMax, opts.Now)
	}
	return s
}

// identityWrite is one visitor's identifiers to store.
type identityWrite struct {
	key  string
	hset []any // the command: "hset", key, field, comma-joined digests, ...
	// at is the newest receive time (Unix ms) of the events it holds;
	// kind is how it goes (recentWrites: writeSet without one); keySum and
	// sum identify the visitor and the whole write, and seq the write.
	at               int64
	kind             writeKind
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

// roundVisitor is one visitor of a round: its identity key and its events
// in stream order.
type roundVisitor struct {
	key    string
	events []*destinations.Event
	// skipped is the visitor's write when the store left it out
	// (IdentityStore.writes), for Enrich to lay over what it reads.
	skipped []any
}

// roundVisitors groups the events of a round of site siteID that take part
// by visitor, in the order of each visitor's first event.
func roundVisitors(siteID string, events []*destinations.Event) []roundVisitor {
	var out []roundVisitor
	index := map[string]int{}
	for _, ev := range events {
		key := visitorKey(ev)
		if key == "" {
			continue
		}
		i, ok := index[key]
		if !ok {
			i = len(out)
			index[key] = i
			out = append(out, roundVisitor{key: routing.IdentityKey(siteID, key)})
		}
		out[i].events = append(out[i].events, ev)
	}
	return out
}

// writes returns what to store of the identifiers of a round's visitors:
// per visitor, per field, the digests of its last event holding some.
// Writes the store leaves out (recentWrites) are not returned; those of
// events older than a write begun are to fill in missing fields only. A
// visitor whose write is left out keeps it (roundVisitor.skipped).
func (s *IdentityStore) writes(visitors []roundVisitor) []identityWrite {
	var out []identityWrite
	for i := range visitors {
		v := &visitors[i]
		var w identityWrite
		for _, ev := range v.events {
			var vals [len(identityFields)]string // "" for none
			n := 0
			for j, f := range identityFields {
				if vals[j] = digests(*identitySlot(&ev.UserData, f)); vals[j] != "" {
					n++
				}
			}
			if n == 0 {
				continue
			}
			if w.hset == nil {
				w.key, w.hset = v.key, make([]any, 2, 2+2*n)
				w.hset[0], w.hset[1] = "hset", v.key
			}
			// A later event of the visitor appends to its HSET, which
			// applies its arguments in order: the later event's fields win.
			for k, val := range vals {
				if val != "" {
					w.hset = append(w.hset, identityFieldArgs[k], val)
				}
			}
			w.at = max(w.at, ev.Context.ReceivedAt)
		}
		if w.hset == nil {
			continue
		}
		if s.recent != nil {
			// Every HSET kept here must reach stored (the caller runs the
			// pipeline and reports it); one that does not only stops its
			// visitor's repeats from being left out.
			w.keySum, w.sum = s.recent.sums(w.hset)
			if w.seq, w.kind = s.recent.begin(w.keySum, w.sum, w.at); w.kind == writeSkip {
				v.skipped = w.hset
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

// queue adds w to pipe: one HSET, or for a fill one HSETNX per field
// (the round's last value of each); it returns the commands.
func (w identityWrite) queue(ctx context.Context, pipe redis.Pipeliner) []*redis.Cmd {
	if w.kind != writeFill {
		return []*redis.Cmd{pipe.Do(ctx, w.hset...)}
	}
	var cmds []*redis.Cmd
	var done [len(identityFields)]bool
	for i := len(w.hset) - 2; i >= 2; i -= 2 {
		if f := slices.Index(identityFieldArgs, w.hset[i]); !done[f] {
			done[f] = true
			cmds = append(cmds, pipe.Do(ctx, "hsetnx", w.key, w.hset[i], w.hset[i+1]))
		}
	}
	return cmds
}

// stored reports which HSETs Redis applied (cmds[i] are writes[i]'s
// commands), so that repeats of them are left out for a while
// (IdentityOptions.Rewrite); it returns the first write error.
func (s *IdentityStore) stored(writes []identityWrite, cmds [][]*redis.Cmd) error {
	var first error
	for i, w := range writes {
		var err error
		for _, c := range cmds[i] {
			err = cmp.Or(err, c.Err())
		}
		first = cmp.Or(first, err)
		if s.recent != nil && w.kind == writeSet {
			s.recent.stored(w.keySum, w.sum, w.seq, err == nil)
		}
	}
	return first
}

// Enrich stores the identifiers events carry and fills in each event's
// missing identifier fields from what is stored for its visitor (an
// event's own fields win); events are one round of site siteID in stream
// order. It is one pipelined round trip, bounded by the store's Timeout and
// ctx, which reads the round's own writes (a write the store left out as a
// repeat included). On error the events of the visitors not answered are
// left as they were.
func (s *IdentityStore) Enrich(ctx context.Context, siteID string, events []*destinations.Event) error {
	visitors := roundVisitors(siteID, events)
	if len(visitors) == 0 {
		return nil
	}
	writes := s.writes(visitors)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// go-redis bounds a hung server's answer by the client's read timeout,
	// not by ctx: wait for the round trip on the side, and give up at the
	// deadline (the commands are then left to fail or finish unread; the
	// writes are reported once they did).
	type answer struct {
		reads    []*redis.MapStringStringCmd
		writeErr error
	}
	answered := make(chan answer, 1)
	go func() {
		pipe := s.rdb.Pipeline()
		sets := make([][]*redis.Cmd, len(writes))
		for i, w := range writes {
			sets[i] = w.queue(ctx, pipe)
		}
		reads := make([]*redis.MapStringStringCmd, len(visitors))
		for i, v := range visitors {
			reads[i] = pipe.HGetAll(ctx, v.key)
			pipe.Do(ctx, "expire", v.key, s.ttlArg)
		}
		count := s.index(ctx, pipe, siteID, writes)
		_, _ = pipe.Exec(ctx)
		answered <- answer{reads, s.stored(writes, sets)}
		if count != nil && s.max > 0 && count.Val() > s.max {
			ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
			defer cancel()
			_, _ = s.evict(ectx, siteID)
		}
	}()
	var a answer
	select {
	case a = <-answered:
	case <-ctx.Done():
		return fmt.Errorf("identity: %w", ctx.Err())
	}
	cmds, firstErr := a.reads, a.writeErr
	for i, v := range visitors {
		known, err := cmds[i].Result()
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		withSkipped(known, v)
		for f, joined := range known {
			if joined == "" {
				continue
			}
			values := strings.Split(joined, ",")
			for _, ev := range v.events {
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

// index queues on pipe the index entries of a round's writes (their
// visitors, scored now) and the index's size, which it returns; nil
// without a cap or writes.
func (s *IdentityStore) index(ctx context.Context, pipe redis.Pipeliner, siteID string, writes []identityWrite) *redis.IntCmd {
	if s.max <= 0 || len(writes) == 0 {
		return nil
	}
	now := float64(s.now().UnixMilli())
	members := make([]redis.Z, len(writes))
	for i, w := range writes {
		members[i] = redis.Z{Score: now, Member: w.key[strings.LastIndexByte(w.key, ':')+1:]}
	}
	idx := routing.IdentityIndexKey(siteID)
	pipe.ZAdd(ctx, idx, members...)
	return pipe.ZCard(ctx, idx)
}

// evictScript brings the index KEYS[1] back to ARGV[2] visitors: it
// forgets those not written since ARGV[1] (Unix ms; their identifiers
// expired, unless reads kept them alive), then deletes the identifiers
// (ARGV[4] .. member, in the index's slot) of those written longest ago,
// at most ARGV[3]. One script, so that rounds evicting at once never evict
// more than the excess. It returns how many it deleted.
const evictScript = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if excess <= 0 then return 0 end
local oldest = redis.call('ZPOPMIN', KEYS[1], math.min(excess, tonumber(ARGV[3])))
for i = 1, #oldest, 2 do redis.call('UNLINK', ARGV[4] .. oldest[i]) end
return #oldest / 2
`

// evict brings a site over its cap back to it (evictScript) and counts
// the visitors it deleted.
func (s *IdentityStore) evict(ctx context.Context, siteID string) (int, error) {
	n, err := s.evictCmd.Run(ctx, s.rdb, []string{routing.IdentityIndexKey(siteID)},
		s.now().Add(-s.ttl).UnixMilli(), s.max, identityEvictMax, strings.TrimSuffix(routing.IdentityKeyPattern(siteID), "*")).Int()
	if err != nil {
		return 0, fmt.Errorf("identity: cap: %w", err)
	}
	s.evicted.Add(float64(n))
	return n, nil
}

// Register adds the store's metric (tagway_identities_evicted_total) to
// reg.
func (s *IdentityStore) Register(reg prometheus.Registerer) error {
	if err := reg.Register(s.evicted); err != nil {
		return fmt.Errorf("routing: register identity metrics: %w", err)
	}
	return nil
}

// withSkipped lays the write the store left out for visitor v (if any)
// over known, what Redis holds for it, as the HSET would have: the read
// need not show it, since the equal write may still be in flight on
// another round of the process. A write that was sent is in the read
// already, the pipeline's HGETALL coming after it.
func withSkipped(known map[string]string, v roundVisitor) {
	for i := 2; i+1 < len(v.skipped); i += 2 {
		known[v.skipped[i].(string)] = v.skipped[i+1].(string)
	}
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
