// Package googleadstest is a strict fake, for tests, of the two Google
// endpoints a google_ads destination talks to: Google's OAuth 2.0 token
// endpoint (POST /token: the service-account JWT grant and the
// refresh-token grant) and the Data Manager API's POST /v1/events:ingest.
//
// The token endpoint verifies the JWT's RS256 signature with the service
// account's public key, its audience, scope and lifetime, or the OAuth
// client and refresh token, and issues access tokens that expire by the
// fake's clock. The API checks the bearer token, the principal's access to
// the operating account, the account's conversion actions, and the
// request as the API documents it (destinations, at most 2,000 events,
// timestamps, 64-character lowercase hex digests with HEX encoding, at
// most 10 identifiers, one click id, enums, currency), and answers
// failures as Google does: a google.rpc.Status with ErrorInfo, BadRequest
// field violations and RequestInfo, refusing the whole request (fast
// fail).
package googleadstest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations/destinationstest"
)

// Limits and constants the fake enforces.
const (
	MaxEvents       = 2000
	MaxDestinations = 10
	MaxIdentifiers  = 10
	// MaxAge is the age past which the fake refuses an event
	// (INVALID_EVENT): Google Ads' longest conversion window.
	MaxAge = 90 * 24 * time.Hour
	// Scope is the scope a token must be granted.
	Scope = "https://www.googleapis.com/auth/datamanager"
	// DefaultTokenLifetime is how long an access token lives, as Google's.
	DefaultTokenLifetime = time.Hour

	jwtGrant     = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	maxBodyBytes = 16 << 20
)

// Received is one event the API ingested, once per destination.
type Received struct {
	AccountID        string
	ConversionAction string
	Principal        string
	LoginAccountID   string
	TransactionID    string
	EventTimestamp   time.Time
	// Event is the whole event as sent (numbers as json.Number).
	Event map[string]any
}

// Violation is one field violation of a BadRequest.
type Violation struct {
	Field       string `json:"field,omitempty"`
	Description string `json:"description"`
	Reason      string `json:"reason,omitempty"`
}

// Status is an error answer: the HTTP code, the google.rpc status name, the
// message, the ErrorInfo reason and the field violations.
type Status struct {
	HTTP       int
	Status     string
	Message    string
	Reason     string
	Violations []Violation
	// RetryDelay, when positive, adds a RetryInfo.
	RetryDelay time.Duration
	// Metadata is the ErrorInfo's metadata.
	Metadata map[string]string
}

// Body is the JSON error envelope Google's REST APIs answer with.
func (s Status) Body() string {
	details := []any{}
	if s.Reason != "" {
		domain := "datamanager.googleapis.com"
		if s.HTTP == http.StatusUnauthorized || s.HTTP == http.StatusTooManyRequests {
			domain = "googleapis.com"
		}
		info := map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": s.Reason, "domain": domain}
		if len(s.Metadata) > 0 {
			info["metadata"] = s.Metadata
		}
		details = append(details, info)
	}
	if len(s.Violations) > 0 {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": s.Violations})
	}
	if s.RetryDelay > 0 {
		details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RetryInfo",
			"retryDelay": strconv.FormatFloat(s.RetryDelay.Seconds(), 'f', -1, 64) + "s"})
	}
	details = append(details, map[string]any{"@type": "type.googleapis.com/google.rpc.RequestInfo", "requestId": "fake-request"})
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": s.HTTP, "message": s.Message, "status": s.Status, "details": details}})
	return string(b)
}

// Error describes s for test failures.
func (s Status) Error() string {
	out := fmt.Sprintf("%d %s %s: %s", s.HTTP, s.Status, s.Reason, s.Message)
	for _, v := range s.Violations {
		out += fmt.Sprintf("; %s: %s (%s)", v.Field, v.Description, v.Reason)
	}
	return out
}

type client struct {
	secret string
	tokens map[string]string // refresh token → principal
}

type issued struct {
	principal string
	expires   time.Time
}

// Server is a running fake: the shared scaffolding for the API (URL,
// Handler, SetNow, Events by account, Requests, Rejections, FailNext,
// WaitEvents, all of the API alone) and the token endpoint. A JWT's
// audience must be the token endpoint's URL as the request reached it.
// Its methods are safe for concurrent use.
type Server struct {
	*destinationstest.Fake[Received, Status]
	t         testing.TB
	failToken destinationstest.Failures

	mu          sync.Mutex
	tokenLife   time.Duration
	tokenValue  string
	keys        map[string]*rsa.PublicKey // service account e-mail → key
	clients     map[string]*client        // OAuth client id → client
	access      map[string][]string       // principal → account ids
	actions     map[string][]string       // account id → conversion action ids
	tokens      map[string]issued
	fetches     int
	tokenErrors []string
}

// NewServer starts a fake, closed when the test ends. It knows no
// credentials, accounts or conversion actions until told; its clock is
// time.Now until SetNow.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t: t, tokenLife: DefaultTokenLifetime,
		keys: map[string]*rsa.PublicKey{}, clients: map[string]*client{}, access: map[string][]string{},
		actions: map[string][]string{}, tokens: map[string]issued{},
	}
	s.Fake = destinationstest.NewFake[Received, Status](t, destinationstest.FakeConfig{
		Name: "googleadstest", Account: "account", Serve: s.serveHTTP,
		Explain: func() string { return fmt.Sprintf("token errors: %v", s.TokenErrors()) }})
	return s
}

// TokenURL is the URL to use as token_url.
func (s *Server) TokenURL() string { return s.URL() + "/token" }

// NewServiceAccount makes a service account with a new RSA key and
// returns its JSON key file, as Google's console gives it.
func (s *Server) NewServiceAccount(email string) string {
	s.t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		s.t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.keys[email] = &key.PublicKey
	s.mu.Unlock()
	b, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "tagway-test",
		"private_key_id": "fakekeyid0001",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   email,
		"client_id":      "100000000000000000001",
		"auth_uri":       "https://accounts.google.com/o/oauth2/auth",
		"token_uri":      "https://oauth2.googleapis.com/token",
	})
	return string(b)
}

// AddRefreshToken registers an OAuth client and a refresh token it holds
// for principal (the user who consented).
func (s *Server) AddRefreshToken(clientID, clientSecret, refreshToken, principal string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clients[clientID]
	if c == nil {
		c = &client{secret: clientSecret, tokens: map[string]string{}}
		s.clients[clientID] = c
	}
	c.tokens[refreshToken] = principal
}

// Grant gives principal (a service account's e-mail or a user) access to
// a Google Ads account, and gives that account conversion actions.
func (s *Server) Grant(principal, accountID string, conversionActions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access[principal] = append(s.access[principal], accountID)
	s.actions[accountID] = append(s.actions[accountID], conversionActions...)
}

// SetTokenLifetime sets the expires_in of the tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenLife = d
}

// SetTokenValue makes every access token issued from now on v, so that a
// test knows the secret to look for in errors and logs.
func (s *Server) SetTokenValue(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenValue = v
}

// RevokeTokens makes every access token issued so far invalid.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// TokenFetches counts the access tokens issued.
func (s *Server) TokenFetches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

// TokenErrors returns the token endpoint's refusals, in order.
func (s *Server) TokenErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tokenErrors)
}

// FailTokenNext makes the next n token requests fail with status and body.
func (s *Server) FailTokenNext(n, status int, body string) { s.failToken.Push(n, status, nil, body) }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/token":
		s.serveToken(w, r)
	case "/v1/events:ingest":
		s.serveIngest(w, r)
	default:
		writeStatus(w, Status{HTTP: 404, Status: "NOT_FOUND", Message: "Method not found."})
	}
}

func writeStatus(w http.ResponseWriter, st Status) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(st.HTTP)
	_, _ = io.WriteString(w, st.Body())
}

// serveToken is the OAuth 2.0 token endpoint.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if s.failToken.Answer(w, r) {
		return
	}
	refuse := func(status int, code, desc string) {
		s.mu.Lock()
		s.tokenErrors = append(s.tokenErrors, code+": "+desc)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		refuse(http.StatusBadRequest, "invalid_request", "form body required")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		refuse(http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	var principal, scope string
	switch r.PostForm.Get("grant_type") {
	case jwtGrant:
		p, sc, why := s.checkAssertion(r.PostForm.Get("assertion"), "http://"+r.Host+"/token")
		if why != "" {
			code := "invalid_grant"
			if why == "scope" {
				code, why = "invalid_scope", "The scope is not allowed."
			}
			refuse(http.StatusBadRequest, code, why)
			return
		}
		principal, scope = p, sc
	case "refresh_token":
		id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		if u, p, ok := r.BasicAuth(); ok {
			id, secret = u, p
		}
		s.mu.Lock()
		c := s.clients[id]
		var ok bool
		if c != nil && c.secret == secret {
			principal, ok = c.tokens[r.PostForm.Get("refresh_token")]
		}
		s.mu.Unlock()
		switch {
		case c == nil || c.secret != secret:
			refuse(http.StatusUnauthorized, "invalid_client", "The OAuth client was not found.")
			return
		case !ok:
			refuse(http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		scope = Scope
	default:
		refuse(http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+r.PostForm.Get("grant_type"))
		return
	}
	var raw [16]byte
	_, _ = rand.Read(raw[:])
	now := s.Now()
	s.mu.Lock()
	s.fetches++
	token := "ya29.fake" + strconv.Itoa(s.fetches) + "-" + hex.EncodeToString(raw[:])
	if s.tokenValue != "" {
		token = s.tokenValue
	}
	life := s.tokenLife
	s.tokens[token] = issued{principal: principal, expires: now.Add(life)}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": token, "expires_in": int(life.Seconds()),
		"token_type": "Bearer", "scope": scope})
}

// checkAssertion verifies a service account's signed JWT and returns its
// issuer and scope, or why it is refused ("scope" for a missing scope).
func (s *Server) checkAssertion(assertion, audience string) (principal, scope, why string) {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "", "", "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe."
	}
	var header struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	var claims struct {
		Iss   string `json:"iss"`
		Scope string `json:"scope"`
		Aud   string `json:"aud"`
		Exp   int64  `json:"exp"`
		Iat   int64  `json:"iat"`
	}
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || json.Unmarshal(hb, &header) != nil || json.Unmarshal(cb, &claims) != nil {
		return "", "", "Invalid JWT: malformed."
	}
	if header.Alg != "RS256" {
		return "", "", "Invalid JWT: alg must be RS256."
	}
	s.mu.Lock()
	key := s.keys[claims.Iss]
	s.mu.Unlock()
	if key == nil {
		return "", "", "Invalid grant: account not found"
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(key, crypto.SHA256, sum[:], sig) != nil {
		return "", "", "Invalid JWT Signature."
	}
	if claims.Aud != audience {
		return "", "", "Invalid JWT: audience " + claims.Aud + " is not the token endpoint."
	}
	// The assertion's times are the signer's real clock, not the fake's.
	now := time.Now().Unix()
	if claims.Exp-claims.Iat > 3600 || claims.Exp < now || claims.Iat > now+300 {
		return "", "", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
	}
	if !slices.Contains(strings.Fields(claims.Scope), Scope) {
		return "", "", "scope"
	}
	return claims.Iss, claims.Scope, ""
}

// The request as the fake decodes it: proto3 JSON names.
type (
	ingestRequest struct {
		Destinations   []destination   `json:"destinations"`
		Events         []event         `json:"events"`
		Consent        *consent        `json:"consent"`
		ValidateOnly   bool            `json:"validateOnly"`
		Encoding       string          `json:"encoding"`
		EncryptionInfo json.RawMessage `json:"encryptionInfo"`
	}
	destination struct {
		Reference            string          `json:"reference"`
		LoginAccount         *productAccount `json:"loginAccount"`
		LinkedAccount        *productAccount `json:"linkedAccount"`
		OperatingAccount     *productAccount `json:"operatingAccount"`
		ProductDestinationID string          `json:"productDestinationId"`
	}
	productAccount struct {
		Product     string `json:"product"`
		AccountID   string `json:"accountId"`
		AccountType string `json:"accountType"`
	}
	event struct {
		DestinationReferences []string        `json:"destinationReferences"`
		TransactionID         string          `json:"transactionId"`
		EventTimestamp        string          `json:"eventTimestamp"`
		LastUpdatedTimestamp  string          `json:"lastUpdatedTimestamp"`
		UserData              *userData       `json:"userData"`
		Consent               *consent        `json:"consent"`
		AdIdentifiers         *adIdentifiers  `json:"adIdentifiers"`
		Currency              string          `json:"currency"`
		ConversionValue       *float64        `json:"conversionValue"`
		EventSource           string          `json:"eventSource"`
		EventDeviceInfo       *deviceInfo     `json:"eventDeviceInfo"`
		CartData              json.RawMessage `json:"cartData"`
		CustomVariables       json.RawMessage `json:"customVariables"`
		ExperimentalFields    json.RawMessage `json:"experimentalFields"`
		UserProperties        json.RawMessage `json:"userProperties"`
	}
	userData struct {
		UserIdentifiers []userIdentifier `json:"userIdentifiers"`
	}
	userIdentifier struct {
		EmailAddress *string      `json:"emailAddress"`
		PhoneNumber  *string      `json:"phoneNumber"`
		Address      *addressInfo `json:"address"`
	}
	addressInfo struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
		RegionCode string `json:"regionCode"`
		PostalCode string `json:"postalCode"`
	}
	adIdentifiers struct {
		SessionAttributes     string      `json:"sessionAttributes"`
		Gclid                 string      `json:"gclid"`
		Gbraid                string      `json:"gbraid"`
		Wbraid                string      `json:"wbraid"`
		LandingPageDeviceInfo *deviceInfo `json:"landingPageDeviceInfo"`
	}
	deviceInfo struct {
		UserAgent string `json:"userAgent"`
		IPAddress string `json:"ipAddress"`
	}
	consent struct {
		AdUserData        string `json:"adUserData"`
		AdPersonalization string `json:"adPersonalization"`
	}
)

var (
	digitsPattern   = regexp.MustCompile(`^[0-9]+$`)
	hexPattern      = regexp.MustCompile(`^[0-9a-f]*$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
	regionPattern   = regexp.MustCompile(`^[A-Z]{2}$`)
	eventSources    = []string{"WEB", "APP", "IN_STORE", "PHONE", "OTHER"}
	consentWords    = []string{"CONSENT_GRANTED", "CONSENT_DENIED", "CONSENT_STATUS_UNSPECIFIED"}
)

func invalid(violations ...Violation) *Status {
	return &Status{HTTP: 400, Status: "INVALID_ARGUMENT", Message: "There was a problem with the request.",
		Reason: "INVALID_ARGUMENT", Violations: violations}
}

// serveIngest is POST /v1/events:ingest.
func (s *Server) serveIngest(w http.ResponseWriter, r *http.Request) {
	n, now, ok := s.Begin(w, r)
	if !ok {
		return
	}
	received, validateOnly, st := s.ingest(r, now)
	if st != nil {
		s.Reject(*st)
		writeStatus(w, *st)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	if validateOnly {
		_, _ = io.WriteString(w, "{}\n")
		return
	}
	for _, rec := range received {
		s.Accept(rec.AccountID, rec)
	}
	fmt.Fprintf(w, "{\"requestId\": \"fake-%08d\"}\n", n)
}

// ingest checks one request and returns the events it ingests, or the
// error answer.
func (s *Server) ingest(r *http.Request, now time.Time) ([]Received, bool, *Status) {
	if r.Method != http.MethodPost {
		return nil, false, &Status{HTTP: 405, Status: "UNIMPLEMENTED", Message: "POST required."}
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	tok, known := s.tokens[token]
	s.mu.Unlock()
	if !ok || !known || !now.Before(tok.expires) {
		return nil, false, &Status{HTTP: 401, Status: "UNAUTHENTICATED", Reason: "ACCESS_TOKEN_EXPIRED",
			Message: "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."}
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, false, invalid(Violation{Description: "Content-Type must be application/json."})
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	if err != nil {
		return nil, false, &Status{HTTP: 413, Status: "INVALID_ARGUMENT", Message: "Request payload size exceeds the limit."}
	}
	var req ingestRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, false, invalid(Violation{Description: "Invalid JSON payload received. " + err.Error()})
	}
	var raw struct {
		Events []map[string]any `json:"events"`
	}
	d2 := json.NewDecoder(bytes.NewReader(body))
	d2.UseNumber()
	_ = d2.Decode(&raw)

	refs, st := s.checkDestinations(&req, tok.principal)
	if st != nil {
		return nil, false, st
	}
	var vs []Violation
	switch {
	case len(req.Events) == 0:
		vs = append(vs, Violation{Field: "events", Description: "At least one event is required.", Reason: "REQUIRED_FIELD_MISSING"})
	case len(req.Events) > MaxEvents:
		vs = append(vs, Violation{Field: "events", Description: fmt.Sprintf("At most %d events per request.", MaxEvents), Reason: "TOO_MANY_EVENTS"})
	}
	if req.Consent != nil {
		vs = append(vs, checkConsent("consent", req.Consent)...)
	}
	hasUserData := false
	var out []Received
	for i := range req.Events {
		ev := &req.Events[i]
		hasUserData = hasUserData || ev.UserData != nil
		evs, at := checkEvent(fmt.Sprintf("events[%d]", i), ev, refs, now)
		vs = append(vs, evs...)
		if len(evs) > 0 {
			continue
		}
		targets := ev.DestinationReferences
		if len(targets) == 0 {
			targets = slices.Collect(func(yield func(string) bool) {
				for _, d := range req.Destinations {
					if !yield(d.Reference) {
						return
					}
				}
			})
		}
		for _, ref := range targets {
			d := refs[ref]
			rec := Received{AccountID: d.OperatingAccount.AccountID, ConversionAction: d.ProductDestinationID,
				Principal: tok.principal, TransactionID: ev.TransactionID, EventTimestamp: at}
			if d.LoginAccount != nil {
				rec.LoginAccountID = d.LoginAccount.AccountID
			}
			if i < len(raw.Events) {
				rec.Event = raw.Events[i]
			}
			out = append(out, rec)
		}
	}
	if hasUserData && req.Encoding != "HEX" && req.Encoding != "BASE64" {
		vs = append(vs, Violation{Field: "encoding", Description: "encoding is required for UserData uploads.", Reason: "REQUIRED_FIELD_MISSING"})
	}
	if len(vs) > 0 {
		return nil, false, invalid(vs...)
	}
	return out, req.ValidateOnly, nil
}

// checkDestinations checks the destinations and principal's access to
// them; it returns them by reference.
func (s *Server) checkDestinations(req *ingestRequest, principal string) (map[string]*destination, *Status) {
	if len(req.Destinations) == 0 {
		return nil, invalid(Violation{Field: "destinations", Description: "At least one destination is required.", Reason: "REQUIRED_FIELD_MISSING"})
	}
	if len(req.Destinations) > MaxDestinations {
		return nil, invalid(Violation{Field: "destinations", Description: "At most 10 destinations per request.", Reason: "TOO_MANY_DESTINATIONS"})
	}
	refs := map[string]*destination{}
	var vs []Violation
	for i := range req.Destinations {
		d := &req.Destinations[i]
		path := fmt.Sprintf("destinations[%d]", i)
		if _, dup := refs[d.Reference]; dup {
			vs = append(vs, Violation{Field: path + ".reference", Description: "Duplicate destination reference.", Reason: "DUPLICATE_DESTINATION_REFERENCE"})
		}
		refs[d.Reference] = d
		op := d.OperatingAccount
		switch {
		case op == nil || op.AccountID == "":
			vs = append(vs, Violation{Field: path + ".operating_account", Description: "operating_account is required.", Reason: "REQUIRED_FIELD_MISSING"})
			continue
		case !digitsPattern.MatchString(op.AccountID):
			vs = append(vs, Violation{Field: path + ".operating_account.account_id", Description: "The account id must be digits.", Reason: "INVALID_FORMAT"})
		case op.AccountType != "GOOGLE_ADS" && op.Product != "GOOGLE_ADS":
			vs = append(vs, Violation{Field: path + ".operating_account.account_type", Description: "Conversion actions belong to GOOGLE_ADS accounts.", Reason: "INVALID_ENUM_VALUE"})
		}
		if d.LoginAccount != nil && (!digitsPattern.MatchString(d.LoginAccount.AccountID) || d.LoginAccount.AccountType == "") {
			vs = append(vs, Violation{Field: path + ".login_account", Description: "login_account needs an account_type and a numeric account_id.", Reason: "INVALID_FORMAT"})
		}
		if !digitsPattern.MatchString(d.ProductDestinationID) {
			vs = append(vs, Violation{Field: path + ".product_destination_id", Description: "product_destination_id must be a conversion action id.", Reason: "INVALID_CONVERSION_ACTION_ID"})
		}
	}
	if len(vs) > 0 {
		return nil, invalid(vs...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range req.Destinations {
		d := &req.Destinations[i]
		acting := d.OperatingAccount.AccountID
		if d.LoginAccount != nil {
			acting = d.LoginAccount.AccountID
		}
		if !slices.Contains(s.access[principal], acting) {
			return nil, &Status{HTTP: 403, Status: "PERMISSION_DENIED", Reason: "PERMISSION_DENIED",
				Message: "The caller does not have permission"}
		}
		if !slices.Contains(s.actions[d.OperatingAccount.AccountID], d.ProductDestinationID) {
			return nil, invalid(Violation{Field: fmt.Sprintf("destinations[%d].product_destination_id", i),
				Description: "Conversion action ID is not valid.", Reason: "INVALID_CONVERSION_ACTION_ID"})
		}
	}
	return refs, nil
}

func checkConsent(path string, c *consent) []Violation {
	var vs []Violation
	for _, f := range [...]struct{ name, v string }{{"ad_user_data", c.AdUserData}, {"ad_personalization", c.AdPersonalization}} {
		name, v := f.name, f.v
		if v != "" && !slices.Contains(consentWords, v) {
			vs = append(vs, Violation{Field: path + "." + name, Description: "Invalid value " + strconv.Quote(v) + ".", Reason: "INVALID_ENUM_VALUE"})
		}
	}
	return vs
}

// checkEvent applies the API's rules to one event and returns its
// violations and its time.
func checkEvent(path string, ev *event, refs map[string]*destination, now time.Time) ([]Violation, time.Time) {
	var vs []Violation
	bad := func(field, desc, reason string) {
		vs = append(vs, Violation{Field: path + field, Description: desc, Reason: reason})
	}
	for j, ref := range ev.DestinationReferences {
		if _, ok := refs[ref]; !ok {
			bad(fmt.Sprintf(".destination_references[%d]", j), "Unknown destination reference "+strconv.Quote(ref)+".", "INVALID_DESTINATION")
		}
	}
	var at time.Time
	if ev.EventTimestamp == "" {
		bad(".event_timestamp", "event_timestamp is required.", "REQUIRED_FIELD_MISSING")
	} else if t, err := time.Parse(time.RFC3339Nano, ev.EventTimestamp); err != nil {
		bad(".event_timestamp", "Invalid timestamp "+strconv.Quote(ev.EventTimestamp)+".", "INVALID_FORMAT")
	} else {
		at = t
		if t.After(now.Add(5 * time.Minute)) {
			bad(".event_timestamp", "The event is in the future.", "INVALID_EVENT")
		}
		if now.Sub(t) > MaxAge {
			bad(".event_timestamp", "The event is older than 90 days.", "INVALID_EVENT")
		}
	}
	if ev.Currency != "" && !currencyPattern.MatchString(ev.Currency) {
		bad(".currency", "The currency code is not supported.", "INVALID_CURRENCY_CODE")
	}
	if v := ev.ConversionValue; v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0) {
		bad(".conversion_value", "Invalid conversion value.", "INVALID_NUMBER_FORMAT")
	}
	if ev.EventSource != "" && !slices.Contains(eventSources, ev.EventSource) {
		bad(".event_source", "Invalid value "+strconv.Quote(ev.EventSource)+".", "INVALID_ENUM_VALUE")
	}
	if ev.Consent != nil {
		vs = append(vs, checkConsent(path+".consent", ev.Consent)...)
	}
	for _, di := range []*deviceInfo{ev.EventDeviceInfo} {
		if di != nil && di.IPAddress != "" {
			if _, err := netip.ParseAddr(di.IPAddress); err != nil {
				bad(".event_device_info.ip_address", "Invalid IP address.", "INVALID_FORMAT")
			}
		}
	}
	clicks := 0
	if a := ev.AdIdentifiers; a != nil {
		for _, c := range []string{a.Gclid, a.Gbraid, a.Wbraid} {
			if c != "" {
				clicks++
			}
		}
		if clicks > 1 {
			bad(".ad_identifiers", "At most one of gclid, gbraid and wbraid.", "INVALID_ARGUMENT")
		}
	}
	ids := 0
	if u := ev.UserData; u != nil {
		ids = len(u.UserIdentifiers)
		switch {
		case ids == 0:
			bad(".user_data.user_identifiers", "At least one user identifier is required.", "REQUIRED_FIELD_MISSING")
		case ids > MaxIdentifiers:
			bad(".user_data.user_identifiers", "At most 10 user identifiers.", "TOO_MANY_USER_IDENTIFIERS")
		}
		for j, id := range u.UserIdentifiers {
			p := fmt.Sprintf(".user_data.user_identifiers[%d]", j)
			set := 0
			for _, v := range []bool{id.EmailAddress != nil, id.PhoneNumber != nil, id.Address != nil} {
				if v {
					set++
				}
			}
			if set != 1 {
				bad(p, "Exactly one of email_address, phone_number and address.", "INVALID_ARGUMENT")
				continue
			}
			check := func(field, v string) {
				switch {
				case !hexPattern.MatchString(v):
					bad(p+field, "The HEX encoded value is malformed.", "INVALID_HEX_ENCODING")
				case len(v) != 64:
					bad(p+field, "The SHA256 encoded value is malformed.", "INVALID_SHA256_FORMAT")
				}
			}
			switch {
			case id.EmailAddress != nil:
				check(".email_address", *id.EmailAddress)
			case id.PhoneNumber != nil:
				check(".phone_number", *id.PhoneNumber)
			default:
				check(".address.given_name", id.Address.GivenName)
				check(".address.family_name", id.Address.FamilyName)
				if !regionPattern.MatchString(id.Address.RegionCode) {
					bad(p+".address.region_code", "Country code is not valid.", "INVALID_COUNTRY_CODE")
				}
				if id.Address.PostalCode == "" {
					bad(p+".address.postal_code", "Postal code is not valid.", "INVALID_POSTAL_CODE")
				}
			}
		}
	}
	if ids == 0 && clicks == 0 {
		bad("", "Events data contains no user identifiers or ad identifiers.", "NO_IDENTIFIERS_PROVIDED")
	}
	return vs, at
}
