package attribution

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

// The classic week: a Meta click on Monday, a Google click on Wednesday,
// the order on Thursday.
var (
	monday    = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	wednesday = time.Date(2026, 3, 4, 15, 0, 0, 0, time.UTC)
	thursday  = time.Date(2026, 3, 5, 12, 0, 0, 0, time.UTC)
)

func tp(t, id string, at time.Time) Touchpoint {
	p, ok := NewTouchpoint(t, id, at.UnixMilli())
	if !ok {
		panic("bad touchpoint " + t)
	}
	return p
}

func TestPlatformOf(t *testing.T) {
	want := map[string]Platform{
		"fbclid": Meta, "gclid": Google, "gbraid": Google, "wbraid": Google, "msclkid": Microsoft,
		"ttclid": TikTok, "ScCid": Snap, "epik": Pinterest, "rdt_cid": Reddit, "li_fat_id": LinkedIn,
	}
	for typ, p := range want {
		if got, ok := PlatformOf(typ); !ok || got != p {
			t.Errorf("PlatformOf(%q) = %q, %v; want %q", typ, got, ok, p)
		}
	}
	for _, typ := range []string{"", "sccid", "utm_source", "FBCLID"} {
		if _, ok := PlatformOf(typ); ok {
			t.Errorf("PlatformOf(%q) is known", typ)
		}
	}
	if len(ClickIDTypes()) != len(want) {
		t.Errorf("ClickIDTypes() = %v", ClickIDTypes())
	}
}

func TestWindows(t *testing.T) {
	want := map[string]int{"fbclid": 28, "gclid": 90, "gbraid": 90, "wbraid": 90, "msclkid": 90, "ttclid": 28, "ScCid": 28, "epik": 30, "rdt_cid": 28, "li_fat_id": 30}
	for typ, days := range want {
		if got := (Windows{}).Of(typ); got != time.Duration(days)*day {
			t.Errorf("default window of %s = %v, want %d days", typ, got, days)
		}
		if got := DefaultWindows()[typ]; got != time.Duration(days)*day {
			t.Errorf("DefaultWindows()[%s] = %v", typ, got)
		}
	}
	w := Windows{"fbclid": 7 * day, "gclid": 120 * day}
	if w.Of("fbclid") != 7*day || w.Of("ttclid") != 28*day || w.Longest() != 120*day || (Windows{}).Longest() != 90*day {
		t.Errorf("overrides: %v %v %v", w.Of("fbclid"), w.Of("ttclid"), w.Longest())
	}
	if err := w.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	err := Windows{"fbclid": time.Minute, "utm": day, "gclid": 400 * day}.Validate()
	for _, s := range []string{`"fbclid"`, `"utm"`, `"gclid"`} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("Validate error %v does not name %s", err, s)
		}
	}
}

func TestAttributeClassicCase(t *testing.T) {
	a := Attribute(thursday, []Touchpoint{tp("fbclid", "IwAR_monday", monday), tp("gclid", "Cj0_wednesday", wednesday)}, nil)
	if a.Primary == nil || *a.Primary != (Click{Platform: Google, Type: "gclid", CapturedAt: wednesday}) {
		t.Fatalf("primary = %+v, want google's Wednesday click", a.Primary)
	}
	if want := []Click{{Platform: Meta, Type: "fbclid", CapturedAt: monday}}; !slices.Equal(a.Assists, want) {
		t.Errorf("assists = %+v, want %+v", a.Assists, want)
	}
	parts, orders := a.Split(124_500_000, LastClick)
	if len(parts) != 1 || parts[Google] != 124_500_000 || orders[Google] != 1 {
		t.Errorf("last click split = %v %v", parts, orders)
	}
}

func TestAttributeWindows(t *testing.T) {
	order := thursday
	tests := []struct {
		name    string
		tps     []Touchpoint
		w       Windows
		primary string // click id type of the primary, "" for none
		clicks  int
	}{
		{"fbclid 28 days before", []Touchpoint{tp("fbclid", "a", order.Add(-28*day))}, nil, "fbclid", 1},
		{"fbclid 28 days and a second before", []Touchpoint{tp("fbclid", "a", order.Add(-28*day-time.Second))}, nil, "", 0},
		{"gclid 89 days before", []Touchpoint{tp("gclid", "a", order.Add(-89*day))}, nil, "gclid", 1},
		{"gclid 91 days before", []Touchpoint{tp("gclid", "a", order.Add(-91*day))}, nil, "", 0},
		{"epik 31 days before", []Touchpoint{tp("epik", "a", order.Add(-31*day))}, nil, "", 0},
		{"li_fat_id 29 days before", []Touchpoint{tp("li_fat_id", "a", order.Add(-29*day))}, nil, "li_fat_id", 1},
		{"captured at the order", []Touchpoint{tp("ttclid", "a", order)}, nil, "ttclid", 1},
		{"captured a second after the order", []Touchpoint{tp("ttclid", "a", order.Add(time.Second))}, nil, "", 0},
		{"a later click after the order does not win", []Touchpoint{tp("fbclid", "a", order.Add(-day)), tp("gclid", "b", order.Add(time.Hour))}, nil, "fbclid", 1},
		{"a site's shorter window", []Touchpoint{tp("fbclid", "a", order.Add(-10*day))}, Windows{"fbclid": 7 * day}, "", 0},
		{"a site's longer window", []Touchpoint{tp("gclid", "a", order.Add(-100*day))}, Windows{"gclid": 120 * day}, "gclid", 1},
		{"expired recent click, valid older one of another platform", []Touchpoint{tp("gclid", "g", order.Add(-60*day)), tp("fbclid", "f", order.Add(-30*day))}, nil, "gclid", 1},
		{"unknown type", []Touchpoint{{Type: "utm_source", ClickID: "x", CapturedAt: order.Add(-time.Hour)}}, nil, "", 0},
		{"the same click id twice counts once, at its first capture", []Touchpoint{tp("gclid", "a", order.Add(-2*day)), tp("gclid", "a", order.Add(-time.Hour)), tp("fbclid", "f", order.Add(-day))}, nil, "fbclid", 2},
		{"no touchpoints", nil, nil, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Attribute(order, tt.tps, tt.w)
			got := ""
			if a.Primary != nil {
				got = a.Primary.Type
			}
			if got != tt.primary || len(a.Clicks) != tt.clicks {
				t.Errorf("primary %q with %d clicks, want %q with %d", got, len(a.Clicks), tt.primary, tt.clicks)
			}
			if a.Primary == nil && (len(a.Assists) != 0 || a.Assists == nil) {
				t.Errorf("assists %v without a primary", a.Assists)
			}
		})
	}
}

func TestAttributeAssistsOnePerPlatform(t *testing.T) {
	a := Attribute(thursday, []Touchpoint{
		tp("fbclid", "f1", thursday.Add(-5*day)), tp("gbraid", "g1", thursday.Add(-4*day)), tp("fbclid", "f2", thursday.Add(-3*day)),
		tp("ttclid", "t1", thursday.Add(-2*day)), tp("gclid", "g2", thursday.Add(-day)),
	}, nil)
	want := []Click{
		{Platform: TikTok, Type: "ttclid", CapturedAt: thursday.Add(-2 * day)},
		{Platform: Meta, Type: "fbclid", CapturedAt: thursday.Add(-3 * day)},
	}
	if a.Primary.Platform != Google || !slices.Equal(a.Assists, want) || len(a.Clicks) != 5 {
		t.Errorf("primary %+v assists %+v", a.Primary, a.Assists)
	}
}

func TestAttributeBoundsClicks(t *testing.T) {
	var tps []Touchpoint
	for i := range MaxOrderClicks + 10 {
		tps = append(tps, tp("gclid", "g"+strconv.Itoa(i), thursday.Add(-time.Duration(i+1)*time.Hour)))
	}
	a := Attribute(thursday, tps, nil)
	if len(a.Clicks) != MaxOrderClicks || !a.Clicks[len(a.Clicks)-1].CapturedAt.Equal(thursday.Add(-time.Hour)) {
		t.Errorf("%d clicks, last %v", len(a.Clicks), a.Clicks[len(a.Clicks)-1].CapturedAt)
	}
}

func TestModels(t *testing.T) {
	three := Attribute(thursday, []Touchpoint{tp("fbclid", "f", monday), tp("ttclid", "t", monday.Add(day)), tp("gclid", "g", wednesday)}, nil)
	four := Attribute(thursday, []Touchpoint{tp("fbclid", "f", monday), tp("ttclid", "t", monday.Add(day)), tp("epik", "p", monday.Add(36*time.Hour)), tp("gclid", "g", wednesday)}, nil)
	two := Attribute(thursday, []Touchpoint{tp("fbclid", "f", monday), tp("gclid", "g", wednesday)}, nil)
	one := Attribute(thursday, []Touchpoint{tp("fbclid", "f", monday)}, nil)
	tests := []struct {
		name   string
		a      Attribution
		m      Model
		want   map[Platform]int64
		orders map[Platform]float64
	}{
		{"last click", three, LastClick, map[Platform]int64{Google: 100_000_000}, map[Platform]float64{Google: 1}},
		{"first click", three, FirstClick, map[Platform]int64{Meta: 100_000_000}, map[Platform]float64{Meta: 1}},
		{"linear: the odd millionth to the latest click", three, Linear, map[Platform]int64{Meta: 33_333_333, TikTok: 33_333_333, Google: 33_333_334},
			map[Platform]float64{Meta: 1.0 / 3, TikTok: 1.0 / 3, Google: 1.0 / 3}},
		{"position based, three clicks", three, PositionBased, map[Platform]int64{Meta: 40_000_000, TikTok: 20_000_000, Google: 40_000_000},
			map[Platform]float64{Meta: .4, TikTok: .2, Google: .4}},
		{"position based, four clicks", four, PositionBased, map[Platform]int64{Meta: 40_000_000, TikTok: 10_000_000, Pinterest: 10_000_000, Google: 40_000_000},
			map[Platform]float64{Meta: .4, TikTok: .1, Pinterest: .1, Google: .4}},
		{"position based, two clicks", two, PositionBased, map[Platform]int64{Meta: 50_000_000, Google: 50_000_000}, map[Platform]float64{Meta: .5, Google: .5}},
		{"position based, one click", one, PositionBased, map[Platform]int64{Meta: 100_000_000}, map[Platform]float64{Meta: 1}},
		{"no click", Attribute(thursday, nil, nil), Linear, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, orders := tt.a.Split(100_000_000, tt.m)
			if len(parts) != len(tt.want) || len(orders) != len(tt.orders) {
				t.Fatalf("parts %v orders %v, want %v %v", parts, orders, tt.want, tt.orders)
			}
			for p, v := range tt.want {
				if parts[p] != v || math.Abs(orders[p]-tt.orders[p]) > 1e-9 {
					t.Errorf("%s: %d (%v orders), want %d (%v)", p, parts[p], orders[p], v, tt.orders[p])
				}
			}
		})
	}
	for _, s := range []string{"", "last_click", "first_click", "linear", "position_based"} {
		if _, err := ParseModel(s); err != nil {
			t.Errorf("ParseModel(%q): %v", s, err)
		}
	}
	if _, err := ParseModel("time_decay"); err == nil {
		t.Error("ParseModel accepted time_decay")
	}
}

// randomResults returns n random orders: currencies, states, revenue and
// clicks of random platforms and ages (some outside their windows).
func randomResults(r *rand.Rand, n int) []Result {
	types := ClickIDTypes()
	out := make([]Result, n)
	for i := range out {
		var tps []Touchpoint
		for range r.IntN(12) {
			tps = append(tps, tp(types[r.IntN(len(types))], strconv.Itoa(r.IntN(20)), thursday.Add(-time.Duration(r.Int64N(int64(120*day))))))
		}
		total := Money(r.Int64N(1_000_000_000_000_000))
		refunded := Money(r.Int64N(int64(total) + 1))
		if r.IntN(2) == 0 {
			refunded = 0
		}
		out[i] = Result{
			OrderID: strconv.Itoa(i), Currency: []string{"USD", "EUR"}[r.IntN(2)], Total: total, Refunded: refunded,
			Revenue: total - refunded, Paid: r.IntN(8) != 0, Cancelled: r.IntN(10) == 0, Test: r.IntN(20) == 0,
			Attribution: Attribute(thursday, tps, nil),
		}
		if out[i].Cancelled {
			out[i].Revenue = 0
		}
	}
	return out
}

// TestOneOrderOnePrimary is the property the report promises: under every
// model, the direct revenue summed over platforms equals the attributed
// revenue and never exceeds the real (net) revenue; each order is credited
// at most once.
func TestOneOrderOnePrimary(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 2026))
	for round := range 300 {
		results := randomResults(r, 1+r.IntN(40))
		for _, m := range []Model{LastClick, FirstClick, Linear, PositionBased} {
			for _, res := range results {
				parts, orders := res.Split(int64(res.Revenue), m)
				var sum int64
				var credited float64
				for p, v := range parts {
					if v < 0 {
						t.Fatalf("round %d %s: negative part %d for %s", round, m, v, p)
					}
					sum += v
					credited += orders[p]
				}
				if res.Primary != nil && (sum != int64(res.Revenue) || math.Abs(credited-1) > 1e-9) {
					t.Fatalf("round %d %s: parts %v sum to %d (%v orders), revenue %d", round, m, parts, sum, credited, res.Revenue)
				}
				if res.Primary == nil && len(parts) != 0 {
					t.Fatalf("round %d %s: unattributed order credited %v", round, m, parts)
				}
			}
			reports, ex := BuildReport(results, m)
			counted := 0
			for _, cr := range reports {
				var direct Money
				var orders float64
				for _, pr := range cr.Platforms {
					direct += pr.DirectRevenue
					orders += pr.Orders
				}
				if direct != cr.Totals.DirectRevenue || direct > cr.Totals.Revenue || direct+cr.Unattributed.Revenue != cr.Totals.Revenue {
					t.Fatalf("round %d %s %s: direct %d, unattributed %d, revenue %d", round, m, cr.Currency, direct, cr.Unattributed.Revenue, cr.Totals.Revenue)
				}
				if math.Round(orders)+float64(cr.Unattributed.Orders) != float64(cr.Totals.Orders) {
					t.Fatalf("round %d %s: %v credited + %d unattributed orders != %d", round, m, orders, cr.Unattributed.Orders, cr.Totals.Orders)
				}
				counted += cr.Totals.Orders
			}
			if counted+ex.Test+ex.Cancelled+ex.Unpaid != len(results) {
				t.Fatalf("round %d: %d counted + %+v excluded != %d", round, counted, ex, len(results))
			}
		}
	}
}

func TestBuildReport(t *testing.T) {
	classic := Attribute(thursday, []Touchpoint{tp("fbclid", "f", monday), tp("gclid", "g", wednesday)}, nil)
	metaOnly := Attribute(thursday, []Touchpoint{tp("fbclid", "f2", wednesday)}, nil)
	results := []Result{
		{OrderID: "1", Currency: "USD", Revenue: 100_000_000, Paid: true, Attribution: classic},
		{OrderID: "2", Currency: "USD", Revenue: 50_000_000, Paid: true, Attribution: metaOnly},
		{OrderID: "3", Currency: "USD", Revenue: 30_000_000, Paid: true, Attribution: fromClicks(nil)},
		{OrderID: "4", Currency: "USD", Revenue: 70_000_000, Paid: false, Attribution: classic},
		{OrderID: "5", Currency: "USD", Revenue: 0, Paid: true, Cancelled: true, Attribution: classic},
		{OrderID: "6", Currency: "EUR", Revenue: 10_000_000, Paid: true, Attribution: classic},
	}
	reports, ex := BuildReport(results, LastClick)
	want := []CurrencyReport{
		{Currency: "USD", Platforms: []PlatformRow{
			{Platform: Google, Orders: 1, DirectRevenue: 100_000_000},
			{Platform: Meta, Orders: 1, DirectRevenue: 50_000_000, InfluencedRevenue: 100_000_000, Assists: 1},
		}, Totals: Totals{Orders: 3, Revenue: 180_000_000, DirectRevenue: 150_000_000}, Unattributed: Unattributed{Orders: 1, Revenue: 30_000_000}},
		{Currency: "EUR", Platforms: []PlatformRow{
			{Platform: Google, Orders: 1, DirectRevenue: 10_000_000},
			{Platform: Meta, InfluencedRevenue: 10_000_000, Assists: 1},
		}, Totals: Totals{Orders: 1, Revenue: 10_000_000, DirectRevenue: 10_000_000}},
	}
	gotJSON, _ := json.Marshal(reports)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("report\n got %s\nwant %s", gotJSON, wantJSON)
	}
	if ex != (Excluded{Cancelled: 1, Unpaid: 1}) {
		t.Errorf("excluded = %+v", ex)
	}
}

func TestTouchpointsFromEvent(t *testing.T) {
	granted := destinations.Consent{AdStorage: destinations.Granted, AdUserData: destinations.Granted}
	ev := &destinations.Event{
		EventSourceURL: "https://shop.example/p/shirt?gclid=Cj0&email=a%40b.example#top",
		UserData:       destinations.UserData{Fbc: "fb.1.1772445600000.IwAR_m.AQ"},
		Context: destinations.Context{
			ReceivedAt: wednesday.UnixMilli() + 500,
			Consent:    granted,
			ClickIDs: map[string]destinations.ClickID{
				"gclid":  {Value: "Cj0", At: wednesday.UnixMilli()},
				"ttclid": {Value: "tt", At: monday.UnixMilli()},
				"foo":    {Value: "x", At: monday.UnixMilli()},
				"wbraid": {Value: "has space", At: monday.UnixMilli()},
			},
		},
	}
	got := TouchpointsFromEvent(ev)
	want := []Touchpoint{
		{Platform: Google, Type: "gclid", ClickID: "Cj0", CapturedAt: wednesday, LandingURL: "https://shop.example/p/shirt", Consent: granted},
		{Platform: TikTok, Type: "ttclid", ClickID: "tt", CapturedAt: monday, Consent: granted},
		{Platform: Meta, Type: "fbclid", ClickID: "IwAR_m", CapturedAt: monday, Consent: granted},
	}
	if !slices.Equal(got, want) {
		t.Errorf("touchpoints\n got %+v\nwant %+v", got, want)
	}
	if got[2].Fbc() != "fb.1.1772445600000.IwAR_m" || got[0].Fbc() != "" {
		t.Errorf("Fbc = %q %q", got[2].Fbc(), got[0].Fbc())
	}
	ids := ClickIDs(append(got, tp("gclid", "newer", thursday)))
	if ids["gclid"].Value != "newer" || ids["fbclid"].Value != "IwAR_m" || len(ids) != 3 {
		t.Errorf("ClickIDs = %v", ids)
	}
	ev.Context.Consent.AdUserData = destinations.Denied
	if got := TouchpointsFromEvent(ev); got != nil {
		t.Errorf("without marketing consent: %v", got)
	}
}

func TestMoneyJSON(t *testing.T) {
	for m, want := range map[Money]string{124_500_000: "124.5", 0: "0", 1: "0.000001", 33_333_334: "33.333334", -5_000_000: "-5", 999_999_999_990_000: "999999999.99"} {
		b, _ := json.Marshal(m)
		if string(b) != want || m.String() != want {
			t.Errorf("Money(%d) = %s / %s, want %s", int64(m), b, m, want)
		}
	}
}

func TestAddClickIDs(t *testing.T) {
	tps := []Touchpoint{tp("fbclid", "f_old", monday), tp("fbclid", "f_new", wednesday), tp("gclid", "g", monday), tp("ttclid", "t_ledger", monday)}
	ev := &destinations.Event{Context: destinations.Context{ClickIDs: map[string]destinations.ClickID{"ttclid": {Value: "t_own", At: 1}}}}
	AddClickIDs(ev, tps)
	if ev.UserData.Fbc != "fb.1."+strconv.FormatInt(wednesday.UnixMilli(), 10)+".f_new" || ev.Context.ClickIDs["gclid"].Value != "g" ||
		ev.Context.ClickIDs["ttclid"].Value != "t_own" || len(ev.Context.ClickIDs) != 2 {
		t.Errorf("event = %+v %+v", ev.UserData, ev.Context.ClickIDs)
	}
	ev = &destinations.Event{UserData: destinations.UserData{Fbc: "fb.1.1.own"}}
	AddClickIDs(ev, tps)
	if ev.UserData.Fbc != "fb.1.1.own" {
		t.Errorf("fbc = %q", ev.UserData.Fbc)
	}
}
