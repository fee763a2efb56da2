package directory

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	ops     *prometheus.CounterVec
	latency *prometheus.HistogramVec
	conns   *prometheus.GaugeVec
	closed  *prometheus.CounterVec
	// binds counts password and EXTERNAL binds by account and result
	// (success, invalid, throttled, error, withdrawn); searches counts searches by account. The
	// account is a configured or stored one, "anonymous", or "unknown"
	// for a name that is neither, so clients cannot grow the label set.
	binds    *prometheus.CounterVec
	searches *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certcenter_ldap_operations_total",
			Help: "LDAP operations by type and result code name.",
		}, []string{"op", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "certcenter_ldap_operation_duration_seconds",
			Help:    "LDAP operation latency by type, from request decoded to response written.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}, []string{"op"}),
		conns: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "certcenter_ldap_open_connections",
			Help: "Open LDAP connections by listener.",
		}, []string{"listener"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certcenter_ldap_connections_closed_total",
			Help: "LDAP connections closed by the server, by reason.",
		}, []string{"reason"}),
		binds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certcenter_ldap_binds_total",
			Help: "LDAP binds (password and SASL EXTERNAL) by account and result (success, invalid, throttled, error; withdrawn: a bound directory account revoked or expired, seen at its next operation).",
		}, []string{"account", "result"}),
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certcenter_ldap_searches_total",
			Help: "LDAP searches by bound account (anonymous when none).",
		}, []string{"account"}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.latency, m.conns, m.closed, m.binds, m.searches} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func resultName(code resultCode) string {
	if n, ok := resultNames[code]; ok {
		return n
	}
	return "other"
}
