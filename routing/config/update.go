package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing"
	"github.com/tagway/tagway/routing/model"
)

// Kind names a kind of stored resource.
type Kind string

// The stored kinds. Each resource is one field "<kind>:<id>" of
// routing.ConfigKey.
const (
	KindTenant      Kind = "tenant"
	KindSite        Kind = "site"
	KindDestination Kind = "destination"
	KindRoute       Kind = "route"
	KindKey         Kind = "key"
)

// kinds in dependency order.
var kinds = []Kind{KindTenant, KindSite, KindDestination, KindRoute, KindKey}

// maxUpdateAttempts bounds the optimistic retries of one Update.
const maxUpdateAttempts = 8

// Errors of Update.
var (
	// ErrNoSecretKey: a new secret was given while TAGWAY_SECRET_KEY is unset.
	ErrNoSecretKey = errors.New("secrets cannot be stored: TAGWAY_SECRET_KEY is not set on this gateway")
	// ErrContention: too many concurrent writers; the caller may retry.
	ErrContention = errors.New("routing: the configuration kept changing during the update; retry")
)

// InvalidError wraps the validation problems of a resulting configuration.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return "invalid configuration: " + e.Err.Error() }

// Unwrap returns the joined validation errors.
func (e *InvalidError) Unwrap() error { return e.Err }

// Actor is who makes a change, as the audit log records it: a key id, never
// a secret.
type Actor struct {
	ID     string // "root", "config" or an API key id
	Tenant string // empty for the operator
}

// State is the stored configuration as an Update function sees and edits
// it: secrets in clear, API keys, and the ETag of every stored resource.
type State struct {
	Config model.Config
	Keys   []model.APIKey

	raw     map[string]string // field → stored value
	version int64
}

// ETag returns the entity tag of a stored resource ("" when absent): a
// digest of its stored (encrypted) form, quoted as HTTP wants it.
func (s *State) ETag(kind Kind, id string) string {
	raw, ok := s.raw[field(kind, id)]
	if !ok {
		return ""
	}
	return etagOf(raw)
}

// Version is the configuration version the state was read at.
func (s *State) Version() int64 { return s.version }

func etagOf(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return `"` + hex.EncodeToString(sum[:10]) + `"`
}

func field(kind Kind, id string) string { return string(kind) + ":" + id }

// Change is one resource created, updated or deleted by an Update.
type Change struct {
	Op     string   `json:"op"` // create, update, delete
	Kind   Kind     `json:"kind"`
	ID     string   `json:"id"`
	Tenant string   `json:"tenant,omitempty"`
	Fields []string `json:"fields,omitempty"` // names of the changed fields, never values
	ETag   string   `json:"-"`
}

// UpdateOptions tune one Update.
type UpdateOptions struct {
	// DryRun computes and validates the changes without writing them.
	DryRun bool
	// LocalSecrets lets secrets be kept in process memory when no keyring
	// is set (the operator's config file); the admin API leaves it false.
	LocalSecrets bool
	// Reencrypt rewrites every destination's secrets under the current key.
	Reencrypt bool
}

// UpdateResult says what an Update changed.
type UpdateResult struct {
	Version int64
	Changes []Change
}

// ETag returns the new entity tag of a resource changed by the update.
func (r *UpdateResult) ETag(kind Kind, id string) string {
	for _, c := range r.Changes {
		if c.Kind == kind && c.ID == id {
			return c.ETag
		}
	}
	return ""
}

// Read returns the stored configuration with secrets in clear. Callers must
// never send those to a client.
func (s *Store) Read(ctx context.Context) (*State, error) {
	all, err := s.rdb.HGetAll(ctx, routing.ConfigKey).Result()
	if err != nil {
		return nil, fmt.Errorf("routing: read config: %w", err)
	}
	return s.decodeState(all)
}

// Update reads the stored configuration, lets fn edit it, validates the
// whole result and commits the difference in one MULTI/EXEC guarded by
// WATCH, with an audit entry per changed resource; concurrent writers make
// it start over with fresh state (fn may run more than once). An error from
// fn is returned as is and nothing is written. An invalid result is an
// *InvalidError. When nothing changed, nothing is written.
func (s *Store) Update(ctx context.Context, actor Actor, opts UpdateOptions, fn func(*State) error) (*UpdateResult, error) {
	for range maxUpdateAttempts {
		var res *UpdateResult
		var next *State
		var local map[string]map[string]string
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			all, err := tx.HGetAll(ctx, routing.ConfigKey).Result()
			if err != nil {
				return fmt.Errorf("routing: read config: %w", err)
			}
			cur, err := s.decodeState(all)
			if err != nil {
				return err
			}
			next = cur.clone()
			if err := fn(next); err != nil {
				return err
			}
			snap, err := model.NewSnapshotAt(next.Config, s.now)
			if err != nil {
				return &InvalidError{err}
			}
			next.Config = snap.Config()
			encoded, changes, lc, err := s.encodeChanges(cur, next, opts)
			if err != nil {
				return err
			}
			local = lc
			if err := next.Config.ValidateClaims(changedSites(changes)); err != nil {
				return &InvalidError{err}
			}
			if err := operatorSettingsUnchanged(actor, next.Config, changes); err != nil {
				return err
			}
			if err := s.validateDestinations(next.Config, changes); err != nil {
				return err
			}
			res = &UpdateResult{Version: cur.version, Changes: changes}
			reused, err := s.reuseOf(cur, next, changes)
			if err != nil {
				return err
			}
			if len(changes) == 0 || opts.DryRun {
				next.raw, next.version = mergeRaw(cur.raw, encoded), cur.version
				return nil
			}
			// A re-created site starts empty: what its id held before is
			// erased before the consumer groups of its destinations exist.
			for _, id := range reused {
				if _, err := PurgeSite(ctx, s.rdb, id); err != nil {
					return err
				}
			}
			for _, c := range changes {
				if c.Kind == KindDestination && c.Op == "create" {
					d := findDest(next.Config, c.ID)
					if err := routing.EnsureGroup(ctx, s.rdb, d.SiteID, d.ID); err != nil {
						return err
					}
				}
			}
			at := s.now().UTC().Format(time.RFC3339Nano)
			var incr *redis.IntCmd
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for f, v := range encoded {
					if v == nil {
						p.HDel(ctx, routing.ConfigKey, f)
					} else {
						p.HSet(ctx, routing.ConfigKey, f, *v)
					}
				}
				p.HDel(ctx, routing.ConfigKey, legacyField)
				for _, id := range reused {
					p.HDel(ctx, routing.ConfigKey, purgeField(id))
				}
				for _, c := range changes {
					if c.Kind == KindSite && c.Op == "delete" {
						p.HSet(ctx, routing.ConfigKey, purgeField(c.ID), tombstone{Tenant: c.Tenant, DeletedAt: s.now().UnixMilli()}.encode())
					}
				}
				incr = p.HIncrBy(ctx, routing.ConfigKey, "version", 1)
				for _, c := range changes {
					p.XAdd(ctx, &redis.XAddArgs{Stream: routing.AuditKey, MaxLen: auditMaxLen, Approx: true, Values: []any{
						"at", at, "actor", actor.ID, "actor_tenant", actor.Tenant, "op", c.Op, "kind", string(c.Kind),
						"id", c.ID, "tenant", c.Tenant, "fields", strings.Join(c.Fields, ","),
					}})
				}
				return nil
			})
			if err != nil {
				return err
			}
			res.Version = incr.Val()
			next.raw, next.version = mergeRaw(cur.raw, encoded), res.Version
			return nil
		}, routing.ConfigKey)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if opts.DryRun {
			return res, nil
		}
		s.setLocal(local)
		for i := range res.Changes {
			res.Changes[i].ETag = next.ETag(res.Changes[i].Kind, res.Changes[i].ID)
		}
		if len(res.Changes) > 0 {
			if err := s.rdb.Publish(ctx, routing.ConfigChannel, strconv.FormatInt(res.Version, 10)).Err(); err != nil {
				s.log.Warn("config stored but not announced; replicas pick it up on their next reload",
					"version", res.Version, "err", err)
			}
			s.log.Info("config changed", "version", res.Version, "actor", actor.ID, "actor_tenant", actor.Tenant, "changes", len(res.Changes))
		}
		snap, err := model.NewSnapshotAt(next.Config, s.now)
		if err != nil {
			return nil, &InvalidError{err}
		}
		version := res.Version
		s.swap(&storeState{snap: snap, version: version}, func(cur *storeState) bool { return version >= cur.version })
		var deleted []string
		for _, c := range res.Changes {
			if c.Kind == KindSite && c.Op == "delete" {
				deleted = append(deleted, c.ID)
			}
		}
		s.purgeDeleted(ctx, deleted)
		return res, nil
	}
	return nil, ErrContention
}

// validateDestinations runs the adapter's own strict settings check on
// every created or updated destination.
func (s *Store) validateDestinations(cfg model.Config, changes []Change) error {
	if s.validateDest == nil {
		return nil
	}
	var errs []error
	for _, c := range changes {
		if c.Kind != KindDestination || c.Op == "delete" {
			continue
		}
		for i, d := range cfg.Destinations {
			if d.ID == c.ID {
				if err := s.validateDest(d); err != nil {
					errs = append(errs, fmt.Errorf("destinations[%d].settings: %s", i, RedactSettings(err.Error(), d.Settings)))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &InvalidError{err}
	}
	return nil
}

// changedSites reports whether an update creates or changes a site.
func changedSites(changes []Change) func(siteID string) bool {
	ids := map[string]bool{}
	for _, c := range changes {
		if c.Kind == KindSite && c.Op != "delete" {
			ids[c.ID] = true
		}
	}
	return func(id string) bool { return ids[id] }
}

// operatorSettingsUnchanged refuses a tenant's change that sets or changes
// an operator setting of a destination (model.IsOperatorSetting): whatever
// the endpoint, a tenant key cannot say where a platform's API is.
func operatorSettingsUnchanged(actor Actor, cfg model.Config, changes []Change) error {
	if actor.Tenant == "" {
		return nil
	}
	var errs []error
	for _, c := range changes {
		if c.Kind != KindDestination || c.Op == "delete" {
			continue
		}
		i := slices.IndexFunc(cfg.Destinations, func(d model.Destination) bool { return d.ID == c.ID })
		for _, f := range c.Fields {
			if name, ok := strings.CutPrefix(f, "settings."); ok && model.IsOperatorSetting(name) {
				errs = append(errs, fmt.Errorf("destinations[%d].%s: the platform's API URL is the operator's setting (its environment); a tenant key can neither set nor change it", i, f))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return &InvalidError{err}
	}
	return nil
}

func mergeRaw(old map[string]string, encoded map[string]*string) map[string]string {
	out := make(map[string]string, len(old))
	for k, v := range old {
		out[k] = v
	}
	for k, v := range encoded {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	return out
}

func findDest(cfg model.Config, id string) model.Destination {
	for _, d := range cfg.Destinations {
		if d.ID == id {
			return d
		}
	}
	return model.Destination{}
}

// legacyField is where the first versions kept the whole configuration as
// one JSON document; it is still read, and removed by the first write.
const legacyField = "json"

func (s *State) clone() *State {
	b, _ := json.Marshal(s.Config)
	var cfg model.Config
	_ = json.Unmarshal(b, &cfg)
	return &State{Config: cfg, Keys: slices.Clone(s.Keys), raw: s.raw, version: s.version}
}

// decodeState reads the fields of routing.ConfigKey into clear resources.
func (s *Store) decodeState(all map[string]string) (*State, error) {
	st := &State{raw: map[string]string{}}
	if v, ok := all["version"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("routing: stored config version %q: %w", v, err)
		}
		st.version = n
	}
	if legacy, ok := all[legacyField]; ok {
		if err := json.Unmarshal([]byte(legacy), &st.Config); err != nil {
			return nil, fmt.Errorf("routing: decode stored config: %w", err)
		}
	}
	fields := make([]string, 0, len(all))
	for f := range all {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	for _, f := range fields {
		kind, id, ok := strings.Cut(f, ":")
		if !ok {
			continue
		}
		raw := all[f]
		st.raw[f] = raw
		var err error
		switch Kind(kind) {
		case KindTenant:
			var t model.Tenant
			err = strictJSON(raw, &t)
			st.Config.Tenants = append(st.Config.Tenants, t)
		case KindSite:
			var v model.Site
			err = strictJSON(raw, &v)
			st.Config.Sites = append(st.Config.Sites, v)
		case KindDestination:
			var v model.Destination
			if err = strictJSON(raw, &v); err == nil {
				v.Settings = s.openSecrets(v)
			}
			st.Config.Destinations = append(st.Config.Destinations, v)
		case KindRoute:
			var v model.Route
			err = strictJSON(raw, &v)
			st.Config.Routes = append(st.Config.Routes, v)
		case KindKey:
			var v model.APIKey
			err = strictJSON(raw, &v)
			st.Keys = append(st.Keys, v)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("routing: stored %s %q does not decode: %w", kind, id, err)
		}
	}
	return st, nil
}

func strictJSON(raw string, v any) error {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func settingsObject(raw json.RawMessage) (map[string]json.RawMessage, bool) {
	var obj map[string]json.RawMessage
	if len(bytes.TrimSpace(raw)) == 0 || json.Unmarshal(raw, &obj) != nil || obj == nil {
		return nil, false
	}
	return obj, true
}

// encodeChanges compares next with cur resource by resource and returns the
// stored form of every changed field (nil: deleted), the changes, and the
// local secrets of next's destinations.
func (s *Store) encodeChanges(cur, next *State, opts UpdateOptions) (map[string]*string, []Change, map[string]map[string]string, error) {
	oldClear, err := clearValues(cur)
	if err != nil {
		return nil, nil, nil, err
	}
	newClear, err := clearValues(next)
	if err != nil {
		return nil, nil, nil, err
	}
	tenantOf := siteTenants(cur.Config, next.Config)
	encoded := map[string]*string{}
	var changes []Change
	local := map[string]map[string]string{}
	var errs []error
	for _, d := range next.Config.Destinations {
		obj, _ := settingsObject(d.Settings)
		for k, v := range obj {
			var str string
			if s.secretFields.IsSecret(d.Type, k) && json.Unmarshal(v, &str) == nil && str != "" && s.keyring == nil {
				if local[d.ID] == nil {
					local[d.ID] = map[string]string{}
				}
				local[d.ID][k] = str
			}
		}
	}
	for _, kind := range kinds {
		for _, id := range unionKeys(oldClear[kind], newClear[kind]) {
			o, hadOld := oldClear[kind][id]
			n, hasNew := newClear[kind][id]
			f := field(kind, id)
			c := Change{Kind: kind, ID: id}
			switch {
			case !hasNew:
				c.Op = "delete"
				encoded[f] = nil
			case !hadOld:
				c.Op = "create"
			case bytes.Equal(o.clear, n.clear) && cur.raw[f] != "" && !(opts.Reencrypt && kind == KindDestination):
				// Unchanged (a resource read from the legacy document has
				// no field yet and is written).
				continue
			default:
				c.Op = "update"
			}
			if hasNew {
				c.Fields = changedFields(o.fields, n.fields)
				stored, err := s.storedForm(kind, n, cur.raw[f], opts, local)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				if stored == cur.raw[f] && c.Op == "update" {
					continue
				}
				encoded[f] = &stored
			}
			c.Tenant = tenantOf(kind, id, n.tenant, o.tenant)
			changes = append(changes, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, nil, err
	}
	return encoded, changes, local, nil
}

// clearValue is a resource's canonical clear JSON, its top-level fields
// (destination settings as settings.<name>) and its tenant.
type clearValue struct {
	clear  []byte
	fields map[string]string
	tenant string
	dest   *model.Destination
}

func clearValues(st *State) (map[Kind]map[string]clearValue, error) {
	out := map[Kind]map[string]clearValue{}
	add := func(kind Kind, id, tenant string, v any, dest *model.Destination) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(b, &top); err != nil {
			return err
		}
		fields := map[string]string{}
		for k, raw := range top {
			fields[k] = string(canonicalJSON(raw))
		}
		if dest != nil {
			delete(fields, "settings")
			if obj, ok := settingsObject(dest.Settings); ok {
				for k, raw := range obj {
					fields["settings."+k] = string(canonicalJSON(raw))
				}
			}
		}
		canon, _ := json.Marshal(fields)
		if out[kind] == nil {
			out[kind] = map[string]clearValue{}
		}
		out[kind][id] = clearValue{clear: canon, fields: fields, tenant: tenant, dest: dest}
		return nil
	}
	var errs []error
	for _, t := range st.Config.Tenants {
		errs = append(errs, add(KindTenant, t.ID, t.ID, t, nil))
	}
	for _, v := range st.Config.Sites {
		errs = append(errs, add(KindSite, v.ID, v.Tenant, v, nil))
	}
	for i := range st.Config.Destinations {
		d := st.Config.Destinations[i]
		errs = append(errs, add(KindDestination, d.ID, "", d, &d))
	}
	for _, v := range st.Config.Routes {
		errs = append(errs, add(KindRoute, v.ID, "", v, nil))
	}
	for _, k := range st.Keys {
		if err := k.Validate(); err != nil {
			errs = append(errs, &InvalidError{fmt.Errorf("keys %q: %w", k.ID, err)})
		}
		errs = append(errs, add(KindKey, k.ID, k.Tenant, k, nil))
	}
	return out, errors.Join(errs...)
}

// canonicalJSON re-encodes raw with sorted object keys.
func canonicalJSON(raw json.RawMessage) []byte {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return raw
	}
	b, _ := json.Marshal(v)
	return b
}

func changedFields(old, cur map[string]string) []string {
	var out []string
	for k, v := range cur {
		if ov, ok := old[k]; !ok || ov != v {
			out = append(out, k)
		}
	}
	for k := range old {
		if _, ok := cur[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func unionKeys(a, b map[string]clearValue) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// siteTenants returns the function giving a change's tenant: a site's own,
// and for a destination or route the tenant of its site.
func siteTenants(old, cur model.Config) func(kind Kind, id, newTenant, oldTenant string) string {
	sites := map[string]string{}
	owner := map[Kind]map[string]string{KindDestination: {}, KindRoute: {}}
	for _, cfg := range []model.Config{old, cur} {
		for _, s := range cfg.Sites {
			sites[s.ID] = s.Tenant
		}
		for _, d := range cfg.Destinations {
			owner[KindDestination][d.ID] = d.SiteID
		}
		for _, r := range cfg.Routes {
			owner[KindRoute][r.ID] = r.SiteID
		}
	}
	return func(kind Kind, id, newTenant, oldTenant string) string {
		switch kind {
		case KindDestination, KindRoute:
			return sites[owner[kind][id]]
		}
		if newTenant != "" {
			return newTenant
		}
		return oldTenant
	}
}

// storedForm encodes a resource for Redis: a destination's secrets are
// sealed under the current key, keeping an existing ciphertext when the
// secret did not change and the key is current.
func (s *Store) storedForm(kind Kind, v clearValue, oldRaw string, opts UpdateOptions, local map[string]map[string]string) (string, error) {
	if kind != KindDestination {
		b, err := json.Marshal(jsonFields(v.fields))
		return string(b), err
	}
	d := *v.dest
	obj, ok := settingsObject(d.Settings)
	if ok {
		var old map[string]json.RawMessage
		var oldDest model.Destination
		if oldRaw != "" && json.Unmarshal([]byte(oldRaw), &oldDest) == nil {
			old, _ = settingsObject(oldDest.Settings)
		}
		for k, raw := range obj {
			var plain string
			if !s.secretFields.IsSecret(d.Type, k) || json.Unmarshal(raw, &plain) != nil || plain == "" {
				continue
			}
			var oldStored string
			_ = json.Unmarshal(old[k], &oldStored)
			sealed, err := s.seal(d.ID, k, plain, oldStored, opts, local)
			if err != nil {
				return "", err
			}
			obj[k], _ = json.Marshal(sealed)
		}
		d.Settings, _ = json.Marshal(obj)
	}
	b, err := json.Marshal(d)
	return string(b), err
}

// jsonFields turns the canonical field map back into an object.
func jsonFields(fields map[string]string) map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(fields))
	for k, v := range fields {
		out[k] = json.RawMessage(v)
	}
	return out
}
