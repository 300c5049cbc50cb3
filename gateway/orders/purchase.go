package orders

import (
	"maps"
	"strconv"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Purchase returns the order as a canonical Purchase event of site,
// received at receivedAt: event_id is the order id (the id the thank-you
// page's browser Purchase uses, so platforms count the order once),
// event_time the order's creation, value its total, with its currency,
// contents and customer digests, the buyer's IP address and user agent,
// Meta's cookies and the click ids the order itself carries (fbclid as
// fbc; the landing URL's click ids, captured at the landing or else at the
// order, where the attributes have none). action_source is website,
// physical_store for Shopify POS, app for Shopify's mobile channels, other
// for orders a merchant entered.
//
// Consent is left unset: the caller sets the visitor's last recorded
// consent, or the site's default, and adds the click ids of the visitor's
// ledger.
func (o *Order) Purchase(site string, receivedAt time.Time) destinations.Event {
	value := o.Total.Float()
	ev := destinations.Event{
		EventName:    "Purchase",
		EventTime:    o.CreatedAt.Unix(),
		EventID:      o.ID,
		ActionSource: o.actionSource(),
		CustomData: &destinations.CustomData{
			Value:       &value,
			Currency:    o.Currency,
			OrderID:     o.ID,
			ContentType: "product",
		},
		Context: destinations.Context{
			SiteID:     site,
			ReceivedAt: receivedAt.UnixMilli(),
			Source:     "server",
			VisitorID:  o.Link.VisitorID,
		},
	}
	// UserData's lists are shared with the order; the event gets its own.
	ev.UserData = cloneUserData(o.UserData)
	ev.UserData.Fbp, ev.UserData.Fbc = o.Link.Fbp, o.Link.Fbc

	items := 0
	for _, li := range o.LineItems {
		if li.ID == "" {
			continue
		}
		q, p := li.Quantity, li.Price.Float()
		ev.CustomData.Contents = append(ev.CustomData.Contents, destinations.Content{ID: li.ID, Quantity: &q, ItemPrice: &p})
		ev.CustomData.ContentIDs = append(ev.CustomData.ContentIDs, li.ID)
		items += q
	}
	if items > 0 {
		ev.CustomData.NumItems = &items
	}

	clicks := maps.Clone(o.Link.ClickIDs)
	landedAt := o.Link.LandingAt
	if landedAt.IsZero() {
		landedAt = o.CreatedAt
	}
	for name, v := range o.Link.LandingClickIDs {
		if _, ok := clicks[name]; !ok {
			if clicks == nil {
				clicks = map[string]destinations.ClickID{}
			}
			clicks[name] = destinations.ClickID{Value: v, At: landedAt.UnixMilli()}
		}
	}
	if fb, ok := clicks["fbclid"]; ok {
		if ev.UserData.Fbc == "" {
			ev.UserData.Fbc = "fb.1." + strconv.FormatInt(fb.At, 10) + "." + fb.Value
		}
		delete(clicks, "fbclid")
	}
	if len(clicks) > 0 {
		ev.Context.ClickIDs = clicks
	}
	return ev
}

// actionSource maps the order's channel to Meta's action_source.
func (o *Order) actionSource() string {
	switch o.Channel {
	case "pos":
		return "physical_store"
	case "iphone", "android":
		return "app"
	case "shopify_draft_order", "admin":
		return "other"
	}
	return "website"
}

func cloneUserData(u destinations.UserData) destinations.UserData {
	for _, l := range []*[]string{&u.Em, &u.Ph, &u.Fn, &u.Ln, &u.Ge, &u.Db, &u.Ct, &u.St, &u.Zp, &u.Country, &u.ExternalID} {
		if *l != nil {
			*l = append([]string(nil), (*l)...)
		}
	}
	return u
}
