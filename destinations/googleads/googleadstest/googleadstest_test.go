package googleadstest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

const (
	email   = "sa@proj.iam.gserviceaccount.com"
	account = "1234567890"
	action  = "777"
)

var testNow = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func sha(s string) string { return destinationstest.SHA256(s) }

type fixture struct {
	s   *Server
	key *rsa.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	s := NewServer(t)
	s.SetNow(func() time.Time { return testNow })
	keyJSON := s.NewServiceAccount(email)
	var kf struct {
		Type, PrivateKey, ClientEmail string
	}
	var raw map[string]string
	if err := json.Unmarshal([]byte(keyJSON), &raw); err != nil {
		t.Fatal(err)
	}
	kf.Type, kf.PrivateKey, kf.ClientEmail = raw["type"], raw["private_key"], raw["client_email"]
	if kf.Type != "service_account" || kf.ClientEmail != email {
		t.Fatalf("key file %v", raw)
	}
	block, _ := pem.Decode([]byte(kf.PrivateKey))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	s.Grant(email, account, action)
	return &fixture{s: s, key: k.(*rsa.PrivateKey)}
}

// claims are a JWT grant's claims.
type claims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

// assertion signs a JWT grant (RS256); edit changes its claims first.
func (f *fixture) assertion(t *testing.T, key *rsa.PrivateKey, edit func(*claims)) string {
	now := time.Now()
	cs := &claims{Iss: email, Scope: Scope, Aud: f.s.TokenURL(), Iat: now.Unix(), Exp: now.Add(time.Hour).Unix()}
	if edit != nil {
		edit(cs)
	}
	enc := base64.RawURLEncoding
	cb, _ := json.Marshal(cs)
	signed := enc.EncodeToString([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc.EncodeToString(cb)
	sum := sha256.Sum256([]byte(signed))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signed + "." + enc.EncodeToString(sig)
}

func (f *fixture) token(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(f.s.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestTokenEndpoint(t *testing.T) {
	f := newFixture(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.s.AddRefreshToken("cid", "csecret", "rtoken", "user@x")
	jwtForm := func(a string) url.Values { return url.Values{"grant_type": {jwtGrant}, "assertion": {a}} }
	cases := []struct {
		name   string
		form   url.Values
		status int
		errc   string
	}{
		{"service account", jwtForm(f.assertion(t, f.key, nil)), 200, ""},
		{"refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "refresh_token": {"rtoken"}}, 200, ""},
		{"bad signature", jwtForm(f.assertion(t, other, nil)), 400, "invalid_grant"},
		{"unknown account", jwtForm(f.assertion(t, f.key, func(c *claims) { c.Iss = "x@y" })), 400, "invalid_grant"},
		{"wrong audience", jwtForm(f.assertion(t, f.key, func(c *claims) { c.Aud = "https://evil.example/token" })), 400, "invalid_grant"},
		{"long-lived", jwtForm(f.assertion(t, f.key, func(c *claims) { c.Exp = c.Iat + 7200 })), 400, "invalid_grant"},
		{"expired", jwtForm(f.assertion(t, f.key, func(c *claims) { c.Iat -= 7200; c.Exp -= 7200 })), 400, "invalid_grant"},
		{"no scope", jwtForm(f.assertion(t, f.key, func(c *claims) { c.Scope = "https://www.googleapis.com/auth/adwords" })), 400, "invalid_scope"},
		{"garbage", jwtForm("a.b"), 400, "invalid_grant"},
		{"wrong client secret", url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"x"}, "refresh_token": {"rtoken"}}, 401, "invalid_client"},
		{"revoked refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"csecret"}, "refresh_token": {"old"}}, 400, "invalid_grant"},
		{"other grant", url.Values{"grant_type": {"password"}}, 400, "unsupported_grant_type"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, out := f.token(t, tc.form)
			if status != tc.status || (tc.errc != "" && out["error"] != tc.errc) {
				t.Fatalf("%d %v", status, out)
			}
			if tc.errc == "" {
				tok, _ := out["access_token"].(string)
				if !strings.HasPrefix(tok, "ya29.") || out["expires_in"] != 3600.0 || out["token_type"] != "Bearer" {
					t.Errorf("answer %v", out)
				}
			}
		})
	}
	if n := f.s.TokenFetches(); n != 2 {
		t.Errorf("%d fetches", n)
	}
	if n := len(f.s.TokenErrors()); n != len(cases)-2 {
		t.Errorf("%d token errors", n)
	}
}

// request is a valid ingest request.
func request() map[string]any {
	return map[string]any{
		"destinations": []any{map[string]any{"reference": "r", "productDestinationId": action,
			"operatingAccount": map[string]any{"accountType": "GOOGLE_ADS", "accountId": account}}},
		"encoding": "HEX",
		"events": []any{map[string]any{
			"destinationReferences": []any{"r"},
			"transactionId":         "1001",
			"eventTimestamp":        testNow.Add(-time.Hour).Format(time.RFC3339),
			"userData":              map[string]any{"userIdentifiers": []any{map[string]any{"emailAddress": sha("a@b.co")}}},
			"adIdentifiers":         map[string]any{"gclid": "G"},
			"consent":               map[string]any{"adUserData": "CONSENT_GRANTED"},
			"currency":              "EUR",
			"conversionValue":       12.5,
			"eventSource":           "WEB",
			"eventDeviceInfo":       map[string]any{"ipAddress": "203.0.113.9", "userAgent": "UA"},
		}},
	}
}

func ev0(r map[string]any) map[string]any { return r["events"].([]any)[0].(map[string]any) }

func (f *fixture) ingest(t *testing.T, token string, body any) (int, map[string]any) {
	t.Helper()
	status, raw := destinationstest.Post(t, f.s.URL()+"/v1/events:ingest",
		http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + token}}, body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("answer %s", raw)
	}
	return status, out
}

func (f *fixture) accessToken(t *testing.T) string {
	_, out := f.token(t, url.Values{"grant_type": {jwtGrant}, "assertion": {f.assertion(t, f.key, nil)}})
	return out["access_token"].(string)
}

func TestIngestRules(t *testing.T) {
	f := newFixture(t)
	tok := f.accessToken(t)
	cases := []struct {
		name   string
		edit   func(r map[string]any)
		reason string // "" valid
		field  string
	}{
		{"valid", func(map[string]any) {}, "", ""},
		{"unknown field", func(r map[string]any) { ev0(r)["orderId"] = "x" }, "INVALID_ARGUMENT", ""},
		{"no destinations", func(r map[string]any) { r["destinations"] = []any{} }, "REQUIRED_FIELD_MISSING", "destinations"},
		{"unknown conversion action", func(r map[string]any) {
			r["destinations"].([]any)[0].(map[string]any)["productDestinationId"] = "999"
		}, "INVALID_CONVERSION_ACTION_ID", "destinations[0].product_destination_id"},
		{"no events", func(r map[string]any) { r["events"] = []any{} }, "REQUIRED_FIELD_MISSING", "events"},
		{"unknown reference", func(r map[string]any) { ev0(r)["destinationReferences"] = []any{"zz"} }, "INVALID_DESTINATION", "events[0].destination_references[0]"},
		{"no timestamp", func(r map[string]any) { delete(ev0(r), "eventTimestamp") }, "REQUIRED_FIELD_MISSING", "events[0].event_timestamp"},
		{"not RFC 3339", func(r map[string]any) { ev0(r)["eventTimestamp"] = "2026-11-28 11:00:00+00:00" }, "INVALID_FORMAT", "events[0].event_timestamp"},
		{"older than 90 days", func(r map[string]any) {
			ev0(r)["eventTimestamp"] = testNow.Add(-91 * 24 * time.Hour).Format(time.RFC3339)
		}, "INVALID_EVENT", "events[0].event_timestamp"},
		{"bad currency", func(r map[string]any) { ev0(r)["currency"] = "eur" }, "INVALID_CURRENCY_CODE", "events[0].currency"},
		{"bad source", func(r map[string]any) { ev0(r)["eventSource"] = "WEBSITE" }, "INVALID_ENUM_VALUE", "events[0].event_source"},
		{"bad consent", func(r map[string]any) { ev0(r)["consent"] = map[string]any{"adUserData": "GRANTED"} }, "INVALID_ENUM_VALUE", "events[0].consent.ad_user_data"},
		{"upper-case hex", func(r map[string]any) {
			ev0(r)["userData"] = map[string]any{"userIdentifiers": []any{map[string]any{"emailAddress": strings.ToUpper(sha("a"))}}}
		}, "INVALID_HEX_ENCODING", "events[0].user_data.user_identifiers[0].email_address"},
		{"raw e-mail", func(r map[string]any) {
			ev0(r)["userData"] = map[string]any{"userIdentifiers": []any{map[string]any{"emailAddress": "a@b.co"}}}
		}, "INVALID_HEX_ENCODING", "events[0].user_data.user_identifiers[0].email_address"},
		{"short digest", func(r map[string]any) {
			ev0(r)["userData"] = map[string]any{"userIdentifiers": []any{map[string]any{"phoneNumber": "abcdef"}}}
		}, "INVALID_SHA256_FORMAT", "events[0].user_data.user_identifiers[0].phone_number"},
		{"two fields in one identifier", func(r map[string]any) {
			ev0(r)["userData"] = map[string]any{"userIdentifiers": []any{map[string]any{"emailAddress": sha("a"), "phoneNumber": sha("b")}}}
		}, "INVALID_ARGUMENT", "events[0].user_data.user_identifiers[0]"},
		{"eleven identifiers", func(r map[string]any) {
			var ids []any
			for i := range 11 {
				ids = append(ids, map[string]any{"emailAddress": sha(string(rune('a' + i)))})
			}
			ev0(r)["userData"] = map[string]any{"userIdentifiers": ids}
		}, "TOO_MANY_USER_IDENTIFIERS", "events[0].user_data.user_identifiers"},
		{"two click ids", func(r map[string]any) { ev0(r)["adIdentifiers"] = map[string]any{"gclid": "G", "wbraid": "W"} }, "INVALID_ARGUMENT", "events[0].ad_identifiers"},
		{"no identifiers", func(r map[string]any) { delete(ev0(r), "userData"); delete(ev0(r), "adIdentifiers") }, "NO_IDENTIFIERS_PROVIDED", "events[0]"},
		{"no encoding", func(r map[string]any) { delete(r, "encoding") }, "REQUIRED_FIELD_MISSING", "encoding"},
		{"bad IP", func(r map[string]any) { ev0(r)["eventDeviceInfo"] = map[string]any{"ipAddress": "nope"} }, "INVALID_FORMAT", "events[0].event_device_info.ip_address"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := request()
			tc.edit(r)
			status, out := f.ingest(t, tok, r)
			if tc.reason == "" {
				if status != 200 || out["requestId"] == "" {
					t.Fatalf("%d %v", status, out)
				}
				return
			}
			e, _ := out["error"].(map[string]any)
			if status != 400 || e["status"] != "INVALID_ARGUMENT" || e["code"] != 400.0 {
				t.Fatalf("%d %v", status, out)
			}
			var info, bad map[string]any
			for _, d := range e["details"].([]any) {
				m := d.(map[string]any)
				switch m["@type"] {
				case "type.googleapis.com/google.rpc.ErrorInfo":
					info = m
				case "type.googleapis.com/google.rpc.BadRequest":
					bad = m
				}
			}
			if info == nil || info["domain"] != "datamanager.googleapis.com" || bad == nil {
				t.Fatalf("details %v", e["details"])
			}
			v := bad["fieldViolations"].([]any)[0].(map[string]any)
			if tc.field != "" && (v["field"] != tc.field || v["reason"] != tc.reason) {
				t.Errorf("violation %v, want %s %s", v, tc.field, tc.reason)
			}
		})
	}
	if n := len(f.s.Events(account)); n != 1 {
		t.Errorf("ingested %d", n)
	}
	if n := len(f.s.Rejections()); n != len(cases)-1 {
		t.Errorf("%d rejections", n)
	}
}

func TestIngestAuth(t *testing.T) {
	f := newFixture(t)
	tok := f.accessToken(t)
	if status, _ := f.ingest(t, "ya29.unknown", request()); status != 401 {
		t.Errorf("unknown token: %d", status)
	}
	// A principal without access to the account.
	f.s.AddRefreshToken("cid", "cs", "rt", "stranger@x")
	_, out := f.token(t, url.Values{"grant_type": {"refresh_token"}, "client_id": {"cid"}, "client_secret": {"cs"}, "refresh_token": {"rt"}})
	if status, out := f.ingest(t, out["access_token"].(string), request()); status != 403 ||
		out["error"].(map[string]any)["status"] != "PERMISSION_DENIED" {
		t.Errorf("stranger: %d %v", status, out)
	}
	// validateOnly: checked, not ingested.
	r := request()
	r["validateOnly"] = true
	if status, out := f.ingest(t, tok, r); status != 200 || len(out) != 0 {
		t.Errorf("validateOnly: %d %v", status, out)
	}
	if len(f.s.Events(account)) != 0 {
		t.Error("validateOnly ingested")
	}
	// Expiry by the fake's clock, and revocation.
	if status, _ := f.ingest(t, tok, request()); status != 200 {
		t.Fatalf("status %d", status)
	}
	f.s.SetNow(func() time.Time { return testNow.Add(time.Hour) })
	if status, out := f.ingest(t, tok, request()); status != 401 || out["error"].(map[string]any)["status"] != "UNAUTHENTICATED" {
		t.Errorf("expired: %d %v", status, out)
	}
	f.s.SetNow(func() time.Time { return testNow })
	f.s.RevokeTokens()
	if status, _ := f.ingest(t, tok, request()); status != 401 {
		t.Errorf("revoked: %d", status)
	}
	f.s.FailNext(1, 503, Status{HTTP: 503, Status: "UNAVAILABLE", Message: "down"}.Body())
	if status, out := f.ingest(t, "whatever", request()); status != 503 || out["error"].(map[string]any)["status"] != "UNAVAILABLE" {
		t.Errorf("FailNext: %d %v", status, out)
	}
	got := f.s.WaitEvents(account, 1, time.Second)
	if got[0].TransactionID != "1001" || got[0].ConversionAction != action || got[0].Principal != email ||
		!got[0].EventTimestamp.Equal(testNow.Add(-time.Hour)) || got[0].Event["currency"] != "EUR" {
		t.Errorf("received %+v", got[0])
	}
}

func TestStatusBody(t *testing.T) {
	body := Status{HTTP: 429, Status: "RESOURCE_EXHAUSTED", Message: "Quota exceeded.", Reason: "RATE_LIMIT_EXCEEDED",
		RetryDelay: 1500 * time.Millisecond, Metadata: map[string]string{"quota_limit": "PerMinute"}}.Body()
	var env struct {
		Error struct {
			Code    int              `json:"code"`
			Message string           `json:"message"`
			Status  string           `json:"status"`
			Details []map[string]any `json:"details"`
		} `json:"error"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatal(err)
	}
	e := env.Error
	if e.Code != 429 || e.Status != "RESOURCE_EXHAUSTED" || len(e.Details) != 3 ||
		e.Details[0]["domain"] != "googleapis.com" || e.Details[1]["retryDelay"] != "1.5s" ||
		e.Details[2]["@type"] != "type.googleapis.com/google.rpc.RequestInfo" {
		t.Errorf("body %s", body)
	}
}
