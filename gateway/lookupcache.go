package gateway

import "sync"

// maxLookupCache bounds each lookup cache. Keys come from request headers
// (Origin, Host), which anyone can vary: once full, a cache stops adding
// and its misses are computed each time, as without it.
const maxLookupCache = 4096

// lookupCache remembers the results of a pure function of request data
// (an origin's site in one configuration snapshot, a host's cookie
// scope), so each request does not compute them again. A cache belongs to
// one generation (a configuration snapshot, or nil when the function does
// not depend on one); the first store of a new generation starts afresh.
// It is safe for concurrent use.
type lookupCache[V any] struct {
	mu   sync.RWMutex
	gen  any
	vals map[string]V
}

// get returns the value stored for key in generation gen.
func (c *lookupCache[V]) get(gen any, key string) (V, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var zero V
	if c.gen != gen {
		return zero, false
	}
	v, ok := c.vals[key]
	return v, ok
}

// put stores v for key in generation gen, while there is room.
func (c *lookupCache[V]) put(gen any, key string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vals == nil || c.gen != gen {
		c.gen, c.vals = gen, map[string]V{}
	}
	if len(c.vals) < maxLookupCache {
		c.vals[key] = v
	}
}
