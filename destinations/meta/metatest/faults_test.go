package metatest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// send posts one goodEvent with id and returns the status (0 on a
// transport error) and body.
func send(t *testing.T, s *Server, client *http.Client, id string, custom map[string]any) (int, string) {
	t.Helper()
	ev := goodEvent()
	ev["event_id"] = id
	if custom != nil {
		ev["custom_data"] = custom
	}
	b, _ := json.Marshal(map[string]any{"data": []any{ev}, "access_token": token})
	req, _ := http.NewRequest(http.MethodPost, eventsURL(s), bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name     string
		faults   Faults
		status   int
		contains string
		recorded bool
	}{
		{"server error", Faults{ServerError: 1}, 500, "upstream error", false},
		{"429", Faults{TooManyRequests: 1}, 429, "Too Many", false},
		{"rate limit", Faults{RateLimit: 1}, 400, `"code":4,`, false},
		{"hang", Faults{Hang: 1, HangFor: 50 * time.Millisecond}, 504, "", false},
		{"reset", Faults{Reset: 1}, 0, "", true},
		{"none", Faults{}, 200, `"events_received":1`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFake(t)
			s.SetFaults(tc.faults)
			status, body := send(t, s, http.DefaultClient, "e1", nil)
			if status != tc.status || !bytes.Contains([]byte(body), []byte(tc.contains)) {
				t.Fatalf("got %d %q; want %d containing %q", status, body, tc.status, tc.contains)
			}
			if got := len(s.Events(pixel)) == 1; got != tc.recorded {
				t.Errorf("recorded %v, want %v", got, tc.recorded)
			}
			if acked := len(s.Acked()["e1"]) == 1; acked != (tc.status == 200) {
				t.Errorf("acknowledged %v; only a 200 that was written is", acked)
			}
		})
	}
}

func TestHangEndsWhenTheClientGivesUp(t *testing.T) {
	s := newFake(t)
	s.SetFaults(Faults{Hang: 1})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if status, _ := send(t, s, client, "e1", nil); status != 0 {
		t.Fatalf("status %d; want a client timeout", status)
	}
	if len(s.Events(pixel)) != 0 || s.FaultCounts()[FaultHang] != 1 {
		t.Errorf("events %d, counts %v", len(s.Events(pixel)), s.FaultCounts())
	}
}

func TestRejectMarkerAndAcks(t *testing.T) {
	s := newFake(t)
	s.SetFaults(Faults{RejectKey: "fault"})
	if status, body := send(t, s, http.DefaultClient, "bad", map[string]any{"value": 1, "currency": "EUR", "fault": "reject"}); status != 400 || !bytes.Contains([]byte(body), []byte(`"code":100`)) {
		t.Fatalf("marked event: %d %s", status, body)
	}
	for range 2 {
		if status, _ := send(t, s, http.DefaultClient, "good", nil); status != 200 {
			t.Fatal(status)
		}
	}
	acks := s.Acked()
	if len(acks["bad"]) != 0 || len(acks["good"]) != 2 || s.FaultCounts()[FaultRejected] != 1 {
		t.Errorf("acks %v counts %v", acks, s.FaultCounts())
	}
}

func TestFaultMixShares(t *testing.T) {
	s := newFake(t)
	s.SetFaults(Faults{ServerError: 0.25, TooManyRequests: 0.25, Seed: 7})
	for i := range 400 {
		send(t, s, http.DefaultClient, "e"+string(rune('a'+i%26)), nil)
	}
	c := s.FaultCounts()
	for _, k := range []string{FaultServerError, FaultTooManyRequests} {
		if c[k] < 60 || c[k] > 140 {
			t.Errorf("%s struck %d of 400 requests; want about 100", k, c[k])
		}
	}
}
