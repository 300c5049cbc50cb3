package routing

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Redis key names (the table in the package documentation). Every per-site
// key wraps the site id in braces, a Redis Cluster hash tag, so all keys of
// one site live in one slot.
const (
	// ConfigKey is the hash holding the configuration, one field per
	// resource, and its version counter (field version).
	ConfigKey = "tw:config"
	// ConfigChannel is the pub/sub channel announcing a new configuration
	// version.
	ConfigChannel = "tw:config:changed"
	// AuditKey is the stream of configuration changes. Its hash tag is the
	// whole of ConfigKey, so both live in one Cluster slot and one
	// MULTI/EXEC writes the change and its audit entry.
	AuditKey = "{" + ConfigKey + "}:audit"
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

// TestResultsKey is the capped list of the last test-mode delivery outcomes
// of a route (newest first), fed by the dispatcher.
func TestResultsKey(siteID, routeID string) string { return "tw:{" + siteID + "}:test:" + routeID }

// CircuitKey is the hash holding a destination's open circuit (fields
// until and delay, Unix ms and ms); no key means closed.
func CircuitKey(siteID, destID string) string { return "tw:{" + siteID + "}:circuit:" + destID }

// CircuitProbeKey is held by the replica sending the half-open probe.
func CircuitProbeKey(siteID, destID string) string { return CircuitKey(siteID, destID) + ":probe" }

// IdentityKey is the Redis hash holding the hashed identifiers of one
// visitor of a site. The visitor key (an _fbp value, a visitor seed) is
// itself SHA-256 hashed, so no first-party id appears in Redis either.
func IdentityKey(siteID, visitorKey string) string {
	sum := sha256.Sum256([]byte(visitorKey))
	var digest [2 * sha256.Size]byte
	hex.Encode(digest[:], sum[:])
	var b strings.Builder
	b.Grow(len("tw:{}:id:") + len(siteID) + len(digest))
	b.WriteString("tw:{")
	b.WriteString(siteID)
	b.WriteString("}:id:")
	b.Write(digest[:])
	return b.String()
}

// IdentityKeyPattern matches every IdentityKey of a site (a SCAN MATCH
// pattern).
func IdentityKeyPattern(siteID string) string { return "tw:{" + siteID + "}:id:*" }

// IdentityIndexKey is the sorted set of a site's visitors with stored
// identifiers (the digest part of their IdentityKey), scored by the time
// of their last write: what dispatch.IdentityOptions.MaxPerSite counts and
// evicts from.
func IdentityIndexKey(siteID string) string { return "tw:{" + siteID + "}:ids" }

// SiteKeyPattern matches every Redis key of a site (a SCAN MATCH pattern).
func SiteKeyPattern(siteID string) string { return "tw:{" + siteID + "}:*" }
