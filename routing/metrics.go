package routing

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes, the values of the outcome label of
// tagway_deliveries_total.
const (
	outcomeDelivered = "delivered"
	outcomeRetry     = "retry"
	outcomeDead      = "dead"
	outcomeFiltered  = "filtered"
	outcomeWithheld  = "withheld"
)

// metrics are the dispatcher's Prometheus collectors. Labels are ids, never
// settings or secrets.
type metrics struct {
	deliveries *prometheus.CounterVec
	seconds    *prometheus.HistogramVec
	depth      *prometheus.GaugeVec
	retries    *prometheus.GaugeVec
	withheld   *prometheus.CounterVec
}

// newMetrics builds the collectors and registers them on reg (none when reg
// is nil).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_deliveries_total",
			Help: "Events resolved per destination, by outcome (delivered, retry, dead, filtered, withheld).",
		}, []string{"destination", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tagway_delivery_seconds",
			Help:    "Duration of one batch delivery call to a destination.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}, []string{"destination"}),
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagway_queue_depth",
			Help: "Entries in a site's event stream (not yet finished by every destination), updated by the trim loop.",
		}, []string{"site"}),
		retries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagway_retry_scheduled",
			Help: "Events waiting in a destination's retry schedule, updated by the trim loop.",
		}, []string{"destination"}),
		withheld: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_events_withheld_total",
			Help: "Events the privacy policy kept from a destination, by reason (consent:<purpose>, consent:anonymous_unsupported, incomplete:<field>, region:<rule>, synthetic_test_event).",
		}, []string{"destination", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.seconds, m.depth, m.retries, m.withheld} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("routing: register metrics: %w", err)
		}
	}
	return m, nil
}
