package routing

// Redis key names. Every per-site key wraps the site id in braces, a Redis
// Cluster hash tag, so all keys of one site live in one slot.
const (
	// ConfigKey is the hash holding the configuration (field json) and its
	// version counter (field version).
	ConfigKey = "tw:config"
	// ConfigChannel is the pub/sub channel announcing a new configuration
	// version.
	ConfigChannel = "tw:config:changed"
)

// StreamKey is the stream of queued events of a site.
func StreamKey(siteID string) string { return "tw:{" + siteID + "}:events" }

// RetryKey is the retry schedule of one destination of a site.
func RetryKey(siteID, destID string) string { return "tw:{" + siteID + "}:retry:" + destID }

// DeadKey is the dead-letter stream of one destination of a site.
func DeadKey(siteID, destID string) string { return "tw:{" + siteID + "}:dead:" + destID }

// MarkerKey is the hash in which one gateway process (writer) records its
// last write per flush slot and its spool drain progress for a site, so
// that spooled events reach the stream exactly once.
func MarkerKey(siteID, writer string) string { return "tw:{" + siteID + "}:w:" + writer }
