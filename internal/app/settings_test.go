package app

import (
	"strings"
	"testing"

	"github.com/tagway/tagway/routing/dispatch"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestReadSettingsDefaultsAndQuickStart(t *testing.T) {
	s, err := ReadSettings(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr != ":8080" || !s.Demo || s.Durability.RedisURL != "" || strings.Join(s.SiteDomains, ",") != "localhost,127.0.0.1" {
		t.Fatalf("defaults: %+v", s)
	}
	cfg, err := loadConfig(s)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Sites) != 1 || len(cfg.Destinations) != 1 || len(cfg.Routes) != 1 {
		t.Fatalf("quick start config: %+v", cfg)
	}
	if got := string(cfg.Destinations[0].Settings); !strings.Contains(got, `"dry_run":true`) {
		t.Fatalf("no pixel id must mean dry-run, settings %s", got)
	}
}

func TestReadSettingsErrors(t *testing.T) {
	_, err := ReadSettings(envOf(map[string]string{
		"TAGWAY_DEMO":              "maybe",
		"TAGWAY_TRUSTED_PROXIES":   "10.0.0.0/8, not-a-cidr",
		"TAGWAY_LOG_LEVEL":         "loud",
		"TAGWAY_META_ACCESS_TOKEN": "EAAsecret",
	}))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"TAGWAY_DEMO", "not-a-cidr", "TAGWAY_LOG_LEVEL", "TAGWAY_META_PIXEL_ID"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "EAAsecret") {
		t.Errorf("error leaks the token: %v", err)
	}
}

func TestTrustedProxiesAcceptBareIPs(t *testing.T) {
	s, err := ReadSettings(envOf(map[string]string{"TAGWAY_TRUSTED_PROXIES": "127.0.0.1, 10.1.2.3/8, ::1"}))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, p := range s.TrustedProxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "127.0.0.1/32 10.0.0.0/8 ::1/128" {
		t.Fatalf("proxies %v", got)
	}
}

func TestQuickStartRejectsBadValues(t *testing.T) {
	s, _ := ReadSettings(envOf(map[string]string{"TAGWAY_INGEST_KEY": "short", "TAGWAY_CONSENT_DEFAULT": "perhaps"}))
	_, err := loadConfig(s)
	if err == nil || !strings.Contains(err.Error(), "ingest_keys") || !strings.Contains(err.Error(), "consent_default") {
		t.Fatalf("err = %v", err)
	}
}

// tagway sets the GC target only when GOGC leaves it to the runtime's
// default.
func TestGCPercentSetting(t *testing.T) {
	if s, _ := ReadSettings(envOf(nil)); s.GCPercent != defaultGCPercent {
		t.Errorf("GOGC unset: GCPercent %d; want %d", s.GCPercent, defaultGCPercent)
	}
	for _, v := range []string{"100", "off", "50"} {
		if s, _ := ReadSettings(envOf(map[string]string{"GOGC": v})); s.GCPercent != 0 {
			t.Errorf("GOGC=%s: GCPercent %d; want 0 (the runtime applied GOGC)", v, s.GCPercent)
		}
	}
}

// The heap goal floor is on by default, set or turned off by
// TAGWAY_HEAP_MIN, and off whenever GOGC is set (GOGC wins).
func TestHeapMinSetting(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want int64
	}{
		{nil, defaultHeapMin},
		{map[string]string{"TAGWAY_HEAP_MIN": "64MiB"}, 64 << 20},
		{map[string]string{"TAGWAY_HEAP_MIN": "0"}, 0},
		{map[string]string{"TAGWAY_HEAP_MIN": "off"}, 0},
		{map[string]string{"GOGC": "100"}, 0},
		{map[string]string{"GOGC": "100", "TAGWAY_HEAP_MIN": "64MiB"}, 0},
	} {
		s, err := ReadSettings(envOf(c.env))
		if err != nil || s.HeapMin != c.want {
			t.Errorf("%v: HeapMin %d, %v; want %d", c.env, s.HeapMin, err, c.want)
		}
	}
	if _, err := ReadSettings(envOf(map[string]string{"TAGWAY_HEAP_MIN": "-5"})); err == nil || !strings.Contains(err.Error(), "TAGWAY_HEAP_MIN") {
		t.Errorf("bad value: %v", err)
	}
}

func TestIdentitySetting(t *testing.T) {
	if s, _ := ReadSettings(envOf(nil)); !s.Identity {
		t.Error("identity enrichment is off by default; want on")
	}
	if s, _ := ReadSettings(envOf(map[string]string{"TAGWAY_IDENTITY": "off"})); s.Identity {
		t.Error("TAGWAY_IDENTITY=off left it on")
	}
	if _, err := ReadSettings(envOf(map[string]string{"TAGWAY_IDENTITY": "maybe"})); err == nil || !strings.Contains(err.Error(), "TAGWAY_IDENTITY") {
		t.Errorf("bad value: %v", err)
	}
}

func TestMemoryLimitSetting(t *testing.T) {
	s, err := ReadSettings(envOf(map[string]string{"TAGWAY_MEMORY_LIMIT": "96MiB"}))
	if err != nil || s.MemoryLimit != 96<<20 {
		t.Fatalf("96MiB: %d, %v", s.MemoryLimit, err)
	}
	if s, _ := ReadSettings(envOf(nil)); s.MemoryLimit != 0 {
		t.Errorf("default memory limit %d; want none", s.MemoryLimit)
	}
	if _, err := ReadSettings(envOf(map[string]string{"TAGWAY_MEMORY_LIMIT": "lots"})); err == nil || !strings.Contains(err.Error(), "TAGWAY_MEMORY_LIMIT") {
		t.Errorf("bad limit: %v", err)
	}
}

func TestLimitSettings(t *testing.T) {
	s, err := ReadSettings(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.Limits.IdentityMaxPerSite != dispatch.DefaultIdentityMaxPerSite || s.Limits.DeadLetters.MaxLen != dispatch.DefaultDeadLetterMaxLen ||
		s.Limits.DeadLetters.MaxAge != dispatch.DefaultDeadLetterMaxAge {
		t.Errorf("defaults: %+v", s.Limits)
	}
	s, err = ReadSettings(envOf(map[string]string{"TAGWAY_IDENTITY_MAX_PER_SITE": "0", "TAGWAY_DEADLETTER_MAX_LEN": "500", "TAGWAY_DEADLETTER_MAX_AGE": "0s"}))
	if err != nil || s.Limits.IdentityMaxPerSite >= 0 || s.Limits.DeadLetters.MaxLen != 500 || s.Limits.DeadLetters.MaxAge >= 0 {
		t.Errorf("set: %+v, %v", s.Limits, err)
	}
	for k, v := range map[string]string{"TAGWAY_IDENTITY_MAX_PER_SITE": "-1", "TAGWAY_DEADLETTER_MAX_LEN": "lots", "TAGWAY_DEADLETTER_MAX_AGE": "forever"} {
		if _, err := ReadSettings(envOf(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}
