package reddit

import (
	"testing"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/pii"
)

// TestNormalizationOnRedditRules hashes raw values the way ingest does for
// an event routed to Reddit (Spec.Hashes) and checks each digest the
// adapter sends against the form Reddit documents: the phone in E.164 with
// its "+" (Reddit's own example: +55981556677), the e-mail trimmed and
// lowercased.
func TestNormalizationOnRedditRules(t *testing.T) {
	raw := pii.RawUserData{
		pii.Phone: {"+55 98 1556-677"},
		pii.Email: {" Jane.Doe@Example.com"},
	}
	u, err := pii.HashUserData(pii.RawUserData{pii.Phone: raw[pii.Phone], pii.Email: raw[pii.Email]}, fixedNow())
	if err != nil {
		t.Fatal(err)
	}
	pii.AddVariants(&u, raw, Spec().Hashes)
	e := pageView("n")
	e.UserData = u
	w := toUser(&e)
	if w.PhoneNumber != sha("+55981556677") {
		t.Errorf("phone_number %s, want sha256(\"+55981556677\")", w.PhoneNumber)
	}
	if w.Email != sha("jane.doe@example.com") {
		t.Errorf("email %s, want sha256(\"jane.doe@example.com\")", w.Email)
	}
	if Spec().Hashes&destinations.HashEmailGoogle != 0 {
		t.Error("Reddit asks for Google's e-mail variant")
	}
}
