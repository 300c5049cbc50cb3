package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors. Labels hold only site
// ids, sources, routes and error codes: never a value from a request.
type metrics struct {
	received *prometheus.CounterVec
	rejected *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_events_received_total",
			Help: "Events accepted and enqueued, by site and ingest source (browser, server).",
		}, []string{"site", "source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_events_rejected_total",
			Help: "Ingest requests refused, by error code.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tagway_http_request_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: registering metrics: %w", err)
		}
	}
	return m, nil
}
