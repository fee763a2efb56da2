package ra

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/store"
)

// metrics are the RA's Prometheus series. Open and overdue counts are read
// from the store at scrape time, so they are right after a restart.
type metrics struct {
	r           *RA
	submitted   *prometheus.CounterVec
	transitions *prometheus.CounterVec
	refused     *prometheus.CounterVec
	reminders   *prometheus.CounterVec
	open        *prometheus.Desc
	overdue     *prometheus.Desc
}

func newMetrics(r *RA) *metrics {
	return &metrics{
		r: r,
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_requests_submitted_total",
			Help: "RA requests received, by kind."}, []string{"kind"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_transitions_total",
			Help: "RA request state changes, by kind and new state."}, []string{"kind", "state"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_applications_refused_total",
			Help: "Applications refused, by cause (cms, content, signer, org, duplicate, unsigned)."}, []string{"cause"}),
		reminders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_ra_reminders_total",
			Help: "Renewal reminders, by channel and result."}, []string{"channel", "result"}),
		open:    prometheus.NewDesc("certcenter_ra_requests_open", "RA requests not finished, by kind.", []string{"kind"}, nil),
		overdue: prometheus.NewDesc("certcenter_ra_requests_overdue", "RA requests not finished by their working-day deadline, by kind.", []string{"kind"}, nil),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.submitted.Describe(ch)
	m.transitions.Describe(ch)
	m.refused.Describe(ch)
	m.reminders.Describe(ch)
	ch <- m.open
	ch <- m.overdue
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.submitted.Collect(ch)
	m.transitions.Collect(ch)
	m.refused.Collect(ch)
	m.reminders.Collect(ch)
	open, overdue := map[string]float64{}, map[string]float64{}
	for _, k := range []string{KindIssue, KindRenew, KindRevoke} {
		open[k], overdue[k] = 0, 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := m.r.now()
	_ = m.r.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachRARequest(func(rq *store.RARequest) error {
			if rq.DoneAt.IsZero() {
				open[rq.Kind]++
				if now.After(rq.DueAt) {
					overdue[rq.Kind]++
				}
			}
			return nil
		})
	})
	for k, v := range open {
		ch <- prometheus.MustNewConstMetric(m.open, prometheus.GaugeValue, v, k)
		ch <- prometheus.MustNewConstMetric(m.overdue, prometheus.GaugeValue, overdue[k], k)
	}
}
