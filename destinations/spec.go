package destinations

import "time"

// Spec describes one destination type to the rest of tagway: how to build
// it, which of its settings are secrets or the operator's, what its platform
// takes, and how ingest must prepare events for it. Each adapter package
// offers its Spec; main lists them, explicitly, in the registry.
type Spec struct {
	// Type is the destination type name in the configuration ("meta",
	// "tiktok", "webhook").
	Type string
	// New builds a destination of this type from its JSON settings.
	New Factory
	// Secrets are the JSON names of the settings that are write-only
	// secrets: sealed at rest, never shown, never logged.
	Secrets []string
	// APIURLs maps each setting that holds a platform API base URL to the
	// environment variable the operator sets it with ("api_url" →
	// "TAGWAY_TIKTOK_API_URL"). Such settings are the operator's alone;
	// main reads the variables and hands the values to New in
	// Deps.APIURLs.
	APIURLs map[string]string
	// AdPlatform marks an advertising platform: identifiers go to it only
	// with marketing consent. A webhook to the store's own system is not
	// one.
	AdPlatform bool
	// Anonymous reports whether the platform takes an event stripped of
	// every identifier but the user agent (consent_denied_mode
	// anonymous).
	Anonymous bool
	// MaxAge is the age past which the platform refuses an event (zero:
	// no limit); the queue dead-letters an older event instead of sending
	// it. Nil means no limit.
	MaxAge func(e Event) time.Duration
	// Check reports why the platform would refuse e as it stands (nil: it
	// would take it). Ingest applies the checks of the destinations an
	// event is routed to. Nil checks nothing.
	Check func(e *Event) *Violation
	// EventName gives the platform's name for an event name: a canonical
	// one ("AddToCart"), or one a route's event_map already turned into
	// the platform's own ("CompletePayment"). False means the platform has
	// no such event: routing does not send it and counts it as skipped.
	// Nil sends every name as it is.
	EventName func(name string) (string, bool)
	// Hashes are the digest variants beyond Meta's that ingest computes,
	// from the raw values, for events routed to this platform.
	Hashes HashVariant
}

// Violation is a platform rule an event breaks: the field at fault
// (event-relative: "custom_data.currency") and why.
type Violation struct {
	Field  string
	Reason string
}

func (v *Violation) Error() string { return v.Field + ": " + v.Reason }

// HashVariant is a set of digest variants of UserData keys, for platforms
// that normalize a value differently from Meta before hashing it.
type HashVariant uint8

// The digest variants ingest can compute.
const (
	// HashPhoneE164 fills UserData.PhE164: the phone number in E.164 with
	// its "+" (TikTok, Google, Reddit).
	HashPhoneE164 HashVariant = 1 << iota
	// HashEmailGoogle fills UserData.EmGoogle: the address with the dots
	// of a gmail.com or googlemail.com local part removed (Google).
	HashEmailGoogle
)
