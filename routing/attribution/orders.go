package attribution

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/destinations"
)

// Order store bounds and defaults.
const (
	// DefaultOrderRetention is how long an order is kept after its
	// creation: 400 days, a year of reports compared with the last.
	DefaultOrderRetention = 400 * day
	// DefaultDeliveryTTL is how long a webhook delivery id is remembered.
	DefaultDeliveryTTL = 7 * day
	// MaxRefunds is the most refunds kept per order; later ones are left
	// out.
	MaxRefunds = 1000
	// maxOrderIDLen bounds an order id.
	maxOrderIDLen = 64
)

// Link says which link tied an order to its clicks.
type Link string

// The links, strongest first, and none.
const (
	// LinkVisitor: the visitor id (and click ids) the order carried, and
	// the visitor's ledger.
	LinkVisitor Link = "visitor_id"
	// LinkLanding: the click ids of the order's landing URL.
	LinkLanding Link = "landing_url"
	// LinkCustomer: the ledgers of the visitors who identified with the
	// order's hashed e-mail or phone.
	LinkCustomer Link = "customer"
	// LinkNone: no valid click was found; the order is direct / unknown.
	LinkNone Link = "none"
)

// Order is what the store needs of an order (from a parsed webhook): its
// facts and the material linking it to its clicks.
type Order struct {
	ID string
	// Source is the store platform ("shopify", "woocommerce").
	Source string
	// CreatedAt is the order's own time; UpdatedAt its last change, which
	// decides between deliveries that arrive out of order (zero: applied
	// only over a state without one).
	CreatedAt, UpdatedAt time.Time
	Currency             string
	// Total is what the customer was charged, in millionths.
	Total int64
	// Paid: the order has been paid. Cancelled, Deleted (in the trash) and
	// Test orders count for nothing in reports.
	Paid, Cancelled, Deleted, Test bool
	Refunds                        []Refund

	// VisitorID and ClickIDs are what the order carried of its visitor
	// (link 1, with the visitor's ledger); LandingClickIDs the click ids of
	// its landing URL (link 2), captured at LandingAt (zero: at the
	// order's creation); Customer its hashed e-mails and phones (link 3,
	// CustomerDigests).
	VisitorID       string
	ClickIDs        map[string]destinations.ClickID
	LandingClickIDs map[string]string
	LandingAt       time.Time
	Customer        []string
}

// Refund is money given back on an order.
type Refund struct {
	// ID makes applying a refund twice harmless.
	ID string
	// Amount is positive, in millionths of Currency (empty: the order's).
	Amount   int64
	Currency string
}

// Result is an order as stored: its revenue and its one attribution.
type Result struct {
	OrderID  string `json:"order_id"`
	Source   string `json:"source,omitempty"`
	Currency string `json:"currency"`
	// Revenue is the net revenue: Total less the refunds in the order's
	// currency, never below zero; zero for a cancelled or deleted order.
	Revenue   Money     `json:"revenue"`
	Total     Money     `json:"total"`
	Refunded  Money     `json:"refunded"`
	CreatedAt time.Time `json:"created_at"`
	// Paid reports that the order was seen paid at least once.
	Paid      bool `json:"paid"`
	Cancelled bool `json:"cancelled,omitempty"`
	Deleted   bool `json:"deleted,omitempty"`
	Test      bool `json:"test,omitempty"`
	Attribution
	// Link is the link the attribution used.
	Link Link `json:"link"`
	// AttributedAt is when the order was attributed (its first webhook
	// processed).
	AttributedAt time.Time `json:"attributed_at"`
}

// Applied is the outcome of applying an order.
type Applied struct {
	// Result is the order after the change.
	Result Result
	// NewPaid is true exactly once per order, on the first call that sees
	// it paid, however often and concurrently its webhooks are applied:
	// the caller sends one Purchase per order.
	NewPaid bool
	// Touchpoints are the touchpoints of the link used, when this call
	// read them (when it attributed the order, or NewPaid): the click ids
	// a Purchase carries (ClickIDs, Touchpoint.Fbc).
	Touchpoints []Touchpoint
	// Expired reports an order created before the retention: nothing was
	// stored.
	Expired bool
}

// OrdersOptions configure an Orders store.
type OrdersOptions struct {
	// Retention is how long an order is kept after its creation (default
	// DefaultOrderRetention).
	Retention time.Duration
	// DeliveryTTL is how long a delivery id is remembered (default
	// DefaultDeliveryTTL).
	DeliveryTTL time.Duration
	// MaxReportOrders bounds the orders one report reads (default
	// 200,000); a larger range is an error asking for a shorter one.
	MaxReportOrders int
	// Timeout bounds one call's round trips (default 5s).
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Orders stores each order's revenue and attribution, with a time index by
// creation for reports. It is safe for concurrent use.
type Orders struct {
	rdb    redis.UniversalClient
	ledger *Ledger
	opts   OrdersOptions
	apply  *redis.Script // applyScript
}

// NewOrders returns an Orders store on rdb, linking orders to clicks
// through ledger.
func NewOrders(rdb redis.UniversalClient, ledger *Ledger, opts OrdersOptions) *Orders {
	if opts.Retention <= 0 {
		opts.Retention = DefaultOrderRetention
	}
	if opts.DeliveryTTL <= 0 {
		opts.DeliveryTTL = DefaultDeliveryTTL
	}
	if opts.MaxReportOrders <= 0 {
		opts.MaxReportOrders = 200_000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Orders{rdb: rdb, ledger: ledger, opts: opts, apply: redis.NewScript(applyScript)}
}

// OrderKey is the hash of one order: s (state JSON), u (its UpdatedAt,
// Unix ms), a (attribution JSON, written once), p (set once paid), d (the
// deletion time), r:<refund id> ("<millionths> <currency>").
func OrderKey(site, orderID string) string { return sitePrefix(site) + "order:" + orderID }

// OrderIndexKey is the sorted set of a site's orders: member the order
// id, score its creation time (Unix ms).
func OrderIndexKey(site string) string { return sitePrefix(site) + "orders" }

// DeliveryKey remembers one webhook delivery id of a store platform.
func DeliveryKey(site, source, deliveryID string) string {
	return sitePrefix(site) + "whd:" + source + ":" + deliveryID
}

// orderState is the stored state of an order (field s).
type orderState struct {
	Source    string `json:"src,omitempty"`
	CreatedAt int64  `json:"created"`
	Currency  string `json:"cur"`
	Total     int64  `json:"total"`
	Cancelled bool   `json:"cancelled,omitempty"`
	Deleted   bool   `json:"deleted,omitempty"`
	Test      bool   `json:"test,omitempty"`
}

// storedAttribution is the stored attribution of an order (field a).
type storedAttribution struct {
	Link  Link    `json:"link"`
	At    int64   `json:"at"`
	Click []Click `json:"clicks"`
}

// applyScript applies one change to an order's hash, in one step.
// KEYS: order, index.
// ARGV: 1 updated ms, 2 state JSON ("" for none), 3 attribution JSON (""
// for none), 4 "1" when paid, 5 created ms ("" for none), 6 order id,
// 7 time to live ms, 8 oldest created ms kept in the index, 9 deletion ("1"
// mark, "0" clear when older than the state, "" leave), 10 now ms, 11
// retention ms (for a key without state), 12 most fields, then refund
// field/value pairs. Returns {new paid (0/1), HGETALL}.
const applyScript = `
local key, idx = KEYS[1], KEYS[2]
if ARGV[2] ~= '' then
  local old = redis.call('HGET', key, 'u')
  if not old or tonumber(ARGV[1]) >= tonumber(old) then
    redis.call('HSET', key, 's', ARGV[2], 'u', ARGV[1])
    if ARGV[9] == '0' then
      local d = redis.call('HGET', key, 'd')
      if d and tonumber(ARGV[1]) > tonumber(d) then redis.call('HDEL', key, 'd') end
    end
  end
end
if ARGV[9] == '1' then redis.call('HSET', key, 'd', ARGV[10]) end
if ARGV[3] ~= '' then redis.call('HSETNX', key, 'a', ARGV[3]) end
local newPaid = 0
if ARGV[4] == '1' then newPaid = redis.call('HSETNX', key, 'p', ARGV[10]) end
for i = 13, #ARGV, 2 do
  if redis.call('HLEN', key) < tonumber(ARGV[12]) then redis.call('HSETNX', key, ARGV[i], ARGV[i+1]) end
end
if ARGV[5] ~= '' then
  redis.call('ZADD', idx, ARGV[5], ARGV[6])
  redis.call('PEXPIRE', key, ARGV[7])
elseif redis.call('PTTL', key) == -1 then
  redis.call('PEXPIRE', key, ARGV[11])
end
redis.call('ZREMRANGEBYSCORE', idx, '-inf', '(' .. ARGV[8])
return {newPaid, redis.call('HGETALL', key)}
`

// validOrderID reports whether id may name an order: 1 to 64 printable
// ASCII characters without spaces.
func validOrderID(id string) bool { return token(id, maxOrderIDLen) }

// Apply stores an order's current state and, the first time it is
// applied, its attribution: the links are tried strongest first (the
// visitor id and click ids it carries with the visitor's ledger, then its
// landing URL's click ids, then the visitors of its customer digests) and
// the first that yields a valid click is used (Attribute, with the site's
// windows w); none leaves the order direct / unknown. Later applications
// update its revenue (state, refunds) but never its attribution. A state
// older (UpdatedAt) than the stored one is left out; refunds are kept by
// id. An order created before the retention is not stored (Expired).
func (s *Orders) Apply(ctx context.Context, site string, o Order, w Windows) (Applied, error) {
	if !validOrderID(o.ID) {
		return Applied{}, errors.New("attribution: invalid order id")
	}
	now := s.opts.Now()
	if o.CreatedAt.Before(now.Add(-s.opts.Retention)) {
		return Applied{Expired: true}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	key := OrderKey(site, o.ID)
	have, err := s.rdb.HMGet(ctx, key, "a", "p").Result()
	if err != nil {
		return Applied{}, fmt.Errorf("attribution: read order: %w", err)
	}
	attributed, paid := have[0] != nil, have[1] != nil

	var (
		attr string
		tps  []Touchpoint
	)
	if !attributed || (o.Paid && !paid) {
		a, link, linked, err := s.link(ctx, site, o, w)
		if err != nil {
			return Applied{}, err
		}
		tps = linked
		if !attributed {
			b, _ := json.Marshal(storedAttribution{Link: link, At: now.UnixMilli(), Click: a.Clicks})
			attr = string(b)
		}
	}
	state, _ := json.Marshal(orderState{
		Source: o.Source, CreatedAt: o.CreatedAt.UnixMilli(), Currency: o.Currency, Total: max(o.Total, 0),
		Cancelled: o.Cancelled, Deleted: o.Deleted, Test: o.Test,
	})
	deletion := "0"
	if o.Deleted {
		deletion = "1"
	}
	var upd int64
	if !o.UpdatedAt.IsZero() {
		upd = o.UpdatedAt.UnixMilli()
	}
	res, newPaid, err := s.run(ctx, site, o.ID, scriptArgs{
		updated: upd, state: string(state), attr: attr, paid: o.Paid, created: o.CreatedAt, deletion: deletion, refunds: o.Refunds,
	})
	if err != nil {
		return Applied{}, err
	}
	return Applied{Result: res, NewPaid: newPaid, Touchpoints: tps}, nil
}

// link gathers the order's touchpoints link by link, strongest first,
// and attributes it with the first that yields a valid click.
func (s *Orders) link(ctx context.Context, site string, o Order, w Windows) (Attribution, Link, []Touchpoint, error) {
	var own []Touchpoint
	for _, t := range ClickIDTypes() {
		if id, ok := o.ClickIDs[t]; ok {
			if tp, ok := NewTouchpoint(t, id.Value, id.At); ok {
				own = append(own, tp)
			}
		}
	}
	visitor, err := s.ledger.Touchpoints(ctx, site, o.VisitorID)
	if err != nil {
		return Attribution{}, "", nil, err
	}
	if tps := append(own, visitor...); len(tps) > 0 {
		if a := Attribute(o.CreatedAt, tps, w); a.Primary != nil {
			return a, LinkVisitor, tps, nil
		}
	}
	landedAt := o.LandingAt
	if landedAt.IsZero() || landedAt.After(o.CreatedAt) {
		landedAt = o.CreatedAt
	}
	var landing []Touchpoint
	for _, t := range ClickIDTypes() {
		if v, ok := o.LandingClickIDs[t]; ok {
			if tp, ok := NewTouchpoint(t, v, landedAt.UnixMilli()); ok {
				landing = append(landing, tp)
			}
		}
	}
	if a := Attribute(o.CreatedAt, landing, w); a.Primary != nil {
		return a, LinkLanding, landing, nil
	}
	customer, err := s.ledger.CustomerTouchpoints(ctx, site, o.Customer...)
	if err != nil {
		return Attribution{}, "", nil, err
	}
	if a := Attribute(o.CreatedAt, customer, w); a.Primary != nil {
		return a, LinkCustomer, customer, nil
	}
	return Attribute(o.CreatedAt, nil, w), LinkNone, nil, nil
}

// ApplyRefund stores one refund of an order (by refund id: applying it
// again changes nothing). A refund may arrive before its order; it is
// kept, and counted once the order is stored.
func (s *Orders) ApplyRefund(ctx context.Context, site, orderID string, r Refund) (Result, error) {
	if !validOrderID(orderID) {
		return Result{}, errors.New("attribution: invalid order id")
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	res, _, err := s.run(ctx, site, orderID, scriptArgs{refunds: []Refund{r}})
	return res, err
}

// MarkDeleted records that an order was deleted (moved to the trash); a
// later state of the order, newer than the deletion, restores it.
func (s *Orders) MarkDeleted(ctx context.Context, site, orderID string) error {
	if !validOrderID(orderID) {
		return errors.New("attribution: invalid order id")
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	_, _, err := s.run(ctx, site, orderID, scriptArgs{deletion: "1"})
	return err
}

// scriptArgs are the parts of one applyScript call.
type scriptArgs struct {
	updated     int64
	state, attr string
	paid        bool
	created     time.Time
	deletion    string
	refunds     []Refund
}

func (s *Orders) run(ctx context.Context, site, orderID string, a scriptArgs) (Result, bool, error) {
	now := s.opts.Now()
	// Expiry is relative (PEXPIRE), so that it follows the injected clock
	// rather than the server's.
	created, ttl := "", int64(0)
	if !a.created.IsZero() {
		created = strconv.FormatInt(a.created.UnixMilli(), 10)
		ttl = max(a.created.Add(s.opts.Retention).Sub(now).Milliseconds(), 1)
	}
	paid := "0"
	if a.paid {
		paid = "1"
	}
	args := []any{a.updated, a.state, a.attr, paid, created, orderID, ttl,
		now.Add(-s.opts.Retention).UnixMilli(), a.deletion, now.UnixMilli(), s.opts.Retention.Milliseconds(), MaxRefunds + 8}
	for _, r := range a.refunds {
		if !validOrderID(r.ID) || r.Amount < 0 {
			continue
		}
		args = append(args, "r:"+r.ID, strconv.FormatInt(r.Amount, 10)+" "+r.Currency)
	}
	v, err := s.apply.Run(ctx, s.rdb, []string{OrderKey(site, orderID), OrderIndexKey(site)}, args...).Slice()
	if err != nil {
		return Result{}, false, fmt.Errorf("attribution: store order: %w", err)
	}
	if len(v) != 2 {
		return Result{}, false, errors.New("attribution: unexpected script reply")
	}
	newPaid, _ := v[0].(int64)
	flat, _ := v[1].([]any)
	fields := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		k, _ := flat[i].(string)
		val, _ := flat[i+1].(string)
		fields[k] = val
	}
	res, _ := resultFrom(orderID, fields)
	return res, newPaid == 1, nil
}

// Get returns a stored order; ok is false when there is none (or only
// refunds of it).
func (s *Orders) Get(ctx context.Context, site, orderID string) (res Result, ok bool, err error) {
	if !validOrderID(orderID) {
		return Result{}, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	fields, err := s.rdb.HGetAll(ctx, OrderKey(site, orderID)).Result()
	if err != nil {
		return Result{}, false, fmt.Errorf("attribution: read order: %w", err)
	}
	res, ok = resultFrom(orderID, fields)
	return res, ok, nil
}

// resultFrom reads an order's hash; ok is false without a state.
func resultFrom(orderID string, f map[string]string) (Result, bool) {
	res := Result{OrderID: orderID, Attribution: Attribution{Assists: []Click{}, Clicks: []Click{}}, Link: LinkNone}
	var st orderState
	if json.Unmarshal([]byte(f["s"]), &st) != nil {
		return res, false
	}
	res.Source, res.Currency, res.Total = st.Source, st.Currency, Money(st.Total)
	res.CreatedAt = time.UnixMilli(st.CreatedAt).UTC()
	res.Cancelled, res.Test = st.Cancelled, st.Test
	_, res.Deleted = f["d"]
	res.Deleted = res.Deleted || st.Deleted
	_, res.Paid = f["p"]
	for k, v := range f {
		if !strings.HasPrefix(k, "r:") {
			continue
		}
		amount, cur, _ := strings.Cut(v, " ")
		n, err := strconv.ParseInt(amount, 10, 64)
		if err == nil && n > 0 && (cur == "" || cur == st.Currency) {
			res.Refunded += Money(n)
		}
	}
	if !res.Cancelled && !res.Deleted {
		res.Revenue = max(res.Total-res.Refunded, 0)
	}
	var a storedAttribution
	if json.Unmarshal([]byte(f["a"]), &a) == nil {
		res.Link, res.AttributedAt = a.Link, time.UnixMilli(a.At).UTC()
		res.Attribution = fromClicks(a.Click)
	}
	return res, true
}

// SeenDelivery reports whether a webhook delivery id was marked
// (MarkDelivery) within the delivery TTL. An empty or malformed id (over
// 64 bytes, not printable ASCII) is never seen.
func (s *Orders) SeenDelivery(ctx context.Context, site, source, deliveryID string) (bool, error) {
	if !validOrderID(deliveryID) {
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	n, err := s.rdb.Exists(ctx, DeliveryKey(site, source, deliveryID)).Result()
	if err != nil {
		return false, fmt.Errorf("attribution: read delivery: %w", err)
	}
	return n == 1, nil
}

// MarkDelivery remembers a webhook delivery id for the delivery TTL; call
// it once the delivery's change is applied, so that a redelivery is
// skipped (applying it again would be harmless, only slower).
func (s *Orders) MarkDelivery(ctx context.Context, site, source, deliveryID string) error {
	if !validOrderID(deliveryID) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	if err := s.rdb.Set(ctx, DeliveryKey(site, source, deliveryID), "1", s.opts.DeliveryTTL).Err(); err != nil {
		return fmt.Errorf("attribution: mark delivery: %w", err)
	}
	return nil
}
