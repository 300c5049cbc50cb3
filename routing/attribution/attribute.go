package attribution

import (
	"cmp"
	"errors"
	"math/bits"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Touchpoint is one ad click of a visitor: the click id the visitor landed
// with, when it was first captured, where, and the visitor's consent then.
type Touchpoint struct {
	Platform   Platform  `json:"platform"`
	Type       string    `json:"click_id_type"`
	ClickID    string    `json:"click_id"`
	CapturedAt time.Time `json:"captured_at"`
	// LandingURL is the page the click landed on, without its query.
	LandingURL string               `json:"landing_url,omitempty"`
	Consent    destinations.Consent `json:"consent,omitzero"`
}

const (
	// maxClickIDLen bounds a click id, as the gateway does.
	maxClickIDLen = 256
	// maxLandingURLLen bounds a touchpoint's landing URL; a longer one is
	// left out.
	maxLandingURLLen = 2048
)

// NewTouchpoint returns the touchpoint of click id v of type t captured at
// at (Unix ms), its platform set; ok is false for an unknown type or a
// click id that is empty, over 256 bytes or not printable ASCII.
func NewTouchpoint(t, v string, at int64) (Touchpoint, bool) {
	c, ok := lookup(t)
	if !ok || !validClickID(v) || at <= 0 {
		return Touchpoint{}, false
	}
	return Touchpoint{Platform: c.platform, Type: t, ClickID: v, CapturedAt: time.UnixMilli(at).UTC()}, true
}

func validClickID(v string) bool { return token(v, maxClickIDLen) }

// token reports whether s is 1 to n printable ASCII characters without
// spaces.
func token(s string, n int) bool {
	if s == "" || len(s) > n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// landingPage returns a URL without its query, fragment and credentials
// (a query may hold personal data); "" when it does not parse or is too
// long.
func landingPage(raw string) string {
	if raw == "" || len(raw) > maxLandingURLLen {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// TouchpointsFromEvent returns the touchpoints an event carries: its
// context's click ids, and the fbclid of its fbc (fb.1.<Unix ms>.<fbclid>),
// each with the event's consent; a click captured within a minute of the
// event's receipt gets the event's page as landing page. Events without
// marketing consent, and anonymous ones, carry none.
func TouchpointsFromEvent(ev *destinations.Event) []Touchpoint {
	c := &ev.Context
	if !c.Consent.Marketing() || c.Anonymous {
		return nil
	}
	var out []Touchpoint
	add := func(t, v string, at int64) {
		tp, ok := NewTouchpoint(t, v, at)
		if !ok {
			return
		}
		if d := c.ReceivedAt - at; d >= 0 && d <= time.Minute.Milliseconds() {
			tp.LandingURL = landingPage(ev.EventSourceURL)
		}
		tp.Consent = c.Consent
		out = append(out, tp)
	}
	for _, t := range ClickIDTypes() {
		if id, ok := c.ClickIDs[t]; ok {
			add(t, id.Value, id.At)
		}
	}
	if at, fbclid, ok := ParseFbc(ev.UserData.Fbc); ok {
		add("fbclid", fbclid, at)
	}
	return out
}

// ParseFbc reads a _fbc value, fb.<index>.<Unix ms>.<fbclid>[.<appendix>].
func ParseFbc(fbc string) (at int64, fbclid string, ok bool) {
	parts := strings.SplitN(fbc, ".", 4)
	if len(parts) != 4 || parts[0] != "fb" {
		return 0, "", false
	}
	at, err := strconv.ParseInt(parts[2], 10, 64)
	fbclid, _, _ = strings.Cut(parts[3], ".")
	if err != nil || at <= 0 || !validClickID(fbclid) {
		return 0, "", false
	}
	return at, fbclid, true
}

// Fbc returns the _fbc value of a touchpoint of type fbclid,
// fb.1.<Unix ms>.<fbclid>; "" for other types.
func (tp Touchpoint) Fbc() string {
	if tp.Type != "fbclid" {
		return ""
	}
	return "fb.1." + strconv.FormatInt(tp.CapturedAt.UnixMilli(), 10) + "." + tp.ClickID
}

// ClickIDs returns the most recent click id of each type among tps, in the
// form of an event's context (destinations.Context.ClickIDs), fbclid
// included.
func ClickIDs(tps []Touchpoint) map[string]destinations.ClickID {
	var out map[string]destinations.ClickID
	for _, tp := range tps {
		if old, ok := out[tp.Type]; ok && old.At >= tp.CapturedAt.UnixMilli() {
			continue
		}
		if out == nil {
			out = map[string]destinations.ClickID{}
		}
		out[tp.Type] = destinations.ClickID{Value: tp.ClickID, At: tp.CapturedAt.UnixMilli()}
	}
	return out
}

// AddClickIDs adds to an event the click ids of touchpoints it lacks: the
// most recent of each type to its context's click ids, and the most recent
// fbclid as its fbc (fb.1.<Unix ms>.<fbclid>) when it has none. What the
// event carries already wins.
func AddClickIDs(ev *destinations.Event, tps []Touchpoint) {
	for t, id := range ClickIDs(tps) {
		if t == "fbclid" {
			if ev.UserData.Fbc == "" {
				ev.UserData.Fbc = Touchpoint{Type: t, ClickID: id.Value, CapturedAt: time.UnixMilli(id.At)}.Fbc()
			}
			continue
		}
		if _, ok := ev.Context.ClickIDs[t]; ok {
			continue
		}
		if ev.Context.ClickIDs == nil {
			ev.Context.ClickIDs = map[string]destinations.ClickID{}
		}
		ev.Context.ClickIDs[t] = id
	}
}

// Click is a click credited in an attribution: its platform, type and
// capture time (the click id itself stays in the ledger).
type Click struct {
	Platform   Platform  `json:"platform"`
	Type       string    `json:"click_id_type"`
	CapturedAt time.Time `json:"captured_at"`
}

// MaxOrderClicks is the most valid clicks an attribution keeps, the most
// recent ones.
const MaxOrderClicks = 64

// Attribution is how one order is credited to the platforms.
type Attribution struct {
	// Primary is the most recent valid click before the order; nil when
	// the order has none (direct / unknown).
	Primary *Click `json:"primary"`
	// Assists are the other platforms with a valid click, each its most
	// recent one, most recent first.
	Assists []Click `json:"assists"`
	// Clicks are every valid click, oldest first (at most
	// MaxOrderClicks), the ledger the other models read.
	Clicks []Click `json:"clicks"`
}

// Attribute credits an order created at createdAt from the touchpoints
// linked to it. A click counts when it was captured at or before
// createdAt and no longer before it than its type's window; windows are
// measured from createdAt, never from when the order was reported. A click
// id seen more than once counts once, at its first capture.
func Attribute(createdAt time.Time, tps []Touchpoint, w Windows) Attribution {
	type key struct{ t, v string }
	first := map[key]Touchpoint{}
	for _, tp := range tps {
		c, ok := lookup(tp.Type)
		if !ok || tp.CapturedAt.After(createdAt) || createdAt.Sub(tp.CapturedAt) > w.Of(tp.Type) {
			continue
		}
		tp.Platform = c.platform
		k := key{tp.Type, tp.ClickID}
		if old, ok := first[k]; !ok || tp.CapturedAt.Before(old.CapturedAt) {
			first[k] = tp
		}
	}
	if len(first) == 0 {
		return fromClicks(nil)
	}
	valid := make([]Touchpoint, 0, len(first))
	for _, tp := range first {
		valid = append(valid, tp)
	}
	slices.SortFunc(valid, func(x, y Touchpoint) int {
		return cmp.Or(x.CapturedAt.Compare(y.CapturedAt), typeIndex(x.Type)-typeIndex(y.Type), strings.Compare(x.ClickID, y.ClickID))
	})
	if len(valid) > MaxOrderClicks {
		valid = valid[len(valid)-MaxOrderClicks:]
	}
	clicks := make([]Click, len(valid))
	for i, tp := range valid {
		clicks[i] = Click{Platform: tp.Platform, Type: tp.Type, CapturedAt: tp.CapturedAt.UTC()}
	}
	return fromClicks(clicks)
}

// fromClicks returns the attribution of valid clicks, oldest first: the
// last is primary, the most recent click of each other platform an assist.
func fromClicks(clicks []Click) Attribution {
	a := Attribution{Assists: []Click{}, Clicks: clicks}
	if a.Clicks == nil {
		a.Clicks = []Click{}
	}
	if len(clicks) == 0 {
		return a
	}
	primary := clicks[len(clicks)-1]
	a.Primary = &primary
	seen := map[Platform]bool{primary.Platform: true}
	for i := len(clicks) - 1; i >= 0; i-- {
		if c := clicks[i]; !seen[c.Platform] {
			seen[c.Platform] = true
			a.Assists = append(a.Assists, c)
		}
	}
	return a
}

func typeIndex(t string) int {
	for i, c := range clickTypes {
		if c.name == t {
			return i
		}
	}
	return len(clickTypes)
}

// Model is a way of crediting an order to the platforms of its clicks.
type Model string

// The models. Last click is the primary one; the others are read-only
// views of the same clicks.
const (
	// LastClick credits the whole order to the most recent valid click.
	LastClick Model = "last_click"
	// FirstClick credits it to the earliest valid click.
	FirstClick Model = "first_click"
	// Linear splits it evenly among the valid clicks.
	Linear Model = "linear"
	// PositionBased gives 40% to the first click, 40% to the last and
	// splits 20% among those between (two clicks: half each).
	PositionBased Model = "position_based"
)

// ParseModel reads a model name; "" is LastClick.
func ParseModel(s string) (Model, error) {
	switch m := Model(s); m {
	case "":
		return LastClick, nil
	case LastClick, FirstClick, Linear, PositionBased:
		return m, nil
	}
	return "", errors.New("model must be last_click, first_click, linear or position_based")
}

// weights returns the model's integer weight of each of n clicks, oldest
// first.
func (m Model) weights(n int) []int64 {
	w := make([]int64, n)
	switch {
	case n == 0:
	case m == FirstClick:
		w[0] = 1
	case m == Linear || (m == PositionBased && n <= 2):
		for i := range w {
			w[i] = 1
		}
	case m == PositionBased:
		// 40% : 20%/(n-2) each : 40%, in whole numbers.
		for i := range w {
			w[i] = 1
		}
		w[0], w[n-1] = 2*int64(n-2), 2*int64(n-2)
	default:
		w[n-1] = 1
	}
	return w
}

// Split divides revenue (in millionths) among the platforms of the clicks
// by model m. The parts add up to revenue exactly when there is a click
// (largest remainders, ties to the later click), and to nothing when
// there is none. orders is each platform's share of the order, adding up
// to 1.
func (a Attribution) Split(revenue int64, m Model) (parts map[Platform]int64, orders map[Platform]float64) {
	n := len(a.Clicks)
	if n == 0 {
		return nil, nil
	}
	w := m.weights(n)
	var total int64
	for _, x := range w {
		total += x
	}
	share := make([]int64, n)
	rem := make([]int64, n)
	var given int64
	revenue = max(revenue, 0)
	for i, x := range w {
		share[i], rem[i] = mulDivRem(revenue, x, total)
		given += share[i]
	}
	left := revenue - given
	order := make([]int, n)
	for i := range order {
		order[i] = n - 1 - i
	}
	slices.SortStableFunc(order, func(i, j int) int { return cmp.Compare(rem[j], rem[i]) })
	for _, i := range order {
		if left <= 0 {
			break
		}
		if w[i] > 0 {
			share[i]++
			left--
		}
	}
	parts, orders = map[Platform]int64{}, map[Platform]float64{}
	for i, c := range a.Clicks {
		if w[i] == 0 {
			continue
		}
		parts[c.Platform] += share[i]
		orders[c.Platform] += float64(w[i]) / float64(total)
	}
	return parts, orders
}

// mulDivRem returns the quotient and remainder of v*x/total, for v >= 0
// and 0 <= x <= total, without overflow.
func mulDivRem(v, x, total int64) (q, r int64) {
	hi, lo := bits.Mul64(uint64(v), uint64(x))
	uq, ur := bits.Div64(hi, lo, uint64(total))
	return int64(uq), int64(ur)
}
