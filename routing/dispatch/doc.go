// Package dispatch fans queued events out to every destination: one worker
// per destination and process reads the destination's consumer group,
// applies the route's policy (ApplyPolicy), delivers in batches and records
// every outcome. One destination that fails or hangs never delays another.
//
// Delivery is at least once. A stream entry is acknowledged for a
// destination's group only when every event in it is resolved (delivered,
// filtered, withheld, scheduled for retry or dead-lettered), and the retry or
// dead-letter write and the XACK happen in one MULTI/EXEC. Entries a stopped
// consumer left pending are claimed by another after the visibility timeout;
// retries are leased, not popped; a round that runs long renews its lease. An
// entry taken over more than Options.PoisonClaims times is dead-lettered
// with reason poison. What a platform acknowledged is not sent again, except
// after a crash between the platform's answer and that MULTI/EXEC: the event
// then goes again with the same event_id, which platforms deduplicate on.
//
// A batch refused as a whole is split in halves until the bad events are
// alone and dead-lettered. After CircuitPolicy.Failures consecutive failed
// batches the destination's circuit opens for every replica.
//
// With Options.Identity, each round first stores its events' hashed
// identifiers per visitor and fills in what an event lacks (IdentityStore);
// ingest never touches identities.
//
// Streams are trimmed to the oldest entry any consumer group still needs.
// A destination removed from the configuration is drained: what is queued
// or scheduled for it goes to its dead letters (reason unknown_destination),
// then its consumer group is deleted; a group left by a destination removed
// while no dispatcher ran keeps holding entries back, and the trim loop
// names it in a warning. Dead letters stay until an operator
// replays or drops them (DeadLetterStore), within DeadLetterCaps.
package dispatch
