package crl

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the builder's Prometheus series.
type metrics struct {
	builds   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	entries  *prometheus.GaugeVec
	bytes    *prometheus.GaugeVec
	number   *prometheus.GaugeVec
	next     *prometheus.GaugeVec
	repairs  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certcenter_crl_builds_total",
			Help: "CRL generations by kind (full, delta) and result (ok, error).",
		}, []string{"kind", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certcenter_crl_build_duration_seconds",
			Help:    "Time to read, encode, sign and store a CA's full or delta CRLs.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		entries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certcenter_crl_entries",
			Help: "Revoked certificates listed in the current CRL, by CRL file.",
		}, []string{"issuer", "file"}),
		bytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certcenter_crl_bytes",
			Help: "Size of the current CRL in bytes, by CRL file.",
		}, []string{"issuer", "file"}),
		number: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certcenter_crl_number",
			Help: "CRL number of the current CRL, by CRL file.",
		}, []string{"issuer", "file"}),
		next: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certcenter_crl_next_update_timestamp_seconds",
			Help: "nextUpdate of the current CRL as a Unix time, by CRL file: alert when it comes close.",
		}, []string{"issuer", "file"}),
		repairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certcenter_crl_repairs_total",
			Help: "Stored CRLs found missing or corrupt when requested, and regenerated.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.builds, m.duration, m.entries, m.bytes, m.number, m.next, m.repairs} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(kind string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.builds.WithLabelValues(kind, result).Inc()
	m.duration.WithLabelValues(kind).Observe(time.Since(start).Seconds())
}

func (m *metrics) published(issuer string, p *published) {
	m.entries.WithLabelValues(issuer, p.file).Set(float64(p.meta.Entries))
	m.bytes.WithLabelValues(issuer, p.file).Set(float64(len(p.der)))
	m.number.WithLabelValues(issuer, p.file).Set(float64(p.meta.Number))
	m.next.WithLabelValues(issuer, p.file).Set(float64(p.meta.NextUpdate.Unix()))
}
