package config

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
)

// TestResultsKept is how many test-mode outcomes are kept per route.
const TestResultsKept = 50

// TestResult is one outcome of a test-mode delivery.
type TestResult struct {
	At            time.Time `json:"at"`
	EventName     string    `json:"event_name"`
	EventID       string    `json:"event_id"`
	TestEventCode string    `json:"test_event_code,omitempty"`
	// Outcome is delivered, retry or dead.
	Outcome string `json:"outcome"`
	Message string `json:"message,omitempty"`
}

// ReadTestResults returns the last test-mode outcomes of a route, newest
// first.
func ReadTestResults(ctx context.Context, rdb redis.UniversalClient, siteID, routeID string) ([]TestResult, error) {
	raw, err := rdb.LRange(ctx, routing.TestResultsKey(siteID, routeID), 0, TestResultsKept-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]TestResult, 0, len(raw))
	for _, s := range raw {
		var r TestResult
		if json.Unmarshal([]byte(s), &r) == nil {
			out = append(out, r)
		}
	}
	return out, nil
}

// TestResults returns the last test-mode outcomes of a route, newest first.
func (s *Store) TestResults(ctx context.Context, siteID, routeID string) ([]TestResult, error) {
	return ReadTestResults(ctx, s.rdb, siteID, routeID)
}
