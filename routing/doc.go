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
//	tw:{site}:events           stream; field e = JSON array of destinations.Event;
//	                           one consumer group per destination id
//	tw:{site}:retry:<dest>     sorted set; score = due time (Unix ms), member = JSON retry item
//	tw:{site}:dead:<dest>      stream of dead letters (event, reason, message, attempts, failed_at)
//
// # Delivery guarantees
//
// Delivery is at least once. A stream entry is acknowledged for a
// destination's group only when every event in it is resolved (delivered,
// filtered, withheld, scheduled for retry or dead-lettered), and the retry or
// dead-letter write and the XACK happen in one MULTI/EXEC. Entries left
// pending by a crashed process are claimed by another consumer after the
// visibility timeout; retry items are leased, not popped, so a crash while
// delivering them makes them due again. Platforms deduplicate redeliveries by
// event_id.
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
package routing
