package cli

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/loadgen"
)

func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-conns", "64,256", "-rate", "2000"}, ""},
		{[]string{"-url", "http://10.1.2.3:8080"}, "not a loopback"},
		{[]string{"-spawn"}, "need -redis"},
		{[]string{"-spawn", "-redis", "redis://10.0.0.1:6379"}, "not a loopback"},
		{[]string{"-spawn", "-url", "http://127.0.0.1:1", "-redis", "redis://127.0.0.1:1"}, "exclude each other"},
		{[]string{"-conns", "0"}, "positive"},
		{[]string{"-client", "net/http", "-bare-in-process"}, ""},
		{[]string{"-client", "curl"}, "neither raw nor net/http"},
		{[]string{"-visitor-events", "10"}, ""},
		{[]string{"-visitor-events", "0"}, "not within 1 to 1000000"},
		{[]string{"-reference", "answer"}, ""},
		{[]string{"-reference", "enqueue"}, "needs -redis"},
		{[]string{"-reference", "enqueue", "-redis", "redis://127.0.0.1:1"}, ""},
		{[]string{"-reference", "lua"}, "neither answer nor enqueue"},
		{[]string{"-against", "/tmp/tagway-old"}, "needs -spawn"},
		{[]string{"-spawn", "-redis", "redis://127.0.0.1:1", "-against", "/tmp/tagway-old"}, ""},
	} {
		_, err := parseBenchFlags(tc.args, io.Discard)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.err)
		}
	}
}

// A pair's verdict is the geometric mean of its rounds, each round the
// ratio of the two gateways' server CPU per request.
func TestBenchPairMeanOfRounds(t *testing.T) {
	res := func(us int) loadgen.Result {
		return loadgen.Result{Conns: 32, ServerCPUPerReq: time.Duration(us) * time.Microsecond}
	}
	var out strings.Builder
	p := &benchPrinter{w: &out}
	// 90/100 one way, 100/90 the other: an order bias that cancels out.
	p.pair([][2]loadgen.Result{{res(90), res(100)}, {res(100), res(90)}})
	if !strings.Contains(out.String(), "server CPU per request 100.0%") || !strings.Contains(out.String(), "90.0%") ||
		!strings.Contains(out.String(), "111.1%") {
		t.Errorf("%q", out.String())
	}
	out.Reset()
	p.pair([][2]loadgen.Result{{res(80), res(100)}, {res(45), res(50)}})
	if !strings.Contains(out.String(), "server CPU per request 84.9%") { // sqrt(0.8 * 0.9)
		t.Errorf("%q", out.String())
	}
}
