// Package queue is the durable intake: the gateway hands Queue.Enqueue the
// events it accepted and answers the sender only once Enqueue returned nil.
//
// Enqueue group-commits: calls arriving while a write is in flight wait
// together and go to Redis in one pipeline, the calls of one site merged
// into one stream entry (up to Options.MaxEntryBytes); each caller returns
// once the entry holding its events is acknowledged. One pipeline is in
// flight at a time (Options.MaxInFlight); a busy queue's next one waits up
// to Options.BusyLinger for more calls.
//
// With a spool, a write Redis cannot take goes to the local spool (fsync'd
// before the caller returns) and Queue.Run drains it when Redis answers.
// Every write then runs in a script that also records its (flush slot,
// sequence) in the writer's marker hash (routing.MarkerKey), so that the
// drain skips an entry Redis applied although its answer was lost, and one
// an interrupted drain already moved: each spooled entry reaches its stream
// exactly once.
//
// Entries are stored by Codec: plain JSON below 256 bytes, else S2 against
// a fixed dictionary. A dispatcher dead-letters an entry of a form it does
// not know, so every replica must read a form before any replica writes it.
// Streams have no length cap (it would drop events a destination has not
// delivered); the dispatcher trims what every destination finished.
package queue
