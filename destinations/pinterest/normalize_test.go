package pinterest

import (
	"testing"

	"github.com/tagway/tagway/destinations/pii"
)

// TestNormalizationOnPinterestRules hashes raw values the way ingest does
// for every destination (Meta's normalization, package pii) and checks the
// digest against the form Pinterest's API reference describes for each
// user_data field: Meta's digests are Pinterest's, so the spec asks for no
// digest variant.
func TestNormalizationOnPinterestRules(t *testing.T) {
	cases := []struct {
		field, raw, pinterestForm, rule string
	}{
		{pii.Email, "  Jane.Doe@Example.COM ", "jane.doe@example.com", "em: the lowercase e-mail address"},
		{pii.Phone, "+1 (650) 555-1212", "16505551212", "ph: digits only, country code first, no symbols or spaces"},
		{pii.Phone, "0049 30 1234567", "49301234567", "ph: no leading zeros"},
		{pii.FirstName, "Jane", "jane", "fn: lowercase"},
		{pii.LastName, "DOE", "doe", "ln: lowercase"},
		{pii.Gender, "Female", "f", `ge: "f" or "m"`},
		{pii.DateOfBirth, "1997-12-26", "19971226", "db: year, month and day"},
		{pii.City, "Menlo Park", "menlopark", "ct: lowercase, no spaces or punctuation"},
		{pii.State, "CA", "ca", "st: two-letter code, lowercase"},
		{pii.State, "California", "ca", "st: two-letter code, lowercase"},
		{pii.Zip, "94025-1234", "94025", "zp: digits (US ZIP)"},
		{pii.Country, "US", "us", "country: ISO 3166 alpha-2, lowercase"},
	}
	for _, tc := range cases {
		got, err := pii.Hash(tc.field, tc.raw)
		if err != nil {
			t.Errorf("%s %q: %v", tc.field, tc.raw, err)
			continue
		}
		if want := sha(tc.pinterestForm); got != want {
			t.Errorf("%s: %q hashed to %s, want sha256(%q)", tc.rule, tc.raw, got, tc.pinterestForm)
		}
	}
}

// TestPinterestExampleDigests pins what the reference's own example
// digests are of: the country example is the digest of "US", uppercase,
// and the gender example the digest of "male", both against the
// reference's prose ("in lowercase"; "f" or "m"). tagway follows the prose
// (README).
func TestPinterestExampleDigests(t *testing.T) {
	if sha("US") != "9b202ecbc6d45c6d8901d989a918878397a3eb9d00e8f48022fc051b19d21a1d" {
		t.Error("the country example is not sha256(\"US\")")
	}
	if sha("male") != "0d248e82c62c9386878327d491c762a002152d42ab2c391a31c44d9f62675ddf" {
		t.Error("the gender example is not sha256(\"male\")")
	}
}
