package attribution

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Platform is an ad platform a click id belongs to.
type Platform string

// The platforms of the click ids tagway keeps.
const (
	Meta      Platform = "meta"
	Google    Platform = "google"
	Microsoft Platform = "microsoft"
	TikTok    Platform = "tiktok"
	Snap      Platform = "snap"
	Pinterest Platform = "pinterest"
	Reddit    Platform = "reddit"
	LinkedIn  Platform = "linkedin"
)

const day = 24 * time.Hour

// clickType is one click id type: its URL parameter, platform and default
// attribution window (the platform's own default click window).
type clickType struct {
	name     string
	platform Platform
	window   time.Duration
}

// clickTypes are the click id types, in a fixed order.
var clickTypes = [...]clickType{
	{"fbclid", Meta, 28 * day},
	{"gclid", Google, 90 * day},
	{"gbraid", Google, 90 * day},
	{"wbraid", Google, 90 * day},
	{"msclkid", Microsoft, 90 * day},
	{"ttclid", TikTok, 28 * day},
	{"ScCid", Snap, 28 * day},
	{"epik", Pinterest, 30 * day},
	{"rdt_cid", Reddit, 28 * day},
	{"li_fat_id", LinkedIn, 30 * day},
}

func lookup(t string) (clickType, bool) {
	for _, c := range clickTypes {
		if c.name == t {
			return c, true
		}
	}
	return clickType{}, false
}

// ClickIDTypes returns the click id types (URL parameter names) tagway
// attributes, in a fixed order.
func ClickIDTypes() []string {
	out := make([]string, len(clickTypes))
	for i, c := range clickTypes {
		out[i] = c.name
	}
	return out
}

// PlatformOf returns the platform of a click id type: fbclid is Meta's;
// gclid, gbraid and wbraid Google's; msclkid Microsoft's; ttclid TikTok's;
// ScCid Snap's; epik Pinterest's; rdt_cid Reddit's; li_fat_id LinkedIn's.
func PlatformOf(clickIDType string) (Platform, bool) {
	c, ok := lookup(clickIDType)
	return c.platform, ok
}

// MaxWindow bounds a configured attribution window.
const MaxWindow = 365 * day

// Windows are a site's attribution windows by click id type; a type not
// set takes its default (DefaultWindows). The zero value is the defaults.
type Windows map[string]time.Duration

// DefaultWindows returns the platforms' default click windows: fbclid 28
// days, gclid/gbraid/wbraid 90, msclkid 90, ttclid 28, ScCid 28, epik 30,
// rdt_cid 28, li_fat_id 30.
func DefaultWindows() Windows {
	w := make(Windows, len(clickTypes))
	for _, c := range clickTypes {
		w[c.name] = c.window
	}
	return w
}

// Of returns the window of click id type t; 0 for an unknown type.
func (w Windows) Of(t string) time.Duration {
	if d, ok := w[t]; ok {
		return d
	}
	c, _ := lookup(t)
	return c.window
}

// Longest returns the longest window of any type.
func (w Windows) Longest() time.Duration {
	var longest time.Duration
	for _, c := range clickTypes {
		longest = max(longest, w.Of(c.name))
	}
	return longest
}

// Validate reports every unknown type and every window outside 1 hour to
// MaxWindow, joined.
func (w Windows) Validate() error {
	var errs []error
	for _, t := range slices.Sorted(maps.Keys(w)) {
		if _, ok := lookup(t); !ok {
			errs = append(errs, fmt.Errorf("attribution window %q: unknown click id type (known: %v)", t, ClickIDTypes()))
			continue
		}
		if d := w[t]; d < time.Hour || d > MaxWindow {
			errs = append(errs, fmt.Errorf("attribution window %q: %v is outside 1h to %v", t, d, MaxWindow))
		}
	}
	return errors.Join(errs...)
}
