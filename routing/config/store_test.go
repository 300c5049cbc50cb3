package config

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tagway/tagway/internal/redistest"
	"github.com/tagway/tagway/internal/secrets"
	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/internal/routingtest"
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
	routingtest.WaitFor(t, "subscription", func() bool {
		n, _ := rdb.PubSubNumSub(ctx, routing.ConfigChannel).Result()
		return n[routing.ConfigChannel] == 1
	})

	cfg := routingtest.Config(routingtest.Dest{ID: "meta"})
	cfg.Sites[0].IngestKeys = []string{"ingest-key-0123456789"}
	cfg.Sites[0].Domains = []string{"Shop.Example"}
	if err := writer.Apply(ctx, cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if _, ok := writer.Snapshot().Site(routingtest.Site); !ok {
		t.Fatal("the applying store's snapshot was not swapped")
	}
	routingtest.WaitFor(t, "the second store to see the change", func() bool {
		_, ok := reader.Snapshot().Destination("meta")
		return ok
	})
	if reader.Version() != 1 || writer.Version() != 1 {
		t.Errorf("versions = %d, %d; want 1, 1", reader.Version(), writer.Version())
	}
	site, _ := reader.Snapshot().Site(routingtest.Site)
	if site.Domains[0] != "shop.example" || len(site.IngestKeys) != 0 || len(site.IngestKeyHashes) != 1 {
		t.Errorf("stored site is not normalized: %+v", site)
	}
	all, err := rdb.HGetAll(ctx, routing.ConfigKey).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"site:" + routingtest.Site, "destination:meta", "route:to-meta", "version"} {
		if _, ok := all[f]; !ok {
			t.Errorf("field %q missing from %s: resources are stored one per field", f, routing.ConfigKey)
		}
	}
	if strings.Contains(fmt.Sprint(all), "ingest-key-0123456789") {
		t.Error("the clear ingest key reached Redis")
	}
	groups, err := rdb.XInfoGroups(ctx, routing.StreamKey(routingtest.Site)).Result()
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

	// Applying the same config again changes nothing: no new version.
	if err := writer.Apply(ctx, cfg); err != nil || writer.Version() != 1 {
		t.Errorf("re-apply: version %d, %v; want 1 (idempotent)", writer.Version(), err)
	}

	// A second change, with the destination removed, reaches the reader too.
	if err := writer.Apply(ctx, routingtest.Config()); err != nil {
		t.Fatal(err)
	}
	routingtest.WaitFor(t, "the second change", func() bool { return reader.Version() == 2 })
	if _, ok := reader.Snapshot().Destination("meta"); ok {
		t.Error("the removed destination is still in the reader's snapshot")
	}
	if _, ok := rdb.HGet(ctx, routing.ConfigKey, "destination:meta").Result(); ok == nil {
		t.Error("the removed destination's field is still stored")
	}
}

func TestStoreRefusesInvalidConfig(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	s := NewStore(rdb, nil)
	good := routingtest.Config(routingtest.Dest{ID: "meta"})
	if err := s.Apply(ctx, good); err != nil {
		t.Fatal(err)
	}
	changed := s.Changed()

	bad := routingtest.Config(routingtest.Dest{ID: "meta"}, routingtest.Dest{ID: "tiktok"})
	bad.Routes = append(bad.Routes, model.Route{ID: "r-x", SiteID: routingtest.Site, DestinationID: "missing"})
	bad.Destinations[1].Type = ""
	err := s.Apply(ctx, bad)
	if err == nil {
		t.Fatal("an invalid config was applied")
	}
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Errorf("err %T is not an *InvalidError", err)
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
	if v, _ := rdb.HGet(ctx, routing.ConfigKey, "version").Result(); v != "1" {
		t.Errorf("stored version = %q; want 1 (unchanged)", v)
	}
	if n, _ := rdb.XLen(ctx, routing.AuditKey).Result(); n != 3 {
		t.Errorf("audit entries = %d; want 3 (the first apply only)", n)
	}
	groups, _ := rdb.XInfoGroups(ctx, routing.StreamKey(routingtest.Site)).Result()
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

	// A corrupt stored resource is refused by Load; the snapshot stays.
	if err := rdb.HSet(ctx, routing.ConfigKey, "site:BAD", `{"id":"BAD"}`, "version", "7").Err(); err != nil {
		t.Fatal(err)
	}
	if err := other.Load(ctx); err == nil {
		t.Error("Load accepted an invalid stored config")
	}
	if _, ok := other.Snapshot().Destination("meta"); !ok {
		t.Error("a failed Load replaced the snapshot")
	}
}

// TestStoreLegacyConfig reads the single-document layout of the first
// versions, and the first write moves it to one field per resource.
func TestStoreLegacyConfig(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	legacy := `{"sites":[{"id":"shop","domains":["shop.example"]}],"destinations":[{"id":"m","site":"shop","type":"fake","settings":{}}]}`
	if err := rdb.HSet(ctx, routing.ConfigKey, "json", legacy, "version", "4").Err(); err != nil {
		t.Fatal(err)
	}
	s := NewStore(rdb, nil)
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Snapshot().Destination("m"); !ok || s.Version() != 4 {
		t.Fatalf("legacy config not loaded (version %d)", s.Version())
	}
	_, err := s.Update(ctx, Actor{ID: "root"}, UpdateOptions{}, func(st *State) error {
		st.Config.Tenants = append(st.Config.Tenants, model.Tenant{ID: "agency"})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all, _ := rdb.HGetAll(ctx, routing.ConfigKey).Result()
	if _, ok := all["json"]; ok || all["destination:m"] == "" || all["tenant:agency"] == "" || all["version"] != "5" {
		t.Errorf("after the first write: %v", all)
	}
}

// TestStoreConcurrentUpdatesLoseNothing: many writers adding to one site at
// once all land, because WATCH makes a writer that raced start over.
func TestStoreConcurrentUpdatesLoseNothing(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	if err := NewStore(rdb, nil).Apply(ctx, routingtest.Config()); err != nil {
		t.Fatal(err)
	}
	const writers = 6
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			s := NewStore(rdb, nil) // one per replica
			_, err := s.Update(ctx, Actor{ID: fmt.Sprint("w", i)}, UpdateOptions{}, func(st *State) error {
				st.Config.Sites[0].AllowedOrigins = append(st.Config.Sites[0].AllowedOrigins, fmt.Sprintf("https://o%d.example", i))
				return nil
			})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !errors.Is(err, ErrContention) {
			t.Fatal(err)
		}
	}
	st, err := NewStore(rdb, nil).Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ok := 0
	for range st.Config.Sites[0].AllowedOrigins {
		ok++
	}
	if ok != int(st.Version())-1 || ok < 1 {
		t.Errorf("%d origins stored at version %d: an update was lost", ok, st.Version())
	}
}

func TestStoreSecretsEncryptedAtRestAndRotated(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	const token = "EAAsecretTOKEN-9876"
	oldKey, newKey := strings.Repeat("11", 32), strings.Repeat("22", 32)
	oldRing, _ := secrets.NewKeyring(oldKey)
	fields := model.SecretFields{"fake": {"token"}}
	s := NewStore(rdb, nil, WithKeyring(oldRing), WithSecretFields(fields))
	cfg := routingtest.Config(routingtest.Dest{ID: "meta", Settings: `{"name":"meta","token":"` + token + `"}`})
	if _, err := s.Update(ctx, Actor{ID: "k1"}, UpdateOptions{}, func(st *State) error { st.Config = cfg; return nil }); err != nil {
		t.Fatal(err)
	}
	stored, _ := rdb.HGet(ctx, routing.ConfigKey, "destination:meta").Result()
	if strings.Contains(stored, token) || !strings.Contains(stored, `"token":"tw1.`+oldRing.CurrentKeyID()+".") {
		t.Fatalf("stored destination %s: the token is not sealed", stored)
	}
	audit, _ := rdb.XRange(ctx, routing.AuditKey, "-", "+").Result()
	if strings.Contains(fmt.Sprint(audit), token) || !strings.Contains(fmt.Sprint(audit), "settings.token") {
		t.Errorf("audit %v: want the field name and never the value", audit)
	}
	d, _ := s.Snapshot().Destination("meta")
	if !strings.Contains(string(d.Settings), token) {
		t.Error("the snapshot lacks the clear token the adapter needs")
	}

	// A replica without the key keeps the destination idle, never sending
	// without its credentials.
	keyless := NewStore(rdb, nil, WithSecretFields(fields))
	if err := keyless.Load(ctx); err != nil {
		t.Fatal(err)
	}
	d, _ = keyless.Snapshot().Destination("meta")
	if !strings.Contains(string(d.Settings), secretErrorField) || strings.Contains(string(d.Settings), "tw1.") {
		t.Errorf("keyless replica settings %s", d.Settings)
	}
	// ... and it refuses to store a new secret through the API path.
	_, err := keyless.Update(ctx, Actor{ID: "k1"}, UpdateOptions{}, func(st *State) error {
		st.Config.Destinations[0].Settings = []byte(`{"name":"meta","token":"another-token-123"}`)
		return nil
	})
	if !errors.Is(err, ErrNoSecretKey) || strings.Contains(err.Error(), "another-token") {
		t.Errorf("keyless secret write: %v; want ErrNoSecretKey without the value", err)
	}

	// Rotation: new key current, old key previous. Reads work; a write
	// that does not touch the token keeps the old ciphertext until
	// Reencrypt rewrites it under the new key.
	rotated, _ := secrets.NewKeyring(newKey, oldKey)
	r := NewStore(rdb, nil, WithKeyring(rotated), WithSecretFields(fields))
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	d, _ = r.Snapshot().Destination("meta")
	if !strings.Contains(string(d.Settings), token) {
		t.Fatalf("rotated keyring cannot read: %s", d.Settings)
	}
	if _, err := r.Update(ctx, Actor{ID: "root"}, UpdateOptions{Reencrypt: true}, func(*State) error { return nil }); err != nil {
		t.Fatal(err)
	}
	stored, _ = rdb.HGet(ctx, routing.ConfigKey, "destination:meta").Result()
	if !strings.Contains(stored, `"token":"tw1.`+rotated.CurrentKeyID()+".") {
		t.Fatalf("not re-encrypted under the new key: %s", stored)
	}
	newOnly, _ := secrets.NewKeyring(newKey)
	n := NewStore(rdb, nil, WithKeyring(newOnly), WithSecretFields(fields))
	if err := n.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if d, _ := n.Snapshot().Destination("meta"); !strings.Contains(string(d.Settings), token) {
		t.Errorf("after re-encryption the previous key is still needed: %s", d.Settings)
	}
}

// TestStoreLocalSecrets: without a keyring, the operator's config file keeps
// its secrets in process memory; Redis holds a placeholder.
func TestStoreLocalSecrets(t *testing.T) {
	ctx := context.Background()
	rdb := redistest.Start(t).Client()
	const token = "EAAlocalTOKEN-1234"
	fields := model.SecretFields{"fake": {"token"}}
	s := NewStore(rdb, nil, WithSecretFields(fields))
	cfg := routingtest.Config(routingtest.Dest{ID: "meta", Settings: `{"name":"meta","token":"` + token + `"}`})
	if err := s.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	all, _ := rdb.HGetAll(ctx, routing.ConfigKey).Result()
	if strings.Contains(fmt.Sprint(all), token) || !strings.Contains(all["destination:meta"], localSecret) {
		t.Fatalf("stored %v", all)
	}
	d, _ := s.Snapshot().Destination("meta")
	if !strings.Contains(string(d.Settings), token) {
		t.Errorf("snapshot settings %s", d.Settings)
	}
	// A replica given the same file sees the same.
	other := NewStore(rdb, nil, WithSecretFields(fields))
	if err := other.Apply(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if d, _ := other.Snapshot().Destination("meta"); !strings.Contains(string(d.Settings), token) || other.Version() != 1 {
		t.Errorf("replica settings %s at version %d", d.Settings, other.Version())
	}
}

func TestStoreRetiringIngestKeyExpires(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clk := func() time.Time { return now }
	cfg := routingtest.Config()
	cfg.Sites[0].IngestKeys = []string{"new-key-0123456789"}
	cfg.Sites[0].RetiringIngestKeys = []model.RetiringKey{{Hash: model.HashKey("old-key-0123456789"), Until: now.Add(time.Hour)}}
	snap, err := model.NewSnapshotAt(cfg, clk)
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]bool{"new-key-0123456789": true, "old-key-0123456789": true} {
		if _, ok := snap.SiteByIngestKey(key); ok != want {
			t.Errorf("%s before the deadline: %v", key, ok)
		}
	}
	now = now.Add(time.Hour)
	if _, ok := snap.SiteByIngestKey("old-key-0123456789"); ok {
		t.Error("the retired key is valid after its deadline")
	}
	if _, ok := snap.SiteByIngestKey("new-key-0123456789"); !ok {
		t.Error("the new key stopped working")
	}
}
