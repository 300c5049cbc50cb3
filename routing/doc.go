// Package routing is tagway's Redis engine: the configuration store (sites,
// destinations and routes, cached in memory and invalidated over pub/sub),
// the durable queue the gateway writes to, and the dispatcher that fans
// queued events out to every destination with retries, dead letters and
// replay.
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
//	                           AES-GCM; version (counter). Written only by Store.Update:
//	                           WATCH, validate the whole result, MULTI/EXEC
//	{tw:config}:audit          stream of changes (who, when, op, kind, id, field names)
//	tw:config:changed          pub/sub channel; the message is the new version
//	tw:{site}:test:<route>     list: the last test-mode delivery outcomes of a route
//	tw:{site}:events           stream; field e = JSON array of destinations.Event, or with
//	                           field v = 2 that array S2-compressed against a fixed
//	                           dictionary (v = 1, zlib, is still read; entrycodec.go);
//	                           one consumer group per destination id
//	tw:{site}:retry:<dest>     sorted set; score = due time (Unix ms), member = JSON retry item
//	tw:{site}:dead:<dest>      stream of dead letters (event, reason, message, attempts, failed_at)
//	tw:{site}:circuit:<dest>   hash: until, delay (ms) while the destination's circuit is open;
//	                           ...:probe is held by the replica sending the half-open probe
//	tw:{site}:w:<writer>       hash: a gateway process's last write per flush slot and spool
//	                           drain progress (only with a spool; expires after 7 days)
//	tw:{site}:id:<sha256>      hash: a visitor's hashed identifiers (em, ph... = comma-joined
//	                           digests); the visitor key (_fbp or visitor id) SHA-256 hashed;
//	                           expires 30 days after the visitor was last seen (identity.go)
//
// # Intake
//
// Queue.Enqueue group-commits: calls arriving while a write is in flight
// wait together and go to Redis in one pipeline, the calls of one site
// merged into one stream entry (up to 64 KiB); each caller returns once the
// entry holding its events is acknowledged. One pipeline is in flight at a
// time; when fewer than QueueOptions.BusyBatch calls wait as it returns,
// the next one waits up to QueueOptions.BusyLinger (200µs) for more, since
// Redis and the gateway pay per pipeline far more than per call. With a
// spool, a write Redis cannot take goes to the spool (fsync'd before the
// caller returns), and Queue.Run drains it when Redis answers. Every write then runs in a script
// that also records (flush slot, sequence) in the writer's marker hash, so
// that the drainer skips an entry Redis applied although its answer was
// lost in a crash, and an entry an interrupted drain already moved: the
// spool adds each entry to its stream exactly once.
//
// # Delivery guarantees
//
// Delivery is at least once. A stream entry is acknowledged for a
// destination's group only when every event in it is resolved (delivered,
// filtered, withheld, scheduled for retry or dead-lettered), and the retry or
// dead-letter write and the XACK happen in one MULTI/EXEC. Entries left
// pending by a crashed process are claimed by another consumer after the
// visibility timeout; retry items are leased, not popped, so a crash while
// delivering them makes them due again. A live worker whose round runs
// close to the visibility timeout renews the lease of its entries (XCLAIM
// JUSTID) and retries before its next batch, so no other consumer takes it
// over mid-delivery. An entry taken over more than
// PoisonClaims times is dead-lettered with reason poison. Platforms
// deduplicate redeliveries by event_id.
//
// What a platform acknowledged is not sent again: the outcome is recorded
// even when shutdown starts during the call, and the commit is retried while
// Redis is unreachable. The one remaining window is a crash of the gateway
// between the platform's answer and the commit's MULTI/EXEC: the entry is
// then delivered again, with the same event_id.
//
// Per destination and process, Limits bound the batches in flight and the
// events per second. A batch refused as a whole (destinations.Error with
// WholeBatch) is split in halves, re-sent at once without counting an
// attempt, until the bad events are alone and dead-lettered. After
// CircuitPolicy.Failures consecutive failed batches the circuit opens for
// every replica; one replica probes when it ends.
//
// # Identity enrichment
//
// An IdentityStore is written and read at delivery, with no script. With
// DispatcherOptions.Identity set, each worker, before its routes' policy,
// sends one pipeline per round: an HSET per visitor whose events with
// marketing consent carry hashed identifiers (their fields in stream order,
// so a field's newest value wins), then an HGETALL and an EXPIRE per
// visitor; it fills in the fields each event lacks. A round therefore reads
// its own writes, whatever the place of an identifying event in it. Ingest
// does not touch identities: /collect costs the same with enrichment on or
// off, a site without destinations stores none, and events spooled while
// Redis was down are stored when delivered.
//
// Every destination of a site stores what it reads, at its own pace. A
// store leaves out a visitor's write that equals the last one it stored for
// that visitor less than IdentityOptions.Rewrite ago (10 minutes), or the
// one in flight (destinations reading the same entries at once); it
// remembers up to 16k visitors per process, as hashes, and a write counts
// as stored only when no other write of the visitor was in flight with it.
// So a visitor's identifiers go to Redis about once per process, and the
// TTL is refreshed by every read. A write of events older (by receive time)
// than one the store began for the visitor, from a destination catching up
// behind another or a spool drained late, goes as one HSETNX per field: it
// fills in what Redis lacks and overwrites no newer value.
// Consumers of one destination on several replicas share its entries: an
// event read at the same moment as its visitor's identifying event on
// another replica may go out without what that event identified. A retry is
// not enriched again (its route's policy may have dropped fields).
// Enrichment is best effort: a failure, or no answer within the store's
// timeout, is logged and the round goes out as it is.
//
// Earlier designs ran one script per request at ingest (a third of
// ingest's throughput); then merged at delivery in a script keyed by
// received time (three times the Redis work per event of this one, which
// halved delivery throughput); then wrote with plain commands at ingest,
// ahead of each entry, which cost every identified request at /collect an
// HSET and an EXPIRE (about ten points of the ingest ratio in
// BENCHMARKS.md).
//
// # Retention
//
// Streams are never capped by length: a length cap would drop events some
// destination has not delivered yet. Instead the dispatcher trims each site
// stream to the oldest entry any consumer group still needs: the lowest id
// pending in the group, or, when nothing is pending, the entry after the
// group's last-delivered id. An entry is therefore kept exactly as long as one
// destination has not finished it, however slow that destination is.
//
// When a destination is removed from the configuration, the dispatchers
// that ran it drain it: what is still queued or scheduled for it goes to its
// dead letters with reason unknown_destination (replayable should it come
// back), then its consumer group is deleted so it stops holding entries
// back. A group left by a destination removed while no dispatcher was
// running keeps holding entries back; the trim loop logs a warning naming
// it, and an operator deletes it (XGROUP DESTROY) or re-adds the
// destination. Retry items live until resolved; dead letters stay until
// replayed or deleted by an operator.
//
// # Memory
//
// Redis holds an event for as long as one destination has not finished it.
// A typical browser event with hashed e-mail, cookies, IP and user agent is
// 700–1,000 bytes of JSON; entries of 256 bytes or more are stored
// S2-compressed against a fixed dictionary (field v = 2; v = 1, zlib, was
// written by earlier versions and is still read; entries without v are
// plain JSON), so an event alone in its entry takes 250–450 bytes of Redis
// memory and one of a busy gateway's multi-event entries 100–300 bytes,
// stream overhead included, measured by TestRedisMemoryPerQueuedEvent
// (used_memory delta over 20,000 events) and `tagway bench -delivery`. A
// backlog of one million events therefore needs 0.25–0.5 GB. A dispatcher
// dead-letters an entry of a version it does not know (an older tagway
// reading v = 2), so every replica must run a version that reads an entry
// form before any replica writes it. Run Redis with maxmemory-policy noeviction: an
// evicting Redis would drop queued events.
package routing
