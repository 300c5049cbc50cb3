package routing

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// queueMetrics are the intake's Prometheus collectors.
type queueMetrics struct {
	callsPerFlush   prometheus.Histogram
	entriesPerFlush prometheus.Histogram
	spooled         *prometheus.CounterVec
	spoolRefused    prometheus.Counter
	drained         prometheus.Counter
	spoolBytes      prometheus.Gauge
}

func newQueueMetrics() *queueMetrics {
	return &queueMetrics{
		callsPerFlush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tagway_enqueue_calls_per_write",
			Help:    "Enqueue calls group-committed in one Redis pipeline.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		entriesPerFlush: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tagway_enqueue_entries_per_write",
			Help:    "Stream entries (one per site, merged calls) in one Redis pipeline.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
		spooled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tagway_spool_events_total",
			Help: "Events written to the local spool because Redis was unreachable (reason: write_failed, redis_down).",
		}, []string{"reason"}),
		spoolRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagway_spool_refused_events_total",
			Help: "Events refused (503) because Redis was unreachable and the spool was full or failing.",
		}),
		drained: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tagway_spool_drained_entries_total",
			Help: "Spooled stream entries moved into Redis.",
		}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tagway_spool_bytes",
			Help: "Bytes held by the local spool.",
		}),
	}
}

func (m *queueMetrics) observeFlush(calls, entries int) {
	m.callsPerFlush.Observe(float64(calls))
	m.entriesPerFlush.Observe(float64(entries))
}

// Register adds the queue's metrics to reg.
func (q *Queue) Register(reg prometheus.Registerer) error {
	m := q.metrics
	for _, c := range []prometheus.Collector{m.callsPerFlush, m.entriesPerFlush, m.spooled, m.spoolRefused, m.drained, m.spoolBytes} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("routing: register queue metrics: %w", err)
		}
	}
	return nil
}

// engineMetrics are the dispatcher's collectors for circuits, batch
// splits and lease renewals.
type engineMetrics struct {
	circuitOpen   *prometheus.GaugeVec
	circuitOpened *prometheus.CounterVec
	splits        *prometheus.CounterVec
	renewals      *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) (*engineMetrics, error) {
	m := &engineMetrics{
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
	for _, c := range []prometheus.Collector{m.circuitOpen, m.circuitOpened, m.splits, m.renewals} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("routing: register metrics: %w", err)
		}
	}
	return m, nil
}
