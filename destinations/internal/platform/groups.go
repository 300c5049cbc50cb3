package platform

// Groups gathers the events of a batch into requests: the events of one
// key (a test event code, a site) go together, in batch order, at most max
// to a request, and the requests come in the order of their first events.
type Groups[K comparable, W any] struct {
	max, n int
	open   map[K]*Group[K, W]
	all    []*Group[K, W]
}

// Group is the events of one request: their key, their indexes in the
// batch and their wire form.
type Group[K comparable, W any] struct {
	Key     K
	Indexes []int
	Events  []W
}

// NewGroups returns empty Groups of at most max events each, for a batch
// of n events.
func NewGroups[K comparable, W any](max, n int) *Groups[K, W] {
	return &Groups[K, W]{max: max, n: n, open: map[K]*Group[K, W]{}}
}

// Add puts the batch's event i, in its wire form w, in the request being
// filled for key, or in a new one when there is none or it is full.
func (g *Groups[K, W]) Add(key K, i int, w W) {
	r := g.open[key]
	if r == nil || len(r.Indexes) == g.max {
		// The events left in the batch bound the request's size: one
		// allocation each, exact when the batch makes one request.
		size := min(g.max, g.n-i)
		r = &Group[K, W]{Key: key, Indexes: make([]int, 0, size), Events: make([]W, 0, size)}
		g.open[key] = r
		g.all = append(g.all, r)
	}
	r.Indexes = append(r.Indexes, i)
	r.Events = append(r.Events, w)
}

// All returns the requests, in order.
func (g *Groups[K, W]) All() []*Group[K, W] { return g.all }

// Set gives every event of r the outcome err in out, the batch's outcomes.
func (r *Group[K, W]) Set(out []error, err error) {
	for _, i := range r.Indexes {
		out[i] = err
	}
}

// SetEach gives each event of r its own outcome, errs[j] for the j-th, in
// out, the batch's outcomes.
func (r *Group[K, W]) SetEach(out []error, errs []error) {
	for j, i := range r.Indexes {
		out[i] = errs[j]
	}
}

// IDs returns the event id of each of events, which id reads.
func IDs[W any](events []W, id func(*W) string) []string {
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = id(&events[i])
	}
	return ids
}

// Failures counts the events errs failed, and returns the first failure.
func Failures(errs []error) (n int, first error) {
	for _, err := range errs {
		if err != nil {
			if n == 0 {
				first = err
			}
			n++
		}
	}
	return n, first
}
