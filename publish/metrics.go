package publish

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the per-target Prometheus series.
type metrics struct {
	connected, paused, pending, oldest, lastSuccess, lastError, failedRecords *prometheus.GaugeVec
	delivered, failures                                                       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	g := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "certcenter_publish_" + name, Help: help}, []string{"target"})
	}
	c := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_publish_" + name, Help: help}, []string{"target"})
	}
	m := &metrics{
		connected:     g("connected", "1 while the target has an open, bound connection."),
		paused:        g("paused", "1 while delivery to the target is paused by an operator."),
		pending:       g("pending_entries", "Change-log entries not yet delivered to the target."),
		oldest:        g("oldest_pending_age_seconds", "Age of the oldest change not yet delivered (0: none)."),
		lastSuccess:   g("last_success_timestamp_seconds", "Unix time of the last successful delivery."),
		lastError:     g("last_error_timestamp_seconds", "Unix time of the last failed delivery attempt."),
		failedRecords: g("failed_records", "Records the target refused one by one (retried with backoff; the cursor moved past them)."),
		delivered:     c("delivered_total", "Records (certificates, CRLs, CA certificates) written to the target."),
		failures:      c("failures_total", "Failed delivery attempts (each is retried)."),
	}
	if reg == nil {
		return m, nil
	}
	for _, col := range []prometheus.Collector{m.connected, m.paused, m.pending, m.oldest, m.lastSuccess, m.lastError, m.failedRecords, m.delivered, m.failures} {
		if err := reg.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
