package pii

import (
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"testing"

	"github.com/tagway/tagway/destinations"
)

func hexSHA(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// The platforms' own examples: Google's enhanced-conversions guides
// normalize "+1 (415) 555-0100" to "+14155550100" and remove the dots of
// a Gmail local part; TikTok and Reddit hash the phone in E.164 with "+".
func TestAddVariants(t *testing.T) {
	tests := []struct {
		name string
		raw  RawUserData
		want destinations.HashVariant
		ph   []string
		em   []string
	}{
		{
			name: "US phone",
			raw:  RawUserData{Phone: {"+1 (415) 555-0100"}},
			want: destinations.HashPhoneE164,
			ph:   []string{hexSHA("+14155550100")},
		},
		{
			name: "international prefix and trunk zero",
			raw:  RawUserData{Phone: {"0044 20 7946 0958"}},
			want: destinations.HashPhoneE164,
			ph:   []string{hexSHA("+442079460958")},
		},
		{
			name: "gmail dots removed, case and spaces normalized",
			raw:  RawUserData{Email: {" Jane.Doe@Gmail.com "}},
			want: destinations.HashEmailGoogle,
			em:   []string{hexSHA("janedoe@gmail.com")},
		},
		{
			name: "googlemail too",
			raw:  RawUserData{Email: {"j.o.e@googlemail.com"}},
			want: destinations.HashEmailGoogle,
			em:   []string{hexSHA("joe@googlemail.com")},
		},
		{
			name: "other domains keep their dots",
			raw:  RawUserData{Email: {"jane.doe@example.com"}},
			want: destinations.HashEmailGoogle,
			em:   []string{hexSHA("jane.doe@example.com")},
		},
		{
			name: "digests given by the sender add nothing",
			raw:  RawUserData{Email: {hexSHA("a@b.co")}, Phone: {hexSHA("123")}},
			want: destinations.HashEmailGoogle | destinations.HashPhoneE164,
		},
		{
			name: "only what is asked",
			raw:  RawUserData{Email: {"jane.doe@gmail.com"}, Phone: {"+1 415 555 0100"}},
			want: destinations.HashPhoneE164,
			ph:   []string{hexSHA("+14155550100")},
		},
		{
			name: "duplicates once, bad values skipped",
			raw:  RawUserData{Phone: {"+1 415 555 0100", "1-415-555-0100", "12"}},
			want: destinations.HashPhoneE164,
			ph:   []string{hexSHA("+14155550100")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var u destinations.UserData
			AddVariants(&u, tt.raw, tt.want)
			if !reflect.DeepEqual(u.PhE164, tt.ph) {
				t.Errorf("PhE164 = %v, want %v", u.PhE164, tt.ph)
			}
			if !reflect.DeepEqual(u.EmGoogle, tt.em) {
				t.Errorf("EmGoogle = %v, want %v", u.EmGoogle, tt.em)
			}
		})
	}
}
