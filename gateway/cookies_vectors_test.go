package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cookieVectorsFile holds what Meta's parameter builder (PB,
// capi-param-builder-nodejs 1.3.2) did for 74 requests; written by
// destinations/meta/testdata/gen, run by hand.
const cookieVectorsFile = "../destinations/meta/testdata/vectors/cookies.jsonl"

type cookieVector struct {
	Name  string `json:"name"`
	Input struct {
		Host      string   `json:"host"`
		URL       string   `json:"url"`
		Referer   string   `json:"referer"`
		Cookie    string   `json:"cookie"`
		Encrypted bool     `json:"encrypted"`
		Domains   []string `json:"domains"`
		Resolver  string   `json:"resolver"`
		Now       *int64   `json:"now"`
	} `json:"input"`
	Output struct {
		Error      string `json:"error"`
		SetCookies []struct {
			Name     string          `json:"name"`
			Value    string          `json:"value"`
			Domain   *string         `json:"domain"`
			Variable json.RawMessage `json:"variable"`
		} `json:"set_cookies"`
		Fbc *string `json:"fbc"`
		Fbp *string `json:"fbp"`
	} `json:"output"`
}

// cookieDepartures are the PB cases where tagway deliberately differs
// (documented on visitorCookies), with what we do instead.
var cookieDepartures = map[string]struct {
	fbc, fbp   string // expected values; "*" = minted (checked by shape)
	domain     string // expected cookie domain ("" host-only)
	index, why string
}{
	// PB without a resolver drops the first label: example.co.uk → co.uk.
	"co.uk without resolver (first label dropped)": {fbp: "*", domain: "example.co.uk", index: "2", why: "public suffix list"},
	// PB drops only the first label; the registrable domain (where the Pixel
	// sets its cookie) is example.com.
	"new visitor, 4-label host": {fbp: "*", domain: "example.com", index: "1", why: "public suffix list"},
	// PB keeps the trailing dot in the domain and counts it as a label.
	"host with trailing dot": {fbp: "*", domain: "example.com", index: "1", why: "public suffix list on the canonical host"},
	// PB stores fbclids that split the cookie (dots) or need quoting
	// (spaces); the next request then finds the cookie invalid.
	"fbclid containing dots":              {fbp: "*", domain: "example.com", index: "1", why: "an fbclid a cookie cannot hold unchanged is ignored"},
	"fbclid with plus (decoded to space)": {fbp: "*", domain: "example.com", index: "1", why: "an fbclid a cookie cannot hold unchanged is ignored"},
	// PB throws on an unparsable Referer and sets nothing.
	"Referer unparsable (throws)": {fbp: "*", domain: "example.com", index: "1", why: "an unparsable referrer is ignored"},
}

var mintedFbp = regexp.MustCompile(`^fb\.([0-9])\.([0-9]+)\.([0-9]{10,18})$`)

// TestCookieVectors replays every PB case through visitorCookies: the
// request host and Cookie header as given, the page URL as the page, the
// Referer as the page before. Values must equal PB's without its appendix
// (we append none); minted _fbp payloads are ours (a visitor seed or 18
// random digits) but index and creation time must be PB's. Cookie
// lifetime is ours (400 days, not PB's 90): checked separately.
func TestCookieVectors(t *testing.T) {
	f, err := os.Open(cookieVectorsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	tg := newTestGateway(t, nil)
	cases := 0
	for sc.Scan() {
		var v cookieVector
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatal(err)
		}
		if v.Name == "" {
			continue
		}
		cases++
		t.Run(v.Name, func(t *testing.T) {
			now := time.UnixMilli(1769904000000)
			if v.Input.Now != nil {
				now = time.UnixMilli(*v.Input.Now)
			}
			scheme := "http"
			if v.Input.Encrypted {
				scheme = "https"
			}
			r := httptest.NewRequest(http.MethodPost, "/collect", nil)
			r.Host = v.Input.Host
			if v.Input.Cookie != "" {
				r.Header.Set("Cookie", v.Input.Cookie)
			}
			if v.Input.Encrypted {
				r.TLS = &tls.ConnectionState{}
			}
			page := scheme + "://" + v.Input.Host + v.Input.URL
			site, _ := tg.opts.Sites.Snapshot().SiteByHost(tg.requestHost(r))
			st, err := tg.visitorCookies(r, tg.cookieTarget(r, tg.requestHost(r), site), "", page, v.Input.Referer, now)
			if err != nil {
				t.Fatal(err)
			}
			set := map[string]http.Cookie{}
			for _, c := range st.Set {
				set[c.Name] = c
				if c.MaxAge != 400*24*60*60 {
					t.Errorf("%s Max-Age %d; want our 400 days", c.Name, c.MaxAge)
				}
			}

			dep, departs := cookieDepartures[v.Name]
			// PB's values without the appendix PB added (one the request's
			// cookie already carried stays: we keep cookies as they are).
			wantFbp, wantFbc := ownAppendix(v.Output.Fbp, v.Input.Cookie), ownAppendix(v.Output.Fbc, v.Input.Cookie)
			wantDomain, wantIndex := "?", ""
			for _, c := range v.Output.SetCookies {
				if c.Domain != nil {
					wantDomain = strings.ToLower(*c.Domain)
				}
				if c.Name == "_fbp" && len(c.Variable) > 0 {
					wantFbp = "*" // minted by PB
				}
				wantIndex = strings.Split(c.Value, ".")[1]
			}
			if departs {
				t.Logf("deliberate difference: %s", dep.why)
				wantFbp, wantFbc, wantDomain, wantIndex = dep.fbp, dep.fbc, dep.domain, dep.index
			}
			// IPs and localhost: PB names the host as the cookie domain,
			// which browsers treat as host-only; we leave Domain empty.
			if host := strings.Trim(strings.Split(strings.TrimPrefix(wantDomain, "["), "]")[0], "."); host == "localhost" ||
				strings.Count(host, ".") == 3 && strings.Trim(host, "0123456789.") == "" || strings.Contains(host, ":") {
				wantDomain = ""
			}

			if wantFbp == "*" {
				m := mintedFbp.FindStringSubmatch(st.Fbp)
				if m == nil || m[2] != strconv.FormatInt(now.UnixMilli(), 10) || (wantIndex != "" && m[1] != wantIndex) {
					t.Errorf("_fbp %q; want fb.%s.%d.<digits>", st.Fbp, wantIndex, now.UnixMilli())
				}
			} else if st.Fbp != wantFbp {
				t.Errorf("_fbp %q; want %q (PB %v)", st.Fbp, wantFbp, deref(v.Output.Fbp))
			}
			if st.Fbc != wantFbc {
				t.Errorf("_fbc %q; want %q (PB %v)", st.Fbc, wantFbc, deref(v.Output.Fbc))
			}
			for _, c := range st.Set {
				if wantDomain != "?" && c.Domain != wantDomain {
					t.Errorf("%s domain %q; want %q", c.Name, c.Domain, wantDomain)
				}
			}
			// Every cookie PB sets, we set, with the same value (no appendix).
			for _, c := range v.Output.SetCookies {
				if departs {
					break
				}
				ours, ok := set[c.Name]
				if !ok {
					t.Errorf("PB sets %s, we do not", c.Name)
					continue
				}
				if len(c.Variable) == 0 || c.Name == "_fbc" {
					if want := ownAppendix(&c.Value, v.Input.Cookie); ours.Value != want {
						t.Errorf("%s = %q; PB sets %q", c.Name, ours.Value, c.Value)
					}
				}
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cases != 74 {
		t.Errorf("%d cases; the file holds 74", cases)
	}
}

// ownAppendix removes the appendix PB added to a value: the 5th dot part of
// an fb.* value that the request's Cookie header did not carry as is.
func ownAppendix(v *string, cookieHeader string) string {
	if v == nil {
		return ""
	}
	parts := strings.Split(*v, ".")
	if len(parts) == 5 && !strings.Contains(cookieHeader, *v) {
		return strings.Join(parts[:4], ".")
	}
	return *v
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
