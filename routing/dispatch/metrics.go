package dispatch

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
	// deadTrimmed counts dead letters removed by the caps
	// (DeadLetterCaps), by destination and cap (max_len, max_age).
	deadTrimmed   *prometheus.CounterVec
	circuitOpen   *prometheus.GaugeVec
	circuitOpened *prometheus.CounterVec
	splits        *prometheus.CounterVec
	renewals      *prometheus.CounterVec
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
		deadTrimmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_deadletters_trimmed_total",
			Help: "Dead letters removed because their stream passed its cap, by destination and cap (max_len, max_age).",
		}, []string{"destination", "cap"}),
		circuitOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tagway_circuit_open",
			Help: "1 while a destination's circuit is open (nothing is sent to it), as this replica last saw it.",
		}, []string{"destination"}),
		circuitOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_circuit_opened_total",
			Help: "Times this replica opened a destination's circuit after consecutive failed batches.",
		}, []string{"destination"}),
		splits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_batch_splits_total",
			Help: "Batches split in halves after the platform refused them as a whole, to isolate the bad events.",
		}, []string{"destination"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_lease_renewals_total",
			Help: "Rounds whose lease was renewed because they ran long (batch splits against a slow platform).",
		}, []string{"destination"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.seconds, m.depth, m.retries, m.withheld, m.deadTrimmed,
		m.circuitOpen, m.circuitOpened, m.splits, m.renewals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("routing: register metrics: %w", err)
		}
	}
	return m, nil
}
