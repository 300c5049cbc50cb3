package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tagway/tagway/routing"
)

// TestGracefulShutdown starts a gateway, shuts it down while a delivery is
// in flight, and checks the order of things: /readyz turns 503 while the
// listener still accepts, then the listener closes, and the delivery the
// platform acknowledged during shutdown is recorded (nothing left pending,
// nothing sent twice).
func TestGracefulShutdown(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var requests atomic.Int32
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Data []json.RawMessage `json:"data"`
		}
		raw, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(raw, &body)
		if requests.Add(1) == 1 {
			close(started)
		}
		<-release
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"events_received":%d,"messages":[],"fbtrace_id":"T1"}`, len(body.Data))
	}))
	defer graph.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()

	g := startGateway(t, gatewayOptions{meta: true, env: map[string]string{
		"TAGWAY_META_GRAPH_URL": graph.URL,
		"TAGWAY_DRAIN_DELAY":    "1s",
	}})
	base := g.URL

	body := fmt.Sprintf(`{"data":[{"event_name":"Purchase","event_time":%d,"event_id":"shutdown-1","action_source":"website",
		"event_source_url":"https://shop.example/thank-you","user_data":{"em":"jane@example.com","client_user_agent":"Mozilla/5.0 test","client_ip_address":"203.0.113.9"},
		"custom_data":{"value":10,"currency":"EUR"}}]}`, time.Now().Unix())
	resp, got := post(t, base+"/v1/events", map[string]string{"Authorization": "Bearer " + testIngestKey}, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ingest: %d %v", resp.StatusCode, got)
	}
	if code := readyz(base); code != http.StatusOK {
		t.Fatalf("readyz before shutdown = %d", code)
	}
	<-started // the delivery is in flight at the platform

	g.Shutdown()
	sawDraining := false
	deadline := time.Now().Add(20 * time.Second)
	for {
		code := readyz(base)
		if code == http.StatusServiceUnavailable {
			sawDraining = true
		}
		if code == -1 {
			break // the listener is closed
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener never closed (last readyz %d)", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawDraining {
		t.Fatal("/readyz never answered 503 before the listener closed")
	}
	// The platform acknowledges the in-flight batch during the shutdown.
	close(release)
	if err := g.Wait(); err != nil {
		t.Fatalf("run: %v", err)
	}

	rdb := g.Redis.Client()
	groups, err := rdb.XInfoGroups(context.Background(), routing.StreamKey("default")).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Pending != 0 || g.Lag != 0 {
			t.Errorf("group %s: %d pending, lag %d after shutdown; the acknowledged delivery was not recorded", g.Name, g.Pending, g.Lag)
		}
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("the platform got %d requests; want 1", n)
	}
}

// readyz returns the status of GET /readyz, or -1 when nothing listens.
func readyz(base string) int {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(base + "/readyz")
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(err.Error(), "connection refused") {
			return -1
		}
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
