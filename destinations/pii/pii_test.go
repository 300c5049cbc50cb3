package pii

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const emptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// Meta's documented examples (Customer information parameters page).
func TestMetaDocumentedExamples(t *testing.T) {
	tests := []struct {
		field, in, norm, prefix, suffix string
	}{
		{Email, "John_Smith@gmail.com", "john_smith@gmail.com", "62a14e44", "0f62f"},
		{Email, "  John_Smith@Gmail.com ", "john_smith@gmail.com", "62a14e44", "0f62f"},
		{Phone, "+1 (650)555-1212", "16505551212", "e323ec62", "3176"},
		{Phone, "1(650)555-1212", "16505551212", "e323ec62", "3176"},
		{Phone, "001 650 555 1212", "16505551212", "e323ec62", "3176"},
	}
	for _, tt := range tests {
		n, err := NormalizeAt(tt.field, tt.in, testNow)
		if err != nil || n != tt.norm {
			t.Errorf("NormalizeAt(%s, %q) = %q, %v; want %q", tt.field, tt.in, n, err, tt.norm)
		}
		h, err := HashAt(tt.field, tt.in, testNow)
		if err != nil {
			t.Fatalf("HashAt(%s, %q): %v", tt.field, tt.in, err)
		}
		if !strings.HasPrefix(h, tt.prefix) || !strings.HasSuffix(h, tt.suffix) || len(h) != 64 {
			t.Errorf("HashAt(%s, %q) = %s; want %s…%s", tt.field, tt.in, h, tt.prefix, tt.suffix)
		}
		if h != sum(tt.norm) {
			t.Errorf("HashAt(%s, %q) is not sha256(%q)", tt.field, tt.in, tt.norm)
		}
	}
}

type normCase struct {
	in, want string
	err      error // nil: success; else errors.Is target
}

func runNorm(t *testing.T, name string, f func(string) (string, error), cases []normCase) {
	t.Helper()
	for _, c := range cases {
		got, err := f(c.in)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s(%q) = %q, %v; want error %v", name, c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s(%q) = %q, %v; want %q", name, c.in, got, err, c.want)
		}
	}
}

func TestNormalizeEmail(t *testing.T) {
	runNorm(t, "NormalizeEmail", NormalizeEmail, []normCase{
		{in: "Jane@Example.com", want: "jane@example.com"},
		{in: "\t jane.doe+tag@sub.example.co.uk\n", want: "jane.doe+tag@sub.example.co.uk"},
		{in: "ÉLODIE@exemple.fr", err: ErrInvalid},               // non-ASCII: the SDK's validator refuses it
		{in: "\ufeffuser@example.com", want: "user@example.com"}, // JavaScript's trim removes a BOM
		{in: "user@xn--80ak6aa92e.com", want: "user@xn--80ak6aa92e.com"},
		{in: "", err: ErrEmpty},
		{in: "   ", err: ErrEmpty},
		{in: "jane", err: ErrInvalid},
		{in: "jane@", err: ErrInvalid},
		{in: "@example.com", err: ErrInvalid},
		{in: "jane@example", err: ErrInvalid},
		{in: "jane@@example.com", err: ErrInvalid},
		{in: "ja ne@example.com", err: ErrInvalid},
		{in: "jane@exa mple.com", err: ErrInvalid},
		{in: "jane@example..com", err: ErrInvalid},
		{in: "jane.@example.com", err: ErrInvalid},
		{in: "jane@-example.com", err: ErrInvalid},
		{in: "jane@example.c", err: ErrInvalid},
		{in: "jane@example.123", err: ErrInvalid},
		{in: strings.Repeat("a", 65) + "@example.com", err: ErrInvalid},
		{in: "<jane@example.com>", err: ErrInvalid},
	})
}

func TestNormalizePhone(t *testing.T) {
	runNorm(t, "NormalizePhone", NormalizePhone, []normCase{
		{in: "+1 (650) 555-1212", want: "16505551212"},
		{in: "+1.650.555.1212", want: "16505551212"},
		{in: "0044 20 7946 0958", want: "442079460958"},
		{in: "+44 (0)20 7946 0958", want: "4402079460958"}, // the "(0)" stays: it is not leading
		{in: "tel: +49 30 1234567", want: "49301234567"},
		{in: "1234567", want: "1234567"},
		{in: "123456789012345", want: "123456789012345"},
		{in: "123456", err: ErrInvalid},
		{in: "0000123456", err: ErrInvalid},
		{in: "1234567890123456", want: "1234567890123456"},
		{in: "12345678901234567", err: ErrInvalid},
		{in: "+١٢٣٤٥٦٧٨", err: ErrInvalid},
		{in: "", err: ErrEmpty},
		{in: "000", err: ErrEmpty},
		{in: "call me", err: ErrEmpty},
	})
}

func TestNormalizeName(t *testing.T) {
	runNorm(t, "NormalizeName", NormalizeName, []normCase{
		{in: "John", want: "john"},
		{in: "  Mary Ann ", want: "mary ann"}, // inner spaces stay (docs, SDK)
		{in: "Anne-Marie", want: "annemarie"},
		{in: "O'Brien", want: "obrien"},
		{in: "Valéry", want: "valéry"},
		{in: "정", want: "정"},
		{in: "ΣΩΚΡΆΤΗΣ", want: "σωκράτης"}, // final sigma as JavaScript lowercases it
		{in: "ΟΔΥΣΣΕΑΣ Σ", want: "οδυσσεας σ"},
		{in: "Jo3hn!", want: "jo3hn"},
		{in: "O’Brien", want: "obrien"}, // Unicode punctuation too
		{in: "John 😀", want: "john"},
		{in: "İnci", want: "i\u0307nci"}, // as JavaScript lowercases it
		{in: "...", want: ""},
	})
}

func TestNormalizeGender(t *testing.T) {
	runNorm(t, "NormalizeGender", NormalizeGender, []normCase{
		{in: "f", want: "f"}, {in: "F", want: "f"}, {in: " Female ", want: "f"},
		{in: "m", want: "m"}, {in: "MALE", want: "m"},
		{in: "", err: ErrEmpty},
		{in: "x", err: ErrInvalid}, {in: "woman", err: ErrInvalid},
	})
}

func TestNormalizeDateOfBirth(t *testing.T) {
	f := func(v string) (string, error) { return NormalizeDateOfBirth(v, testNow) }
	runNorm(t, "NormalizeDateOfBirth", f, []normCase{
		{in: "19970216", want: "19970216"},
		{in: "1997-02-16", want: "19970216"},
		{in: "1997/2/16", want: "19970216"},
		{in: "1997.02.16", want: "19970216"},
		{in: "02/16/1997", want: "19970216"},
		{in: "2/16/1997", want: "19970216"}, // Meta's example
		{in: "02-16-1997", want: "19970216"},
		{in: " 2000-02-29 ", want: "20000229"},
		{in: "1900-01-01", want: "19000101"},
		{in: "2026-03-01", want: "20260301"},
		{in: "2026-03-02", err: ErrInvalid}, // after now
		{in: "1899-12-31", err: ErrInvalid},
		{in: "1997-02-30", err: ErrInvalid},
		{in: "1997-13-01", err: ErrInvalid},
		{in: "16/02/1997", want: "19970216"}, // 16 cannot be a month
		{in: "16.02.1997", want: "19970216"}, // dotted: day first
		{in: "02.16.1997", err: ErrInvalid},
		{in: "13/13/1997", err: ErrInvalid},
		{in: "1997-02/16", want: "19970216"},
		{in: "1997--02-16", err: ErrInvalid},
		{in: "97-02-16", err: ErrInvalid},
		{in: "1997216", err: ErrInvalid},
		{in: "February 16, 1997", err: ErrInvalid},
		{in: "", err: ErrEmpty},
	})
}

func TestNormalizeCity(t *testing.T) {
	runNorm(t, "NormalizeCity", NormalizeCity, []normCase{
		{in: "New York", want: "newyork"},
		{in: "St. Louis", want: "stlouis"},
		{in: "São Paulo", want: "sãopaulo"},
		{in: "Winston-Salem", want: "winstonsalem"},
		{in: "北京", want: "北京"},
		{in: "Paris 15", want: "paris15"},
	})
}

func TestNormalizeState(t *testing.T) {
	runNorm(t, "NormalizeState", NormalizeState, []normCase{
		{in: "CA", want: "ca"},
		{in: "California", want: "ca"},
		{in: "new york", want: "ny"},
		{in: "District of Columbia", want: "dc"},
		{in: "N.Y.", want: "ny"},
		{in: "Bavaria", want: "bavaria"},
		{in: "Île-de-France", want: "îledefrance"},
	})
}

func TestNormalizeZip(t *testing.T) {
	runNorm(t, "NormalizeZip", NormalizeZip, []normCase{
		{in: "94025", want: "94025"},
		{in: "94025-1234", want: "94025"},
		{in: "94025 1234", want: "94025"},
		{in: "M1 1AE", want: "m11ae"},
		{in: "SW1A 1AA", want: "sw1a1aa"},
		{in: "01310-100", want: "01310100"},
		{in: " 75001 ", want: "75001"},
		{in: "940251234", want: "94025"},
		{in: "94025\u00a01234", want: "94025"},
		{in: "94025-1234 ", want: "94025"},
	})
}

func TestNormalizeCountry(t *testing.T) {
	runNorm(t, "NormalizeCountry", NormalizeCountry, []normCase{
		{in: "US", want: "us"},
		{in: "us", want: "us"},
		{in: "United States", want: "us"},
		{in: "U.S.A.", want: "us"},
		{in: "UK", want: "gb"},
		{in: "Great Britain", want: "gb"},
		{in: "Deutschland", want: "de"},
		{in: "fr", want: "fr"},
		{in: "XK", want: "xk"},
		{in: "", err: ErrEmpty},
		{in: "zz", err: ErrInvalid},
		{in: "Atlantis", err: ErrInvalid},
		{in: "usa1", want: "us"},
		{in: "DEU", want: "de"},
		{in: "Côte d'Ivoire", want: "ci"},
		{in: "Korea", err: ErrInvalid}, // north or south?
	})
}

func TestNormalizeExternalID(t *testing.T) {
	runNorm(t, "NormalizeExternalID", NormalizeExternalID, []normCase{
		{in: " Cust-9 ", want: "cust-9"},
		{in: "ABC 123", want: "abc123"}, // as the parameter builder
	})
}

func TestHashAlreadyHashed(t *testing.T) {
	h := sum("jane@example.com")
	for _, field := range []string{Email, Phone, FirstName, Zip, Country, ExternalID} {
		for _, in := range []string{h, strings.ToUpper(h), "  " + h + " "} {
			got, err := HashAt(field, in, testNow)
			if err != nil || got != h {
				t.Errorf("HashAt(%s, %q) = %q, %v; want the digest passed through lowercased", field, in, got, err)
			}
		}
	}
}

func TestHashKeepsParamBuilderAppendix(t *testing.T) {
	h := sum("jane@example.com")
	for in, want := range map[string]string{
		h + ".AQQCAQMC":                   h + ".AQQCAQMC",
		" " + strings.ToUpper(h) + ".BA ": h + ".BA",
		h + ".AQQAAQMC":                   h + ".AQQAAQMC",
	} {
		if got, err := HashAt(FirstName, in, testNow); err != nil || got != want {
			t.Errorf("HashAt(fn, %q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Not an appendix: normalized and hashed like any text.
	for _, in := range []string{h + ".x", h + ".ZZ", h + ".AQQCAQM"} {
		if got, err := HashAt(FirstName, in, testNow); err != nil || strings.HasPrefix(got, h) {
			t.Errorf("HashAt(fn, %q) = %q, %v; want a new digest", in, got, err)
		}
	}
	if _, err := HashAt(Email, "5d41402abc4b2a76b9719d911017c592.AQQCAQMC", testNow); !errors.Is(err, ErrMD5) {
		t.Errorf("an MD5 with an appendix: %v; want ErrMD5", err)
	}
}

func TestHashRefusesMD5(t *testing.T) {
	md5 := "5d41402abc4b2a76b9719d911017c592"
	for _, field := range []string{Email, Phone, FirstName, LastName, City, Country} {
		if got, err := HashAt(field, strings.ToUpper(md5), testNow); !errors.Is(err, ErrMD5) {
			t.Errorf("HashAt(%s, md5) = %q, %v; want ErrMD5", field, got, err)
		}
	}
	// external_id is any advertiser id: a 32-hex id is hashed like any other.
	got, err := HashAt(ExternalID, md5, testNow)
	if err != nil || got != sum(md5) {
		t.Errorf("HashAt(external_id, 32-hex) = %q, %v; want sha256 of it", got, err)
	}
}

func TestHashRefusesEmpty(t *testing.T) {
	for _, c := range []struct{ field, in string }{
		{Email, ""}, {Phone, "  "}, {FirstName, "..."}, {LastName, "?!"}, {City, "-"},
		{State, "!"}, {Zip, "--"}, {ExternalID, "   "}, {Gender, ""}, {Country, ""}, {DateOfBirth, ""},
		{Email, strings.ToUpper(emptyHash)}, // a pre-hashed empty value
	} {
		got, err := HashAt(c.field, c.in, testNow)
		if err == nil || got != "" {
			t.Errorf("HashAt(%s, %q) = %q, %v; want an error", c.field, c.in, got, err)
		}
	}
	if _, err := HashAt("nickname", "x", testNow); !errors.Is(err, ErrUnknownField) {
		t.Errorf("unknown field: %v", err)
	}
}

func TestErrorsCarryNoValue(t *testing.T) {
	secret := "Jane.Secret@@example.com"
	_, err := HashAt(Email, secret, testNow)
	if err == nil || strings.Contains(strings.ToLower(err.Error()), "secret") {
		t.Errorf("error %v must exist and not echo the value", err)
	}
}

func TestStringListDecode(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{`"a"`, []string{"a"}, false},
		{`["a","b"]`, []string{"a", "b"}, false},
		{`[]`, []string{}, false},
		{`null`, nil, false},
		{`1`, nil, true},
		{`[1]`, nil, true},
		{`{"a":1}`, nil, true},
		{`true`, nil, true},
	}
	for _, tt := range tests {
		var l StringList
		err := json.Unmarshal([]byte(tt.in), &l)
		if (err != nil) != tt.wantErr {
			t.Errorf("decode %s: err %v", tt.in, err)
			continue
		}
		if !tt.wantErr && strings.Join(l, "|") != strings.Join(tt.want, "|") {
			t.Errorf("decode %s = %q; want %q", tt.in, l, tt.want)
		}
	}
}

func TestHashUserData(t *testing.T) {
	var raw RawUserData
	err := json.Unmarshal([]byte(`{
		"em": ["Jane@Example.com", "jane@example.com ", ""],
		"ph": "+1 (650) 555-1212",
		"fn": "Jane", "ln": ["Doe"], "ge": "female", "db": "1990-05-17",
		"ct": "New York", "st": "New York", "zp": "10001-0001", "country": "United States",
		"external_id": "Cust-9",
		"client_ip_address": "2001:db8::1", "client_user_agent": "UA/1.0 ",
		"fbc": "fb.1.1700000000000.IwAR", "fbp": "fb.1.1700000000000.123",
		"subscription_id": "s1", "fb_login_id": "42", "lead_id": "l1"
	}`), &raw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := HashUserData(raw, testNow)
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got []string, norm string) {
		t.Helper()
		if len(got) != 1 || got[0] != sum(norm) {
			t.Errorf("%s = %q; want [sha256(%q)]", name, got, norm)
		}
	}
	check("em", u.Em, "jane@example.com") // duplicates collapsed, empty skipped
	check("ph", u.Ph, "16505551212")
	check("fn", u.Fn, "jane")
	check("ln", u.Ln, "doe")
	check("ge", u.Ge, "f")
	check("db", u.Db, "19900517")
	check("ct", u.Ct, "newyork")
	check("st", u.St, "ny")
	check("zp", u.Zp, "10001")
	check("country", u.Country, "us")
	check("external_id", u.ExternalID, "cust-9")
	if u.ClientIPAddress != "2001:db8::1" || u.ClientUserAgent != "UA/1.0 " || u.Fbc != "fb.1.1700000000000.IwAR" ||
		u.Fbp != "fb.1.1700000000000.123" || u.SubscriptionID != "s1" || u.FbLoginID != "42" || u.LeadID != "l1" {
		t.Errorf("never-hashed keys not copied unchanged: %+v", u)
	}
	b, _ := json.Marshal(u)
	for _, rawValue := range []string{"Jane", "jane@", "555", "Doe", "New York", "Cust-9", emptyHash} {
		if strings.Contains(string(b), rawValue) {
			t.Errorf("hashed user data holds %q: %s", rawValue, b)
		}
	}
}

func TestHashUserDataErrorsNameKey(t *testing.T) {
	tests := []struct {
		raw  RawUserData
		keys []string
	}{
		{RawUserData{"em": {"not-an-email"}}, []string{"em"}},
		{RawUserData{"ph": {"12"}, "zz": {"x"}}, []string{"ph", "zz"}},
		{RawUserData{"fn": {"5d41402abc4b2a76b9719d911017c592"}}, []string{"fn"}},
		{RawUserData{"fbp": {"a", "b"}}, []string{"fbp"}},
		{RawUserData{"ln": {"!!!"}}, []string{"ln"}},
	}
	for _, tt := range tests {
		_, err := HashUserData(tt.raw, testNow)
		if err == nil {
			t.Errorf("%v: want an error", tt.raw)
			continue
		}
		for _, k := range tt.keys {
			if !strings.Contains(err.Error(), "user_data."+k+": ") {
				t.Errorf("%v: error %q does not name user_data.%s", tt.raw, err, k)
			}
		}
		var ke *KeyError
		if !errors.As(err, &ke) || ke.Key != tt.keys[0] {
			t.Errorf("%v: errors.As KeyError = %+v; want key %s first", tt.raw, ke, tt.keys[0])
		}
	}
}

func FuzzNormalize(f *testing.F) {
	fields := []string{Email, Phone, FirstName, LastName, Gender, DateOfBirth, City, State, Zip, Country, ExternalID}
	for _, s := range []string{"Jane@Example.com", "+1 (650) 555-1212", "1997-02-16", "2/16/1997", "United States",
		"94025-1234", "", " ", "5d41402abc4b2a76b9719d911017c592", emptyHash, "\xff\xfe", "0000", "x@y.zz", "Île"} {
		for i := range fields {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, fi uint8, v string) {
		field := fields[int(fi)%len(fields)]
		n, nerr := NormalizeAt(field, v, testNow)
		if nerr == nil && n == "" {
			t.Fatalf("NormalizeAt(%s, %q) returned an empty value without error", field, v)
		}
		h, herr := HashAt(field, v, testNow)
		if herr == nil {
			if h == emptyHash {
				t.Fatalf("HashAt(%s, %q) returned the hash of the empty string", field, v)
			}
			if !IsSHA256(h) || strings.ToLower(h) != h {
				t.Fatalf("HashAt(%s, %q) = %q: not lowercase hex SHA-256", field, v, h)
			}
			digest, _, _ := strings.Cut(jsTrim(v), ".")
			if nerr == nil && h != sum(n) && !IsSHA256(digest) {
				t.Fatalf("HashAt(%s, %q) = %q, not sha256 of the normalized %q", field, v, h, n)
			}
		}
		// Normalization is idempotent.
		if nerr == nil {
			if n2, err := NormalizeAt(field, n, testNow); err == nil && n2 != n && field != DateOfBirth {
				t.Fatalf("NormalizeAt(%s) not idempotent: %q → %q → %q", field, v, n, n2)
			}
		}
	})
}

func TestRawUserDataDecodeNamesKey(t *testing.T) {
	var raw RawUserData
	err := json.Unmarshal([]byte(`{"em":"a@b.co","ph":[1]}`), &raw)
	var ke *KeyError
	if !errors.As(err, &ke) || ke.Key != "ph" {
		t.Fatalf("err = %v; want a KeyError for ph", err)
	}
	if err := json.Unmarshal([]byte(`[1]`), &raw); err == nil {
		t.Fatal("an array must not decode as user_data")
	}
	if err := json.Unmarshal([]byte(`{"em":["a@b.co"],"fn":null}`), &raw); err != nil || len(raw["em"]) != 1 || raw["fn"] != nil {
		t.Fatalf("raw = %v, %v", raw, err)
	}
}
