package attribution

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
)

// Ledger bounds and defaults.
const (
	// DefaultRetentionMargin is added to the longest window to make the
	// default retention: a click is kept a week past the longest window,
	// for orders reported late.
	DefaultRetentionMargin = 7 * day
	// DefaultMaxTouchpoints is the most touchpoints kept per visitor; the
	// oldest are dropped.
	DefaultMaxTouchpoints = 64
	// DefaultMaxCustomerVisitors is the most visitors kept per customer
	// digest; those seen least recently are dropped.
	DefaultMaxCustomerVisitors = 16
	// maxVisitorsRead bounds the visitors one Touchpoints call reads.
	maxVisitorsRead = 64
	// recentMax bounds a generation of RecordEvents' recent writes (two
	// are kept: about 1.5 MiB).
	recentMax = 1 << 14
)

// LedgerOptions configure a Ledger.
type LedgerOptions struct {
	// Retention is how long a touchpoint is kept after its capture, and a
	// visitor in the customer index after last seen; default the longest
	// default window plus DefaultRetentionMargin (97 days). Sites with
	// longer windows need a longer retention.
	Retention time.Duration
	// MaxTouchpoints bounds the touchpoints per visitor (default 64).
	MaxTouchpoints int
	// MaxCustomerVisitors bounds the visitors per customer digest
	// (default 16).
	MaxCustomerVisitors int
	// Timeout bounds one call's round trips (default 2s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Ledger keeps, per visitor of a site, the ad clicks the visitor landed
// with (touchpoints), and an index from customer digests (the SHA-256 of a
// normalized e-mail or phone) to the visitors that identified with them.
// Visitor ids are stored SHA-256 hashed; click ids as they are (they are
// sent to the platforms with the orders). It is safe for concurrent use.
type Ledger struct {
	rdb    redis.UniversalClient
	opts   LedgerOptions
	record *redis.Script // recordScript
	recent *recentSet    // RecordEvents' recent writes
}

// NewLedger returns a Ledger on rdb.
func NewLedger(rdb redis.UniversalClient, opts LedgerOptions) *Ledger {
	if opts.Retention <= 0 {
		opts.Retention = DefaultWindows().Longest() + DefaultRetentionMargin
	}
	if opts.MaxTouchpoints <= 0 {
		opts.MaxTouchpoints = DefaultMaxTouchpoints
	}
	if opts.MaxCustomerVisitors <= 0 {
		opts.MaxCustomerVisitors = DefaultMaxCustomerVisitors
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Ledger{rdb: rdb, opts: opts, record: redis.NewScript(recordScript), recent: newRecentSet(recentMax)}
}

// Retention returns how long touchpoints are kept.
func (l *Ledger) Retention() time.Duration { return l.opts.Retention }

// sitePrefix is the prefix of every key of a site ("tw:{site}:"): its
// keys share one Cluster slot, and deleting the keys under it purges the
// site.
func sitePrefix(site string) string { return "tw:{" + site + "}:" }

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TouchpointsKey is the sorted set of a visitor's touchpoints: member
// "<type> <click id>", score the capture time (Unix ms).
func TouchpointsKey(site, visitorID string) string {
	return sitePrefix(site) + "tp:" + sha256Hex(visitorID)
}

// touchpointDetailsKey is the hash of a visitor's touchpoint details:
// field the member of TouchpointsKey, value JSON {landing_url, consent}.
func touchpointDetailsKey(site, visitorID string) string {
	return sitePrefix(site) + "tpd:" + sha256Hex(visitorID)
}

// CustomerKey is the sorted set of the visitors (hashed ids) that
// identified with a customer digest: score the time last seen (Unix ms).
func CustomerKey(site, digest string) string {
	return sitePrefix(site) + "cust:" + digest
}

// touchpointDetail is what a touchpoint carries besides its key and time.
type touchpointDetail struct {
	LandingURL string               `json:"u,omitempty"`
	Consent    destinations.Consent `json:"c,omitzero"`
}

// recordScript adds touchpoints to a visitor's sorted set, keeping each
// click id's earliest capture; drops those captured before the retention
// and, past the bound, the oldest; and refreshes both keys' expiry.
// KEYS: touchpoints, details. ARGV: retention ms, max, oldest ms to keep,
// then (member, capture ms, detail JSON) per touchpoint.
const recordScript = `
local ttl, max, oldest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 3 do
  local m, s = ARGV[i], tonumber(ARGV[i+1])
  local old = redis.call('ZSCORE', KEYS[1], m)
  if not old or s < tonumber(old) then
    redis.call('ZADD', KEYS[1], s, m)
    redis.call('HSET', KEYS[2], m, ARGV[i+2])
  end
end
local drop = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest)
local n = redis.call('ZCARD', KEYS[1]) - #drop
if n > max then
  local extra = redis.call('ZRANGE', KEYS[1], #drop, #drop + n - max - 1)
  for _, m in ipairs(extra) do drop[#drop + 1] = m end
end
if #drop > 0 then
  redis.call('ZREM', KEYS[1], unpack(drop))
  redis.call('HDEL', KEYS[2], unpack(drop))
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return #drop
`

// maxRecordBatch bounds the touchpoints of one visitor written in one
// script call.
const maxRecordBatch = 64

// Record adds touchpoints to a visitor's ledger. Recording a click id
// again is harmless: each keeps its earliest capture time (and that
// capture's landing page and consent). Touchpoints captured before the
// retention, of unknown types or with invalid click ids are left out;
// past MaxTouchpoints the oldest are dropped. The visitor's keys expire
// Retention after the last record.
func (l *Ledger) Record(ctx context.Context, site, visitorID string, tps ...Touchpoint) error {
	if visitorID == "" || len(tps) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	pipe := l.rdb.Pipeline()
	calls := l.queueRecord(ctx, pipe, site, visitorID, tps, nil)
	_, _ = pipe.Exec(ctx)
	if err := l.finish(ctx, calls); err != nil {
		return fmt.Errorf("attribution ledger: record: %w", err)
	}
	return nil
}

// scriptCall is one script call queued in a pipeline.
type scriptCall struct {
	keys []string
	args []any
	cmd  *redis.Cmd
}

// finish returns the first error of a pipeline's commands, after running
// again, loaded, the script calls the server did not know (NOSCRIPT: its
// script cache was emptied, by a restart).
func (l *Ledger) finish(ctx context.Context, calls []scriptCall) error {
	var first error
	for _, c := range calls {
		err := c.cmd.Err()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			err = l.record.Run(ctx, l.rdb, c.keys, c.args...).Err()
		}
		first = cmp.Or(first, err)
	}
	return first
}

// queueRecord adds to pipe the script calls recording tps, appended to
// calls.
func (l *Ledger) queueRecord(ctx context.Context, pipe redis.Pipeliner, site, visitorID string, tps []Touchpoint, calls []scriptCall) []scriptCall {
	now := l.opts.Now()
	oldest := now.Add(-l.opts.Retention).UnixMilli()
	keys := []string{TouchpointsKey(site, visitorID), touchpointDetailsKey(site, visitorID)}
	args := []any{l.opts.Retention.Milliseconds(), l.opts.MaxTouchpoints, oldest}
	n := 0
	flush := func() {
		if n > 0 {
			calls = append(calls, scriptCall{keys, args, l.record.EvalSha(ctx, pipe, keys, args...)})
		}
		args, n = args[:3:3], 0
	}
	for _, tp := range tps {
		if _, ok := lookup(tp.Type); !ok || !validClickID(tp.ClickID) || tp.CapturedAt.UnixMilli() < oldest {
			continue
		}
		detail, _ := json.Marshal(touchpointDetail{LandingURL: landingPage(tp.LandingURL), Consent: tp.Consent})
		args = append(args, tp.Type+" "+tp.ClickID, tp.CapturedAt.UnixMilli(), detail)
		if n++; n == maxRecordBatch {
			flush()
		}
	}
	flush()
	return calls
}

// RecordEvents records what one round of a site's events tells the
// ledger, in one round trip: each event's touchpoints
// (TouchpointsFromEvent) under its visitor id, and its hashed e-mails and
// phones in the customer index. Events without marketing consent or a
// visitor id are skipped, and so is what this process recorded recently
// (every event after a landing carries the landing's click ids again, from
// the visitor's cookies): most rounds cost nothing.
func (l *Ledger) RecordEvents(ctx context.Context, site string, events []*destinations.Event) error {
	byVisitor := map[string][]Touchpoint{}
	digests := map[string][]string{}
	var order, fresh []string
	for _, ev := range events {
		vid := ev.Context.VisitorID
		if vid == "" || !ev.Context.Consent.Marketing() || ev.Context.Anonymous {
			continue
		}
		var tps []Touchpoint
		for _, tp := range TouchpointsFromEvent(ev) {
			if k := recentKey(site, vid, tp.Type+" "+tp.ClickID); !l.recent.has(k) {
				tps, fresh = append(tps, tp), append(fresh, k)
			}
		}
		var ds []string
		for _, d := range customerDigests(ev.UserData) {
			if k := recentKey(site, vid, d); !l.recent.has(k) {
				ds, fresh = append(ds, d), append(fresh, k)
			}
		}
		if len(tps) == 0 && len(ds) == 0 {
			continue
		}
		if _, ok := byVisitor[vid]; !ok {
			order = append(order, vid)
		}
		byVisitor[vid] = append(byVisitor[vid], tps...)
		digests[vid] = append(digests[vid], ds...)
	}
	if len(order) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	pipe := l.rdb.Pipeline()
	var calls []scriptCall
	for _, vid := range order {
		calls = l.queueRecord(ctx, pipe, site, vid, byVisitor[vid], calls)
		l.queueCustomer(ctx, pipe, site, vid, digests[vid])
	}
	cmds, _ := pipe.Exec(ctx)
	err := l.finish(ctx, calls)
	for _, c := range cmds {
		if err == nil && c.Err() != nil && !redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			err = c.Err()
		}
	}
	if err != nil {
		return fmt.Errorf("attribution ledger: record events: %w", err)
	}
	l.recent.add(fresh...)
	return nil
}

func recentKey(site, vid, what string) string { return site + "\x00" + vid + "\x00" + what }

// recentSet remembers the last writes of a process, in two generations of
// at most max keys each: a key is forgotten after between max and 2*max
// newer ones.
type recentSet struct {
	mu       sync.Mutex
	cur, old map[string]struct{}
	max      int
}

func newRecentSet(max int) *recentSet {
	return &recentSet{cur: map[string]struct{}{}, old: map[string]struct{}{}, max: max}
}

func (r *recentSet) has(k string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.cur[k]
	if !ok {
		_, ok = r.old[k]
	}
	return ok
}

func (r *recentSet) add(keys ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		if len(r.cur) >= r.max {
			r.cur, r.old = map[string]struct{}{}, r.cur
		}
		r.cur[k] = struct{}{}
	}
}

// customerDigests returns the e-mail and phone digests of u.
func customerDigests(u destinations.UserData) []string {
	var out []string
	for _, l := range [][]string{u.Em, u.Ph} {
		for _, d := range l {
			if pii.IsSHA256(d) && len(out) < 8 {
				out = append(out, strings.ToLower(d))
			}
		}
	}
	return out
}

// CustomerDigests returns the digests of an order's customer that the
// customer index is keyed by: its hashed e-mails and phones.
func CustomerDigests(u destinations.UserData) []string { return customerDigests(u) }

// IndexCustomer records that a visitor identified with customer digests
// (SHA-256 hex of a normalized e-mail or phone; other values are
// skipped). Each digest keeps the MaxCustomerVisitors visitors seen most
// recently, for Retention.
func (l *Ledger) IndexCustomer(ctx context.Context, site, visitorID string, digests ...string) error {
	if visitorID == "" || len(digests) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	pipe := l.rdb.TxPipeline()
	l.queueCustomer(ctx, pipe, site, visitorID, digests)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("attribution ledger: index customer: %w", err)
	}
	return nil
}

func (l *Ledger) queueCustomer(ctx context.Context, pipe redis.Pipeliner, site, visitorID string, digests []string) {
	now := l.opts.Now().UnixMilli()
	member := sha256Hex(visitorID)
	for _, d := range digests {
		if !pii.IsSHA256(d) {
			continue
		}
		key := CustomerKey(site, strings.ToLower(d))
		pipe.ZAdd(ctx, key, redis.Z{Score: float64(now), Member: member})
		pipe.ZRemRangeByScore(ctx, key, "-inf", "("+strconv.FormatInt(now-l.opts.Retention.Milliseconds(), 10))
		pipe.ZRemRangeByRank(ctx, key, 0, int64(-l.opts.MaxCustomerVisitors-1))
		pipe.PExpire(ctx, key, l.opts.Retention)
	}
}

// Touchpoints returns the touchpoints of visitors (at most 64 are read),
// oldest first, those captured before the retention left out.
func (l *Ledger) Touchpoints(ctx context.Context, site string, visitorIDs ...string) ([]Touchpoint, error) {
	keys := make([][2]string, 0, len(visitorIDs))
	for _, v := range visitorIDs {
		if v != "" && len(keys) < maxVisitorsRead {
			keys = append(keys, [2]string{TouchpointsKey(site, v), touchpointDetailsKey(site, v)})
		}
	}
	return l.touchpoints(ctx, keys)
}

// touchpoints reads the touchpoints under (set, details) key pairs.
func (l *Ledger) touchpoints(ctx context.Context, keys [][2]string) ([]Touchpoint, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	oldest := strconv.FormatInt(l.opts.Now().Add(-l.opts.Retention).UnixMilli(), 10)
	pipe := l.rdb.Pipeline()
	sets := make([]*redis.ZSliceCmd, len(keys))
	details := make([]*redis.MapStringStringCmd, len(keys))
	for i, k := range keys {
		sets[i] = pipe.ZRangeByScoreWithScores(ctx, k[0], &redis.ZRangeBy{Min: oldest, Max: "+inf"})
		details[i] = pipe.HGetAll(ctx, k[1])
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("attribution ledger: read: %w", err)
	}
	var out []Touchpoint
	for i := range keys {
		d := details[i].Val()
		for _, z := range sets[i].Val() {
			member, _ := z.Member.(string)
			t, v, _ := strings.Cut(member, " ")
			tp, ok := NewTouchpoint(t, v, int64(z.Score))
			if !ok {
				continue
			}
			var det touchpointDetail
			if raw, ok := d[member]; ok && json.Unmarshal([]byte(raw), &det) == nil {
				tp.LandingURL, tp.Consent = det.LandingURL, det.Consent
			}
			out = append(out, tp)
		}
	}
	return out, nil
}

// CustomerTouchpoints returns the touchpoints of the visitors who
// identified with any of the customer digests (the most recent
// MaxCustomerVisitors per digest), oldest first.
func (l *Ledger) CustomerTouchpoints(ctx context.Context, site string, digests ...string) ([]Touchpoint, error) {
	var valid []string
	for _, d := range digests {
		if pii.IsSHA256(d) {
			valid = append(valid, strings.ToLower(d))
		}
	}
	if len(valid) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.opts.Timeout)
	defer cancel()
	pipe := l.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(valid))
	for i, d := range valid {
		cmds[i] = pipe.ZRevRange(ctx, CustomerKey(site, d), 0, int64(l.opts.MaxCustomerVisitors-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("attribution ledger: read customer: %w", err)
	}
	seen := map[string]bool{}
	var keys [][2]string
	for _, c := range cmds {
		for _, h := range c.Val() {
			if seen[h] || len(keys) == maxVisitorsRead || len(h) != 64 {
				continue
			}
			seen[h] = true
			keys = append(keys, [2]string{sitePrefix(site) + "tp:" + h, sitePrefix(site) + "tpd:" + h})
		}
	}
	return l.touchpoints(ctx, keys)
}
