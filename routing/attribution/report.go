package attribution

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Report is the attribution of a site's orders created in [Since, Until)
// under one model, per currency.
type Report struct {
	Since      time.Time        `json:"since"`
	Until      time.Time        `json:"until"`
	Model      Model            `json:"model"`
	Currencies []CurrencyReport `json:"currencies"`
	// Excluded counts the orders of the range that count for nothing:
	// never paid, cancelled or deleted, or test orders.
	Excluded Excluded `json:"excluded"`
}

// Excluded counts orders left out of a report, by reason (the first that
// applies, in this order).
type Excluded struct {
	Test      int `json:"test"`
	Cancelled int `json:"cancelled"`
	Unpaid    int `json:"unpaid"`
}

// CurrencyReport is the attribution of the orders in one currency.
type CurrencyReport struct {
	Currency string `json:"currency"`
	// Platforms are the platforms with direct or influenced revenue, most
	// direct revenue first.
	Platforms    []PlatformRow `json:"platforms"`
	Totals       Totals        `json:"totals"`
	Unattributed Unattributed  `json:"unattributed"`
}

// PlatformRow is one platform's part of a report.
type PlatformRow struct {
	Platform Platform `json:"platform"`
	// Orders is the orders credited to the platform by the model (a
	// fraction of an order under linear and position-based).
	Orders float64 `json:"orders"`
	// DirectRevenue is the net revenue credited by the model. Summed over
	// the platforms it never exceeds Totals.Revenue.
	DirectRevenue Money `json:"direct_revenue"`
	// Assists is the orders in which the platform had a valid click but
	// not the most recent one, and InfluencedRevenue their net revenue:
	// participation, never to be added to direct revenue. They do not
	// depend on the model.
	InfluencedRevenue Money `json:"influenced_revenue"`
	Assists           int   `json:"assists"`
}

// Totals sum the orders of a currency.
type Totals struct {
	Orders int `json:"orders"`
	// Revenue is the net revenue of all orders, attributed or not.
	Revenue Money `json:"revenue"`
	// DirectRevenue is the revenue credited to platforms.
	DirectRevenue Money `json:"direct_revenue"`
}

// Unattributed counts the orders with no valid click (direct / unknown).
type Unattributed struct {
	Orders  int   `json:"orders"`
	Revenue Money `json:"revenue"`
}

// ErrReportTooLarge is returned when a report's range holds more orders
// than OrdersOptions.MaxReportOrders; ask for a shorter range.
var ErrReportTooLarge = errors.New("attribution: too many orders in the range; ask for a shorter one")

// BuildReport computes the per-currency report of orders under model m.
// An order counts when it was paid and is neither cancelled, deleted nor a
// test, with its net revenue.
func BuildReport(results []Result, m Model) ([]CurrencyReport, Excluded) {
	var ex Excluded
	byCur := map[string]*CurrencyReport{}
	rows := map[string]map[Platform]*PlatformRow{}
	for i := range results {
		r := &results[i]
		switch {
		case r.Test:
			ex.Test++
			continue
		case r.Cancelled || r.Deleted:
			ex.Cancelled++
			continue
		case !r.Paid:
			ex.Unpaid++
			continue
		}
		cr := byCur[r.Currency]
		if cr == nil {
			cr = &CurrencyReport{Currency: r.Currency, Platforms: []PlatformRow{}}
			byCur[r.Currency] = cr
			rows[r.Currency] = map[Platform]*PlatformRow{}
		}
		row := func(p Platform) *PlatformRow {
			pr := rows[r.Currency][p]
			if pr == nil {
				pr = &PlatformRow{Platform: p}
				rows[r.Currency][p] = pr
			}
			return pr
		}
		cr.Totals.Orders++
		cr.Totals.Revenue += r.Revenue
		if r.Primary == nil {
			cr.Unattributed.Orders++
			cr.Unattributed.Revenue += r.Revenue
			continue
		}
		parts, shares := r.Attribution.Split(int64(r.Revenue), m)
		for p, v := range parts {
			pr := row(p)
			pr.DirectRevenue += Money(v)
			pr.Orders += shares[p]
			cr.Totals.DirectRevenue += Money(v)
		}
		for _, c := range r.Assists {
			pr := row(c.Platform)
			pr.Assists++
			pr.InfluencedRevenue += r.Revenue
		}
	}
	out := make([]CurrencyReport, 0, len(byCur))
	for cur, cr := range byCur {
		for _, pr := range rows[cur] {
			cr.Platforms = append(cr.Platforms, *pr)
		}
		slices.SortFunc(cr.Platforms, func(a, b PlatformRow) int {
			return cmp.Or(cmp.Compare(b.DirectRevenue, a.DirectRevenue), cmp.Compare(b.InfluencedRevenue, a.InfluencedRevenue),
				cmp.Compare(a.Platform, b.Platform))
		})
		out = append(out, *cr)
	}
	slices.SortFunc(out, func(a, b CurrencyReport) int {
		return cmp.Or(cmp.Compare(b.Totals.Revenue, a.Totals.Revenue), cmp.Compare(a.Currency, b.Currency))
	})
	return out, ex
}

// reportIDs returns the ids of the orders created in [since, until), one
// round trip bounded by the store's Timeout.
func (s *Orders) reportIDs(ctx context.Context, site string, since, until time.Time) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	idx := OrderIndexKey(site)
	lo, hi := strconv.FormatInt(since.UnixMilli(), 10), "("+strconv.FormatInt(until.UnixMilli(), 10)
	n, err := s.rdb.ZCount(ctx, idx, lo, hi).Result()
	if err != nil {
		return nil, fmt.Errorf("attribution: report: %w", err)
	}
	if n > int64(s.opts.MaxReportOrders) {
		return nil, ErrReportTooLarge
	}
	ids, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: idx, Start: lo, Stop: hi, ByScore: true, Count: int64(s.opts.MaxReportOrders)}).Result()
	if err != nil {
		return nil, fmt.Errorf("attribution: report: %w", err)
	}
	return ids, nil
}

// readBatch reads the orders ids in one pipeline bounded by the store's
// Timeout, appending them to results.
func (s *Orders) readBatch(ctx context.Context, site string, ids []string, results []Result) ([]Result, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGetAll(ctx, OrderKey(site, id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return results, fmt.Errorf("attribution: report: %w", err)
	}
	for i, id := range ids {
		if r, ok := resultFrom(id, cmds[i].Val()); ok {
			results = append(results, r)
		}
	}
	return results, nil
}

// reportBatch is how many orders one pipeline reads.
const reportBatch = 500

// Report computes the attribution report of a site's orders created in
// [since, until) under model m (ParseModel): a count and a range read,
// then the orders in pipelines of 500, each round trip bounded by the
// store's Timeout.
func (s *Orders) Report(ctx context.Context, site string, since, until time.Time, m Model) (Report, error) {
	if !until.After(since) {
		return Report{}, errors.New("attribution: until must be after since")
	}
	m, err := ParseModel(string(m))
	if err != nil {
		return Report{}, err
	}
	ids, err := s.reportIDs(ctx, site, since, until)
	if err != nil {
		return Report{}, err
	}
	results := make([]Result, 0, len(ids))
	for start := 0; start < len(ids); start += reportBatch {
		batch := ids[start:min(start+reportBatch, len(ids))]
		if results, err = s.readBatch(ctx, site, batch, results); err != nil {
			return Report{}, err
		}
	}
	cur, ex := BuildReport(results, m)
	return Report{Since: since.UTC(), Until: until.UTC(), Model: m, Currencies: cur, Excluded: ex}, nil
}
