// Package routing is tagway's Redis engine, in three packages:
//
//   - routing/config: the configuration store (sites, destinations, routes,
//     API keys), cached in memory and invalidated over pub/sub, with its
//     audit log, sealed secrets and the erasure of deleted sites.
//   - routing/queue: the durable intake the gateway writes to: group-committed
//     stream entries, and a local spool while Redis is unreachable.
//   - routing/dispatch: one worker per destination reading its consumer group,
//     delivering with retries, circuits, dead letters, identity enrichment
//     and the privacy policy.
//
// dispatch reads config and queue; those two know nothing of each other.
// This package holds what all three share: the key layout below, and the
// consumer group, site scan and error helpers.
//
// Every Redis call goes through a redis.UniversalClient, so a single server,
// Sentinel and Cluster all work. Every key of one site carries the site id as
// a Cluster hash tag ({site}), so each MULTI/EXEC and Lua script touches one
// slot.
//
// # Keys
//
//	tw:config                  hash: one field per resource, "<kind>:<id>" (tenant, site,
//	                           destination, route, key) = its JSON, secrets sealed with
//	                           AES-GCM, written only by config.Store.Update; version
//	                           (counter); purge:<site>, a deleted site's tombstone
//	{tw:config}:audit          stream of changes (who, when, op, kind, id, field names)
//	tw:config:changed          pub/sub channel; the message is the new version
//	tw:{site}:events           stream; field e = JSON array of destinations.Event, or with
//	                           field v = 2 that array S2-compressed against a fixed
//	                           dictionary (v = 1, zlib, is still read: queue.Codec);
//	                           one consumer group per destination id
//	tw:{site}:w:<writer>       hash: a gateway process's last write per flush slot and spool
//	                           drain progress (only with a spool; expires after 7 days)
//	tw:{site}:retry:<dest>     sorted set; score = due time (Unix ms), member = JSON retry item
//	tw:{site}:dead:<dest>      stream of dead letters (event, reason, message, attempts, failed_at)
//	tw:{site}:circuit:<dest>   hash: until, delay (ms) while the destination's circuit is open;
//	                           ...:probe is held by the replica sending the half-open probe
//	tw:{site}:id:<sha256>      hash: a visitor's hashed identifiers (em, ph... = comma-joined
//	                           digests) under the SHA-256 of the visitor key (_fbp or visitor
//	                           id); expires 30 days after the visitor was last seen
//	tw:{site}:ids              sorted set: the site's visitors with identifiers, by last write
//	tw:{site}:test:<route>     list: the last test-mode delivery outcomes of a route
//
// Redis must run with maxmemory-policy noeviction: an evicting Redis would
// drop queued events.
package routing
