package destinations

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"
)

// Destination delivers batches of canonical events to one configured account
// on one ad platform (a Meta pixel, a TikTok pixel...).
//
// Deliver never sleeps, retries or starts goroutines: the queue owns time. It
// returns exactly one error per event, in order: nil when the platform
// accepted the event, otherwise an error that Classify reads (a *Error, or
// anything else, which counts as retryable).
type Destination interface {
	// MaxBatch is the most events Deliver accepts in one call.
	MaxBatch() int
	// Deliver sends batch and reports one outcome per event.
	Deliver(ctx context.Context, batch []Event) []error
}

// AgeLimiter is implemented by destinations whose platform refuses events
// older than some age (Meta: 7 days). The queue dead-letters events that aged
// past it instead of sending them.
type AgeLimiter interface {
	MaxEventAge(e Event) time.Duration
}

// AnonymousAcceptor is implemented by destinations that say whether their
// platform takes an anonymous event: one the gateway stripped of every
// identifier because the visitor gave no marketing consent on a site whose
// consent_denied_mode is "anonymous" (Context.Anonymous; only the user
// agent is left). Routing withholds anonymous events from a destination
// whose AcceptsAnonymous is false (Meta refuses them: too little customer
// information, error 2804050). A destination that does not implement it
// receives them.
type AnonymousAcceptor interface {
	AcceptsAnonymous() bool
}

// IncompleteAcceptor is implemented by destinations that say whether their
// platform takes an event the gateway marked incomplete (Context.Incomplete:
// a browser event lacking what Meta's rules for server events require, kept
// for the platforms that take it). Routing withholds such an event from a
// destination whose AcceptsIncomplete is false, unless the route's rewriting
// supplied what was missing. A destination that does not implement it
// receives them.
type IncompleteAcceptor interface {
	AcceptsIncomplete() bool
}

// Deps are the injected collaborators every adapter gets.
type Deps struct {
	HTTP   *http.Client
	Logger *slog.Logger
	Now    func() time.Time
	// Record, when set, receives each request body a destination in dry-run
	// mode would have sent (with secrets removed), for logs and the debugger.
	Record func(body []byte)
}

// Factory builds a Destination from its JSON settings. Settings are decoded
// strictly: unknown fields are an error. Validation problems are joined.
type Factory func(settings json.RawMessage, deps Deps) (Destination, error)

// Registry maps a destination type name ("meta", "tiktok"...) to its factory.
// main builds it as a literal; there is no global registration.
type Registry map[string]Factory
