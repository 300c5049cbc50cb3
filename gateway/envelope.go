package gateway

// The slow path of /collect's request envelope: a body fastCollect did not
// take is read key by key, leniently (a value of the wrong type is dropped
// and recorded, an events array sent as a JSON string is read), and its
// events are counted as they come, so that a request with too many is
// refused before the rest is read.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"

	"github.com/tagway/tagway/destinations"
)

// readEnvelope reads a /collect body: a JSON object whose events are kept
// raw, at most maxEvents of them (more is a 413). fixes are those of the
// request's own fields. Only a body that is not a JSON object, or whose
// events are not a list, is an error.
func readEnvelope(body []byte, maxEvents int) (*collectRequest, []fix, *apiError) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	notObject := &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Message: "the body must be a JSON object"}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil, &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Message: "empty body: a JSON object is required"}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, nil, streamError(err, "")
		}
		return nil, nil, notObject
	}
	req := &collectRequest{}
	var fixes []fix
	note := func(field, reason string) { fixes = append(fixes, fix{field, reason}) }
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, streamError(err, "")
		}
		key, _ := t.(string)
		if key == "events" {
			events, stringified, e := readEvents(dec, maxEvents)
			if e != nil {
				return nil, nil, e
			}
			if stringified {
				note("events", reasonStringifiedArray)
			}
			req.Events = events
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, streamError(err, "")
		}
		switch key {
		case "vid", "url", "referrer":
			var s string
			if json.Unmarshal(raw, &s) != nil {
				note(key, reasonInvalid)
				s = ""
			}
			switch key {
			case "vid":
				req.VID = s
			case "url":
				req.URL = s
			default:
				req.Referrer = s
			}
		case "consent":
			req.Consent = readConsent(raw, note)
		case "sent_at":
			ms, ok := readSentAt(raw)
			if !ok && string(raw) != "null" {
				note("sent_at", reasonInvalid)
			}
			req.SentAt = ms
		case "debug":
			_ = json.Unmarshal(raw, &req.Debug)
		default:
			note(key, reasonUnknownField)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, streamError(err, "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Message: "unexpected data after the JSON value"}
	}
	return req, fixes, nil
}

// readEvents reads the value of "events": a list, or a list sent as a JSON
// string (stringified), each element kept raw; null is no events. More
// than maxEvents is a 413, before the rest is read.
func readEvents(dec *json.Decoder, maxEvents int) (events []json.RawMessage, stringified bool, e *apiError) {
	notList := &apiError{Status: http.StatusBadRequest, Code: codeInvalidJSON, Field: "events", Message: "must be an array of events"}
	t, err := dec.Token()
	if err != nil {
		return nil, false, streamError(err, "events.")
	}
	switch v := t.(type) {
	case json.Delim:
		if v != '[' {
			return nil, false, notList
		}
		events, e = readElements(dec, maxEvents)
		return events, false, e
	case string:
		inner := json.NewDecoder(strings.NewReader(v))
		if t, err := inner.Token(); err != nil || t != json.Delim('[') {
			return nil, false, notList
		}
		if events, e = readElements(inner, maxEvents); e != nil {
			return nil, true, e
		}
		if _, err := inner.Token(); err != io.EOF {
			return nil, true, notList
		}
		return events, true, nil
	case nil:
		return nil, false, nil
	}
	return nil, false, notList
}

// readElements reads the elements of an array whose '[' dec has read, and
// its ']'.
func readElements(dec *json.Decoder, maxEvents int) ([]json.RawMessage, *apiError) {
	var events []json.RawMessage
	for dec.More() {
		if len(events) == maxEvents {
			return nil, tooManyEvents(maxEvents)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, streamError(err, "events.")
		}
		events = append(events, raw)
	}
	if _, err := dec.Token(); err != nil {
		return nil, streamError(err, "events.")
	}
	return events, nil
}

// readConsent reads the consent object leniently: a purpose whose value is
// not a string is dropped with a fix (collectConsent judges the words).
func readConsent(raw json.RawMessage, note func(field, reason string)) *wireConsent {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		if string(raw) != "null" {
			note("consent", reasonInvalid)
		}
		return nil
	}
	c := &wireConsent{}
	for k, v := range m {
		var dst *string
		switch k {
		case "ad_storage":
			dst = &c.AdStorage
		case "ad_user_data":
			dst = &c.AdUserData
		case "ad_personalization":
			dst = &c.AdPersonalization
		case "analytics_storage":
			dst = &c.AnalyticsStorage
		default:
			note("consent."+k, reasonUnknownField)
			continue
		}
		if json.Unmarshal(v, dst) != nil {
			// Not a word the gateway can read: not a grant.
			*dst = "invalid"
		}
	}
	return c
}

// readSentAt reads sent_at: Unix milliseconds, as a JSON number; false
// when it is not one.
func readSentAt(raw json.RawMessage) (int64, bool) {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) > 1<<62 {
		return 0, false
	}
	return int64(math.Round(f)), true
}

// collectConsent resolves a browser's consent with the site's default for
// the purposes it did not state. A word other than granted or denied
// counts as denied, recorded as a fix: never a grant the visitor did not
// give.
func collectConsent(in *wireConsent, siteDefault string, out *batchOutcomes) destinations.Consent {
	return mergeConsent(in, siteDefault, func(field string) { out.requestFix(field, reasonInvalid) })
}

// sentAtUsable reports whether a sent_at can correct the clock: Unix
// milliseconds (a value of seconds would be read as 1970).
func sentAtUsable(ms int64) bool { return ms > millisecondsThreshold }

// streamError is jsonError for an error in the middle of the body, where
// its end means it was cut short.
func streamError(err error, prefix string) *apiError {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return jsonError(err, prefix)
}
