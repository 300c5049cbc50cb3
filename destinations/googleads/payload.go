package googleads

import (
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/destinations/internal/platform"
)

// ingestRequest is the JSON body of POST /v1/events:ingest (proto3 JSON
// names).
type ingestRequest struct {
	Destinations []dmDestination `json:"destinations"`
	Events       []dmEvent       `json:"events"`
	Encoding     string          `json:"encoding,omitempty"`
	ValidateOnly bool            `json:"validateOnly,omitempty"`
}

// dmDestination is one conversion action of the operating account.
type dmDestination struct {
	Reference            string     `json:"reference"`
	LoginAccount         *dmAccount `json:"loginAccount,omitempty"`
	OperatingAccount     dmAccount  `json:"operatingAccount"`
	ProductDestinationID string     `json:"productDestinationId"`
}

// dmAccount is a ProductAccount.
type dmAccount struct {
	AccountType string `json:"accountType"`
	AccountID   string `json:"accountId"`
}

// dmEvent is one Event.
type dmEvent struct {
	DestinationReferences []string         `json:"destinationReferences"`
	TransactionID         string           `json:"transactionId,omitempty"`
	EventTimestamp        string           `json:"eventTimestamp"`
	UserData              *dmUserData      `json:"userData,omitempty"`
	Consent               *dmConsent       `json:"consent,omitempty"`
	AdIdentifiers         *dmAdIdentifiers `json:"adIdentifiers,omitempty"`
	Currency              string           `json:"currency,omitempty"`
	ConversionValue       *float64         `json:"conversionValue,omitempty"`
	EventSource           string           `json:"eventSource,omitempty"`
	EventDeviceInfo       *dmDeviceInfo    `json:"eventDeviceInfo,omitempty"`
}

// dmUserData is UserData: hashed identifiers, HEX-encoded.
type dmUserData struct {
	UserIdentifiers []dmUserIdentifier `json:"userIdentifiers"`
}

// dmUserIdentifier holds exactly one identifier.
type dmUserIdentifier struct {
	EmailAddress string `json:"emailAddress,omitempty"`
	PhoneNumber  string `json:"phoneNumber,omitempty"`
}

// dmConsent is the event's consent, CONSENT_GRANTED or CONSENT_DENIED.
type dmConsent struct {
	AdUserData        string `json:"adUserData,omitempty"`
	AdPersonalization string `json:"adPersonalization,omitempty"`
}

// dmAdIdentifiers holds the ad click.
type dmAdIdentifiers struct {
	Gclid  string `json:"gclid,omitempty"`
	Gbraid string `json:"gbraid,omitempty"`
	Wbraid string `json:"wbraid,omitempty"`
}

// dmDeviceInfo is the device of the event.
type dmDeviceInfo struct {
	UserAgent string `json:"userAgent,omitempty"`
	IPAddress string `json:"ipAddress,omitempty"`
}

// toEvent maps one canonical event to a Data Manager Event and the
// conversion action it counts as, or fails it as permanent when the API
// would refuse it.
func (a *Adapter) toEvent(e *destinations.Event, now time.Time) (dmEvent, string, error) {
	action, ok := a.settings.ConversionActions[e.EventName]
	if !ok {
		return dmEvent{}, "", &destinations.Error{Kind: destinations.Permanent, Code: "NO_CONVERSION_ACTION",
			Message: "google_ads: no conversion action is configured for event " + strconv.Quote(e.EventName)}
	}
	if err := a.api.CheckTime(e, now, MaxAge); err != nil {
		return dmEvent{}, "", err
	}
	at := time.Unix(e.EventTime, 0)
	if at.After(now) {
		at = now
	}
	ev := dmEvent{
		TransactionID:  transactionID(e),
		EventTimestamp: at.UTC().Format(time.RFC3339),
		EventSource:    eventSource(e.ActionSource),
		AdIdentifiers:  adIdentifiers(e),
	}
	c := e.Context.Consent
	if w, p := consentWord(c.AdUserData), consentWord(c.AdPersonalization); w != "" || p != "" {
		ev.Consent = &dmConsent{AdUserData: w, AdPersonalization: p}
	}
	if c.AdUserData != destinations.Denied {
		ev.UserData = userData(&e.UserData)
	}
	if ev.UserData == nil && ev.AdIdentifiers == nil {
		return dmEvent{}, "", &destinations.Error{Kind: destinations.Permanent, Code: "NO_IDENTIFIERS_PROVIDED",
			Message: "google_ads: event " + strconv.Quote(e.EventID) + " has neither a Google click id nor a hashed e-mail or phone"}
	}
	if cd := e.CustomData; cd != nil {
		if cd.Currency != "" {
			ev.Currency = strings.ToUpper(cd.Currency)
			if !currencyPattern.MatchString(ev.Currency) {
				return dmEvent{}, "", &destinations.Error{Kind: destinations.Permanent, Code: "INVALID_CURRENCY_CODE",
					Message: "google_ads: event " + strconv.Quote(e.EventID) + ": currency " + strconv.Quote(cd.Currency) + " is not ISO 4217"}
			}
		}
		if v := cd.Value; v != nil && !math.IsNaN(*v) && !math.IsInf(*v, 0) {
			ev.ConversionValue = v
		}
	}
	ev.EventDeviceInfo = deviceInfo(e)
	return ev, action, nil
}

// transactionID is the event's dedup key: the order id of a Purchase (the
// transaction id Google's tag sends on the order page), else the event id.
func transactionID(e *destinations.Event) string {
	if e.EventName == "Purchase" && e.CustomData != nil && e.CustomData.OrderID != "" {
		return e.CustomData.OrderID
	}
	return e.EventID
}

// eventSource maps action_source to EventSource.
func eventSource(s string) string {
	switch s {
	case "website":
		return "WEB"
	case "app":
		return "APP"
	case "physical_store":
		return "IN_STORE"
	case "phone_call":
		return "PHONE"
	case "":
		return ""
	}
	return "OTHER"
}

// consentWord is the API's word for a consent state; "" when not stated.
func consentWord(s destinations.ConsentState) string {
	switch s {
	case destinations.Granted:
		return "CONSENT_GRANTED"
	case destinations.Denied:
		return "CONSENT_DENIED"
	}
	return ""
}

// userData gathers the Google digests of u (the Google variants, else the
// digests the sender gave), e-mails first, at most MaxIdentifiers.
func userData(u *destinations.UserData) *dmUserData {
	var ids []dmUserIdentifier
	for _, d := range platform.Digests(u.EmGoogle, u.Em, 0) {
		ids = append(ids, dmUserIdentifier{EmailAddress: d})
	}
	for _, d := range platform.Digests(u.PhE164, u.Ph, 0) {
		ids = append(ids, dmUserIdentifier{PhoneNumber: d})
	}
	if len(ids) == 0 {
		return nil
	}
	return &dmUserData{UserIdentifiers: ids[:min(len(ids), MaxIdentifiers)]}
}

// adIdentifiers gives the event's Google click: of gclid, gbraid and
// wbraid (and the gclid of the _gcl_aw cookie), the most recent one
// captured no later than the event and within MaxAge of it. Google takes
// one click per conversion.
func adIdentifiers(e *destinations.Event) *dmAdIdentifiers {
	eventMs := e.EventTime * 1000
	type click struct {
		kind, value string
		at          int64
	}
	var best *click
	consider := func(kind, value string, at int64) {
		if value == "" || len(value) > 512 || at > eventMs+60_000 || at > 0 && eventMs-at > MaxAge.Milliseconds() {
			return
		}
		if best == nil || at > best.at {
			best = &click{kind, value, at}
		}
	}
	for _, kind := range []string{"gclid", "gbraid", "wbraid"} {
		if c, ok := e.Context.ClickIDs[kind]; ok {
			consider(kind, c.Value, c.At)
		}
	}
	if best == nil {
		// _gcl_aw is "GCL.<Unix seconds>.<gclid>".
		if parts := strings.SplitN(e.Context.Cookies["_gcl_aw"], ".", 3); len(parts) == 3 && parts[0] == "GCL" {
			if secs, err := strconv.ParseInt(parts[1], 10, 64); err == nil {
				consider("gclid", parts[2], secs*1000)
			}
		}
	}
	if best == nil {
		return nil
	}
	switch best.kind {
	case "gbraid":
		return &dmAdIdentifiers{Gbraid: best.value}
	case "wbraid":
		return &dmAdIdentifiers{Wbraid: best.value}
	}
	return &dmAdIdentifiers{Gclid: best.value}
}

// deviceInfo gives the event's user agent, and its IP address unless the
// visitor is in the EEA, the UK or Switzerland, or the country is unknown:
// Google Ads takes no IP address of such users.
func deviceInfo(e *destinations.Event) *dmDeviceInfo {
	var d dmDeviceInfo
	d.UserAgent = e.UserData.ClientUserAgent
	country := strings.ToUpper(e.Context.Country)
	if ip, err := netip.ParseAddr(e.UserData.ClientIPAddress); err == nil && len(country) == 2 && !slices.Contains(eeaUKCH, country) {
		d.IPAddress = ip.String()
	}
	if d == (dmDeviceInfo{}) {
		return nil
	}
	return &d
}
