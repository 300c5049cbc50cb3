// Package serverevent is the canonical event in the wire form of a Meta
// Conversions API server event, which both the meta destination and the
// webhook destination send.
package serverevent

import "github.com/tagway/tagway/destinations"

// Event is one server event: the canonical event's fields without tagway's
// Context, in Meta's field names.
type Event struct {
	EventName                    string                   `json:"event_name"`
	EventTime                    int64                    `json:"event_time"`
	EventID                      string                   `json:"event_id,omitempty"`
	EventSourceURL               string                   `json:"event_source_url,omitempty"`
	ReferrerURL                  string                   `json:"referrer_url,omitempty"`
	ActionSource                 string                   `json:"action_source,omitempty"`
	OptOut                       bool                     `json:"opt_out,omitempty"`
	UserData                     destinations.UserData    `json:"user_data"`
	CustomData                   *destinations.CustomData `json:"custom_data,omitempty"`
	DataProcessingOptions        []string                 `json:"data_processing_options,omitempty"`
	DataProcessingOptionsCountry *int                     `json:"data_processing_options_country,omitempty"`
	DataProcessingOptionsState   *int                     `json:"data_processing_options_state,omitempty"`
}

// From maps e. Its user data keeps Meta's own digests, em and ph, and drops
// the variants other platforms normalize differently (PhE164, EmGoogle).
func From(e *destinations.Event) Event {
	ud := e.UserData
	ud.PhE164, ud.EmGoogle = nil, nil
	return Event{
		EventName:                    e.EventName,
		EventTime:                    e.EventTime,
		EventID:                      e.EventID,
		EventSourceURL:               e.EventSourceURL,
		ReferrerURL:                  e.ReferrerURL,
		ActionSource:                 e.ActionSource,
		OptOut:                       e.OptOut,
		UserData:                     ud,
		CustomData:                   e.CustomData,
		DataProcessingOptions:        e.DataProcessingOptions,
		DataProcessingOptionsCountry: e.DataProcessingOptionsCountry,
		DataProcessingOptionsState:   e.DataProcessingOptionsState,
	}
}
