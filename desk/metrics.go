package desk

import "github.com/prometheus/client_golang/prometheus"

// metrics are the desk's Prometheus series.
type metrics struct {
	created     *prometheus.CounterVec
	warnings    *prometheus.CounterVec
	breaches    *prometheus.CounterVec
	surveys     *prometheus.CounterVec
	evaluations prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		created: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_desk_tickets_created_total",
			Help: "Tickets opened, by channel and incident class."}, []string{"channel", "class"}),
		warnings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_desk_sla_warnings_total",
			Help: "Warnings given before an SLA deadline, by clock (response, resolve, handover, quality_feedback)."}, []string{"clock"}),
		breaches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_desk_sla_breaches_total",
			Help: "SLA deadlines missed, by clock (response, resolve, handover, quality_feedback)."}, []string{"clock"}),
		surveys: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "certcenter_desk_surveys_answered_total",
			Help: "Satisfaction surveys answered, by channel and score."}, []string{"channel", "score"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{Name: "certcenter_desk_sla_evaluations_total",
			Help: "Runs of the SLA clock evaluation."}),
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.created.Describe(ch)
	m.warnings.Describe(ch)
	m.breaches.Describe(ch)
	m.surveys.Describe(ch)
	m.evaluations.Describe(ch)
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.created.Collect(ch)
	m.warnings.Collect(ch)
	m.breaches.Collect(ch)
	m.surveys.Collect(ch)
	m.evaluations.Collect(ch)
}
