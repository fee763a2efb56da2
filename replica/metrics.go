package replica

import "github.com/prometheus/client_golang/prometheus"

type pubMetrics struct {
	published prometheus.Gauge
	errors    prometheus.Counter
	snapSeq   prometheus.Gauge
	snapTime  prometheus.Gauge
}

func newPubMetrics(reg prometheus.Registerer) *pubMetrics {
	m := &pubMetrics{
		published: prometheus.NewGauge(prometheus.GaugeOpts{Name: "certcenter_replica_published_seq", Help: "Change-log sequence of the last entry the primary published to the stream."}),
		errors:    prometheus.NewCounter(prometheus.CounterOpts{Name: "certcenter_replica_publish_errors_total", Help: "Publish rounds that failed and were retried from the cursor."}),
		snapSeq:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "certcenter_replica_snapshot_seq", Help: "Change-log position of the last snapshot stored in the object store."}),
		snapTime:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "certcenter_replica_snapshot_seconds", Help: "Time the last snapshot took to write."}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.errors, m.snapSeq, m.snapTime)
	}
	return m
}

type followMetrics struct {
	applied    prometheus.Gauge
	pending    prometheus.Gauge
	lag        prometheus.Gauge
	delay      prometheus.Histogram
	bootstraps prometheus.Counter
}

func newFollowMetrics(reg prometheus.Registerer) *followMetrics {
	m := &followMetrics{
		applied: prometheus.NewGauge(prometheus.GaugeOpts{Name: "certcenter_replica_applied_seq", Help: "Change-log sequence of the last entry this replica applied."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "certcenter_replica_pending_entries", Help: "Messages in the stream after the last one this replica applied."}),
		lag:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "certcenter_replica_lag_seconds", Help: "Age of the oldest change this replica has not applied (0 when caught up)."}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "certcenter_replica_apply_delay_seconds", Help: "From an entry's commit on the primary to its commit on this replica.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		bootstraps: prometheus.NewCounter(prometheus.CounterOpts{Name: "certcenter_replica_bootstraps_total", Help: "Snapshots this replica loaded (the first start, and each time it fell behind the stream's retention)."}),
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.pending, m.lag, m.delay, m.bootstraps)
	}
	return m
}
