package serverevent

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// TestFromKeepsEveryCanonicalField: every field of the canonical event but
// tagway's context goes out under its own name, with the digest variants
// left out of user_data.
func TestFromKeepsEveryCanonicalField(t *testing.T) {
	one, state := 1, 1000
	e := destinations.Event{
		EventName: "Purchase", EventTime: 1764331200, EventID: "e1", EventSourceURL: "https://shop.example/",
		ReferrerURL: "https://shop.example/cart", ActionSource: "website", OptOut: true,
		UserData: destinations.UserData{Em: []string{"em"}, Ph: []string{"ph"}, PhE164: []string{"e164"},
			EmGoogle: []string{"g"}, ClientUserAgent: "UA"},
		CustomData:            &destinations.CustomData{Currency: "EUR"},
		DataProcessingOptions: []string{"LDU"}, DataProcessingOptionsCountry: &one, DataProcessingOptionsState: &state,
		Context: destinations.Context{SiteID: "shop"},
	}
	b, err := json.Marshal(From(&e))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	typ := reflect.TypeFor[destinations.Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if _, ok := got[name]; !ok && name != "tw" {
			t.Errorf("%s is not sent", name)
		}
	}
	if _, ok := got["tw"]; ok {
		t.Error("tagway's context is sent")
	}
	ud := got["user_data"].(map[string]any)
	if _, ok := ud["ph_e164"]; ok || ud["em_google"] != nil || ud["em"] == nil || ud["ph"] == nil {
		t.Errorf("user_data %v", ud)
	}
	if len(e.UserData.PhE164) != 1 {
		t.Error("From changed the event")
	}
}
