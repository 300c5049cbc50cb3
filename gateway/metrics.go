package gateway

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Labels hold only site
// ids, sources, routes and error codes: never a value from a request.
type metrics struct {
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	// fixed counts the fields the gateway fixed to keep an event, by field
	// (a bounded set: see metricField) and reason.
	fixed    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// browser holds received's browser counter of each site (site id ->
	// prometheus.Counter): /collect counts without hashing its labels.
	browser sync.Map
}

// receivedFromBrowser returns the counter of events site received from
// browsers.
func (m *metrics) receivedFromBrowser(site string) prometheus.Counter {
	if c, ok := m.browser.Load(site); ok {
		return c.(prometheus.Counter)
	}
	c := m.received.WithLabelValues(site, "browser")
	m.browser.Store(site, c)
	return c
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_events_received_total",
			Help: "Events accepted and enqueued, by site and ingest source (browser, server).",
		}, []string{"site", "source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_events_rejected_total",
			Help: "Ingest requests refused, by error code, and browser events refused one by one, by reason (missing, invalid, not_object, too_old).",
		}, []string{"reason"}),
		fixed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_events_fixed_total",
			Help: "Fields of accepted events the gateway fixed or dropped rather than refuse the event, by field (without array indexes) and reason.",
		}, []string{"field", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tagway_http_request_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.fixed, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: registering metrics: %w", err)
		}
	}
	return m, nil
}
