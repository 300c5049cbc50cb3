package tiktok

import (
	"regexp"
	"time"

	"github.com/tagway/tagway/destinations"
)

// Type is the destination type name in the configuration.
const Type = "tiktok"

// Spec describes the tiktok destination type to the registry.
func Spec() destinations.Spec {
	return destinations.Spec{
		Type:       Type,
		New:        New,
		Secrets:    []string{"access_token"},
		APIURLs:    map[string]string{APIURLSetting: APIURLEnv},
		AdPlatform: true,
		// TikTok requires no customer information on an event: one that
		// kept only its user agent is taken, and counted without a match.
		Anonymous: true,
		MaxAge:    func(destinations.Event) time.Duration { return MaxAge },
		// TikTok documents no per-event rule beyond the names, which
		// EventName applies, and the age limit, which MaxAge applies.
		Check:     nil,
		EventName: EventName,
		Hashes:    destinations.HashPhoneE164,
	}
}

// customEventPattern is the form of a custom event name tagway passes on.
var customEventPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,49}$`)

// EventName gives TikTok's name for an event name. PageView becomes
// Pageview, the pixel's name for its page event. The other canonical
// names are TikTok's standard names already (TikTok also still takes its
// older CompletePayment, PlaceAnOrder, SubmitForm and ClickButton), and
// TikTok takes custom events: any name of letters, digits and '_' (a
// letter first, at most 50) goes as it is, as tw.js hands it to ttq.track.
// Any other name has no TikTok event.
func EventName(name string) (string, bool) {
	if name == "PageView" {
		return "Pageview", true
	}
	if customEventPattern.MatchString(name) {
		return name, true
	}
	return "", false
}
