package googleads

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/tagway/tagway/destinations"
)

const (
	// tokenMargin is how long before its expiry a token is replaced, so
	// that it does not expire on the way.
	tokenMargin = time.Minute
	// defaultTokenLife is assumed when the token endpoint gives no
	// expires_in.
	defaultTokenLife = 30 * time.Minute
)

// tokenCache holds the access token between calls. Its lock is a channel,
// so that a call waiting for another's fetch still honours its context.
type tokenCache struct {
	lock    chan struct{}
	token   string
	expires time.Time // by the adapter's clock
}

func newTokenCache() *tokenCache { return &tokenCache{lock: make(chan struct{}, 1)} }

// accessToken returns a valid access token: the cached one, else one
// fetched now (fresh is then true). It waits for a fetch under way in
// another call rather than fetching twice.
func (a *Adapter) accessToken(ctx context.Context) (token string, fresh bool, err error) {
	c := a.tokens
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return "", false, &destinations.Error{Kind: destinations.Retryable, Message: "google_ads: waiting for an access token: " + ctx.Err().Error()}
	}
	defer func() { <-c.lock }()
	now := a.api.Now()
	if c.token != "" && now.Before(c.expires.Add(-tokenMargin)) {
		return c.token, false, nil
	}
	c.token = ""
	tok, err := a.fetchToken(ctx)
	if err != nil {
		return "", false, err
	}
	c.token, c.expires = tok.AccessToken, now.Add(lifetime(tok))
	a.api.Log.Debug("google_ads access token fetched", "expires", c.expires)
	return c.token, true, nil
}

// dropToken forgets token if it is the cached one: the API refused it.
func (a *Adapter) dropToken(ctx context.Context, token string) {
	c := a.tokens
	select {
	case c.lock <- struct{}{}:
	case <-ctx.Done():
		return
	}
	if c.token == token {
		c.token = ""
	}
	<-c.lock
}

// lifetime reads how long tok lives from the endpoint's expires_in.
func lifetime(tok *oauth2.Token) time.Duration {
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case json.Number:
		secs, _ = v.Float64()
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs <= 0 {
		return defaultTokenLife
	}
	return time.Duration(secs * float64(time.Second))
}

// fetchToken asks the token endpoint for an access token, within the
// call's context and the adapter's timeout, through the adapter's client
// (which follows no redirect: a redirected POST would carry the
// credentials elsewhere).
func (a *Adapter) fetchToken(ctx context.Context) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(a.settings.Timeout))
	defer cancel()
	client := a.api.HTTP()
	base := client.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	hc := &http.Client{Transport: boundTransport{ctx: ctx, base: base}, CheckRedirect: client.CheckRedirect, Timeout: client.Timeout}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)

	var tok *oauth2.Token
	var err error
	switch a.settings.auth() {
	case authServiceAccount:
		sa, _ := a.settings.serviceAccount() // checked by Validate
		cfg := &jwt.Config{
			Email:        sa.ClientEmail,
			PrivateKey:   []byte(sa.PrivateKey),
			PrivateKeyID: sa.PrivateKeyID,
			Scopes:       []string{Scope},
			TokenURL:     a.settings.TokenURL,
		}
		tok, err = cfg.TokenSource(ctx).Token()
	case authRefreshToken:
		cfg := &oauth2.Config{
			ClientID:     a.settings.ClientID,
			ClientSecret: string(a.settings.ClientSecret),
			Endpoint:     oauth2.Endpoint{TokenURL: a.settings.TokenURL, AuthStyle: oauth2.AuthStyleInParams},
			Scopes:       []string{Scope},
		}
		tok, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: string(a.settings.RefreshToken)}).Token()
	default:
		return nil, &destinations.Error{Kind: destinations.Paused, Message: "google_ads: no credentials"}
	}
	if err != nil {
		return nil, a.tokenError(err)
	}
	if tok.AccessToken == "" {
		return nil, &destinations.Error{Kind: destinations.Retryable, Message: "google_ads: the token endpoint gave no access token"}
	}
	return tok, nil
}

// boundTransport sends every request within ctx: the JWT flow of
// golang.org/x/oauth2 posts without a context of its own.
type boundTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t boundTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(r.WithContext(t.ctx))
}

// tokenError classifies a failed token fetch: the endpoint's refusal of
// the credentials pauses the destination; its throttling, its failures
// and the network are retryable. The message carries the endpoint's
// error code and description, never its body or a credential.
func (a *Adapter) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return &destinations.Error{Kind: destinations.Retryable, Message: "google_ads: token endpoint: " + a.api.Redact(err.Error())}
	}
	status := 0
	var header http.Header
	if re.Response != nil {
		status, header = re.Response.StatusCode, re.Response.Header
	}
	code, desc := re.ErrorCode, re.ErrorDescription
	if code == "" {
		// The JWT flow leaves the RFC 6749 error object unread.
		var body struct {
			Code string `json:"error"`
			Desc string `json:"error_description"`
		}
		if json.Unmarshal(re.Body, &body) == nil {
			code, desc = body.Code, body.Desc
		}
	}
	msg := "google_ads: token endpoint: HTTP " + strconv.Itoa(status)
	if code != "" {
		msg += " " + code
	}
	if d := strings.TrimSpace(desc); d != "" {
		msg += ": " + d[:min(len(d), 200)]
	}
	e := &destinations.Error{Status: status, Code: a.api.Redact(code[:min(len(code), 64)]), Message: a.api.Redact(strings.ToValidUTF8(msg, ""))}
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500:
		e.Kind, e.RetryAfter = destinations.Retryable, destinations.RetryAfter(header, a.api.Now())
	default:
		// invalid_grant (a revoked refresh token, a deleted key),
		// invalid_client, unauthorized_client, invalid_scope: the
		// credentials are wrong until someone fixes them.
		e.Kind = destinations.Paused
	}
	return e
}
