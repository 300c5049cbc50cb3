package queue

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
