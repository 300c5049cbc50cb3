package pii

import (
	"slices"
	"strings"

	"github.com/tagway/tagway/destinations"
)

// AddVariants fills the digest variants of u that want asks for
// (destinations.Spec.Hashes) from the raw user_data it was hashed from:
// for each raw phone number, the SHA-256 of its E.164 form with the "+"
// (PhE164); for each raw e-mail address, the SHA-256 of the address with
// the dots of a gmail.com or googlemail.com local part removed (EmGoogle).
// A value the sender gave as a digest, or that does not normalize, adds
// nothing: the adapter then falls back to Ph and Em.
func AddVariants(u *destinations.UserData, raw RawUserData, want destinations.HashVariant) {
	if want&destinations.HashPhoneE164 != 0 {
		for _, v := range raw[Phone] {
			if n, err := NormalizePhone(v); err == nil && !IsSHA256(jsTrim(v)) {
				u.PhE164 = appendNew(u.PhE164, sha256Hex(E164(n)))
			}
		}
	}
	if want&destinations.HashEmailGoogle != 0 {
		for _, v := range raw[Email] {
			if n, err := NormalizeEmail(v); err == nil && !IsSHA256(jsTrim(v)) {
				u.EmGoogle = appendNew(u.EmGoogle, sha256Hex(GoogleEmail(n)))
			}
		}
	}
}

// E164 is a phone number NormalizePhone kept (its digits, country code
// first) in E.164 form: "+" and the digits.
func E164(normalized string) string { return "+" + normalized }

// GoogleEmail is an address NormalizeEmail kept, as Google normalizes it
// before hashing: the dots of the local part of a gmail.com or
// googlemail.com address removed ("jane.doe@gmail.com" → "janedoe@gmail.com");
// other addresses unchanged.
func GoogleEmail(normalized string) string {
	local, domain, ok := strings.Cut(normalized, "@")
	if !ok || domain != "gmail.com" && domain != "googlemail.com" {
		return normalized
	}
	return strings.ReplaceAll(local, ".", "") + "@" + domain
}

func appendNew(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}
