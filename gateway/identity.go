package gateway

import (
	"context"

	"github.com/tagway/tagway/destinations"
)

// IdentityStore keeps the hashed identifiers seen for each visitor and adds
// them to the visitor's later events that lack them (routing.IdentityStore
// on Redis). visitors maps a visitor key (the _fbp value, else tagway's
// visitor id) to the user data of that visitor's events in one request;
// Enrich both remembers their hashed identifiers and fills in the missing
// ones, in one round trip.
type IdentityStore interface {
	Enrich(ctx context.Context, siteID string, visitors map[string][]*destinations.UserData) error
}

// enrichIdentity runs the identity store over the events about to be
// queued. Only events with marketing consent take part, in either
// direction: without it nothing is stored and nothing is added. Events
// without a visitor key (no _fbp, no visitor id) are left alone. A failure
// is logged and the events go out as they are: enrichment only improves
// matching, it must never lose an event.
func (g *Gateway) enrichIdentity(ctx context.Context, siteID string, events []destinations.Event) {
	if g.opts.Identity == nil {
		return
	}
	visitors := map[string][]*destinations.UserData{}
	for i := range events {
		ev := &events[i]
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
		visitors[key] = append(visitors[key], &ev.UserData)
	}
	if len(visitors) == 0 {
		return
	}
	if err := g.opts.Identity.Enrich(ctx, siteID, visitors); err != nil {
		g.log.Warn("identity enrichment skipped", "site", siteID, "err", err)
	}
}
