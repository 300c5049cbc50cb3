// Package config is the configuration store: tenants, sites, destinations,
// routes and API keys in one Redis hash (routing.ConfigKey), with an
// immutable in-memory snapshot every request reads without locking.
//
// Store.Update is the one writer: it reads the stored resources, lets its
// caller edit them, validates the whole result, and commits the difference
// with an audit entry per changed resource in one MULTI/EXEC guarded by
// WATCH; then it announces the new version on routing.ConfigChannel, where
// every replica's Store.Run reloads. Destination secrets are sealed with
// AES-GCM before they reach Redis and opened only into the snapshot.
//
// A deleted site leaves nothing behind: every key under its hash tag is
// erased at once, and again once DefaultSiteReuseDelay has passed (work in
// flight may write a few keys after the first erase); until then only its
// former tenant may take its id again.
package config
