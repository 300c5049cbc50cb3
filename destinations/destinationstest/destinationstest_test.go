package destinationstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/destinations"
)

// toy is a small adapter whose faults can be switched on, to show that the
// kit catches each of them.
type toy struct {
	base   string
	client *http.Client
	faults string
}

func (a *toy) MaxBatch() int {
	if strings.Contains(a.faults, "batch") {
		return 50
	}
	return 10
}

func (a *toy) MaxEventAge(destinations.Event) time.Duration { return 7 * 24 * time.Hour }

func (a *toy) Deliver(ctx context.Context, batch []destinations.Event) []error {
	if len(batch) == 0 && !strings.Contains(a.faults, "empty") {
		return nil
	}
	ids := make([]string, len(batch))
	for i, e := range batch {
		ids[i] = e.EventID
		if strings.Contains(a.faults, "ids") {
			ids[i] = fmt.Sprint(i)
		}
	}
	body, _ := json.Marshal(ids)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/track?token=s3cr3t-token", bytes.NewReader(body))
	resp, err := a.client.Do(req)
	if err != nil {
		if strings.Contains(a.faults, "leak") {
			return destinations.All(len(batch), err)
		}
		return destinations.All(len(batch), destinations.RetryableError(0, "toy: unreachable"))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	msg := strings.ReplaceAll(strings.ToValidUTF8(string(b), ""), "s3cr3t-token", "[redacted]")
	if strings.Contains(a.faults, "split") {
		// Redacting first, then dropping invalid bytes, joins a token an
		// invalid byte split.
		msg = strings.ToValidUTF8(strings.ReplaceAll(string(b), "s3cr3t-token", "[redacted]"), "")
	}
	out := destinations.ClassifyHTTP(resp.StatusCode, resp.Header, time.Now(), "toy: "+msg)
	n := len(batch)
	if strings.Contains(a.faults, "short") {
		n--
	}
	return destinations.All(n, out)
}

func toyPlatform(faults string) Platform {
	return Platform{
		Name:     "toy",
		MaxBatch: 10,
		MaxAge:   7 * 24 * time.Hour,
		Secret:   "s3cr3t-token",
		New: func(baseURL string, deps destinations.Deps) (destinations.Destination, error) {
			return &toy{base: baseURL, client: deps.HTTP, faults: faults}, nil
		},
		Fake: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var ids []string
			if r.URL.Query().Get("token") != "s3cr3t-token" || json.NewDecoder(r.Body).Decode(&ids) != nil || len(ids) > 10 {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusOK)
		}),
		Events: func(n int) []destinations.Event {
			out := make([]destinations.Event, n)
			for i := range out {
				out[i] = destinations.Event{EventName: "Purchase", EventID: fmt.Sprintf("e%d", i)}
			}
			return out
		},
		DedupIDs: func(r *http.Request, body []byte) ([]string, error) {
			var ids []string
			return ids, json.Unmarshal(body, &ids)
		},
		Answers: []Answer{
			{Name: "server error", Status: 502, Want: destinations.Retryable},
			{Name: "bad request", Status: 400, Body: "no", Want: destinations.Permanent},
		},
	}
}

func TestKitPassesAConformingAdapter(t *testing.T) {
	Run(t, toyPlatform(""))
}

// TestKitCatchesFaults runs the kit on faulty adapters, each in a child
// test process (a failing kit must fail its own test), and expects each run
// to fail on the fault's check.
func TestKitCatchesFaults(t *testing.T) {
	if fault := os.Getenv("DESTINATIONSTEST_FAULT"); fault != "" {
		Run(t, toyPlatform(fault))
		return
	}
	for fault, check := range map[string]string{
		"batch": "MaxBatch",
		"ids":   "DeliversInOrderWithDedupIDs",
		"leak":  "NoSecretWhenUnreachable",
		"short": "Answers",
		"split": "NoSecretSplitByInvalidUTF8",
		"empty": "EmptyBatch",
	} {
		t.Run(fault, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestKitCatchesFaults$", "-test.v")
			cmd.Env = append(os.Environ(), "DESTINATIONSTEST_FAULT="+fault)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the kit passed an adapter with fault %q:\n%s", fault, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestKitCatchesFaults/"+check) {
				t.Fatalf("fault %q was not caught by %s:\n%s", fault, check, out)
			}
		})
	}
}
