package cli

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestDeadlettersFlags(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	action, f, jsonOut, err := parseDeadlettersFlags([]string{"replay", "--site", "shop", "--destination", "meta",
		"--reason", "max_attempts", "--since", "2h", "--until", "2026-03-01T11:30:00Z", "--id", "1-0,2-0", "--id", "3-0", "--json"}, now, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if action != "replay" || !jsonOut || f.Site != "shop" || f.Destination != "meta" || f.Reason != "max_attempts" ||
		!f.Since.Equal(now.Add(-2*time.Hour)) || !f.Until.Equal(now.Add(-30*time.Minute)) ||
		strings.Join(f.IDs, " ") != "1-0 2-0 3-0" || f.Limit != 0 {
		t.Errorf("%s %+v", action, f)
	}
	if _, f, _, _ := parseDeadlettersFlags([]string{"list"}, now, io.Discard); f.Limit != 100 {
		t.Errorf("list default limit %d", f.Limit)
	}
	for _, args := range [][]string{
		nil, {"purge"}, {"list", "--reason", "nope"}, {"list", "--since", "yesterday"},
		{"drop", "--id", "1-0"}, {"list", "--site", "Bad Site"}, {"list", "extra"},
	} {
		if _, _, _, err := parseDeadlettersFlags(args, now, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
