package routing

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/routing/model"
)

func TestStoreApplyLoadAndLiveReload(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	writer := NewStore(rdb, nil)
	// The reader's safety-net reload is an hour away: only pub/sub can
	// bring it the change in time.
	reader := NewStore(rdb, nil, ReloadEvery(time.Hour))
	if reader.Snapshot() == nil || len(reader.Snapshot().Config().Sites) != 0 {
		t.Fatal("a new store must hold an empty, non-nil snapshot")
	}
	if err := reader.Load(ctx); err != nil {
		t.Fatalf("load of an absent config: %v", err)
	}

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- reader.Run(runCtx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// Let the subscription become active, so the change below arrives over
	// pub/sub and not through Run's initial reload.
	waitFor(t, "subscription", func() bool {
		n, _ := rdb.PubSubNumSub(ctx, ConfigChannel).Result()
		return n[ConfigChannel] == 1
	})

	cfg := testConfig(dest{id: "meta"})
	cfg.Sites[0].IngestKeys = []string{"ingest-key-0123456789"}
	cfg.Sites[0].Domains = []string{"Shop.Example"}
	if err := writer.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, ok := writer.Snapshot().Site(testSite); !ok {
		t.Fatal("the applying store's snapshot was not swapped")
	}
	waitFor(t, "the second store to see the change", func() bool {
		_, ok := reader.Snapshot().Destination("meta")
		return ok
	})
	if reader.Version() != 1 || writer.Version() != 1 {
		t.Errorf("versions = %d, %d; want 1, 1", reader.Version(), writer.Version())
	}
	site, _ := reader.Snapshot().Site(testSite)
	if site.Domains[0] != "shop.example" || len(site.IngestKeys) != 0 || len(site.IngestKeyHashes) != 1 {
		t.Errorf("stored site is not normalized: %+v", site)
	}
	raw, err := rdb.HGet(ctx, ConfigKey, "json").Result()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, "ingest-key-0123456789") {
		t.Error("the clear ingest key reached Redis")
	}
	groups, err := rdb.XInfoGroups(ctx, StreamKey(testSite)).Result()
	if err != nil || len(groups) != 1 || groups[0].Name != "meta" {
		t.Errorf("consumer groups = %+v, %v; want the group of meta", groups, err)
	}

	fresh := NewStore(rdb, nil)
	if err := fresh.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := fresh.Snapshot().SiteByIngestKey("ingest-key-0123456789"); !ok {
		t.Error("a loaded store does not recognize the ingest key")
	}

	// A second change, with the destination removed, reaches the reader too.
	if err := writer.Apply(ctx, testConfig()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the second change", func() bool { return reader.Version() == 2 })
	if _, ok := reader.Snapshot().Destination("meta"); ok {
		t.Error("the removed destination is still in the reader's snapshot")
	}
}

func TestStoreRefusesInvalidConfig(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := NewStore(rdb, nil)
	good := testConfig(dest{id: "meta"})
	if err := s.Apply(ctx, good); err != nil {
		t.Fatal(err)
	}
	changed := s.Changed()

	bad := testConfig(dest{id: "meta"}, dest{id: "tiktok"})
	bad.Routes = append(bad.Routes, model.Route{ID: "r-x", SiteID: testSite, DestinationID: "missing"})
	bad.Destinations[1].Type = ""
	err := s.Apply(ctx, bad)
	if err == nil {
		t.Fatal("an invalid config was applied")
	}
	for _, want := range []string{`unknown destination "missing"`, "destinations[1].type"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	select {
	case <-changed:
		t.Error("the snapshot was swapped")
	default:
	}
	if _, ok := s.Snapshot().Destination("tiktok"); ok || s.Version() != 1 {
		t.Error("the invalid config reached the snapshot")
	}
	if v, _ := rdb.HGet(ctx, ConfigKey, "version").Result(); v != "1" {
		t.Errorf("stored version = %q; want 1 (unchanged)", v)
	}
	groups, _ := rdb.XInfoGroups(ctx, StreamKey(testSite)).Result()
	if len(groups) != 1 {
		t.Errorf("groups = %+v; the invalid config created some", groups)
	}
	other := NewStore(rdb, nil)
	if err := other.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := other.Snapshot().Destination("meta"); !ok {
		t.Error("the stored config is not the old one")
	}

	// A corrupt stored config is refused by Load; the snapshot stays.
	if err := rdb.HSet(ctx, ConfigKey, "json", `{"sites":[{"id":"BAD"}]}`, "version", "7").Err(); err != nil {
		t.Fatal(err)
	}
	if err := other.Load(ctx); err == nil {
		t.Error("Load accepted an invalid stored config")
	}
	if _, ok := other.Snapshot().Destination("meta"); !ok {
		t.Error("a failed Load replaced the snapshot")
	}
}
