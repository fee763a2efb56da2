package server

import (
	"net/http"
	"net/http/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certcenter/certcenter/internal/httpapi"
)

// routeMetrics serves /metrics on the API listener to a client certificate
// of any staff role (a scraper's is metrics), and, when
// metrics.addr is set, unauthenticated on a plain listener of its own for
// scrapers on a trusted network.
func (s *Server) routeMetrics() {
	c := s.c
	h := promhttp.HandlerFor(c.reg, promhttp.HandlerOpts{Registry: c.reg})
	c.api.Handle("GET /metrics", c.auth.Require(h, httpapi.StaffRoles...))
	if c.cfg.Metrics.Addr == "" {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	if c.cfg.Metrics.Pprof {
		// Its own mux, never http.DefaultServeMux (which importing
		// net/http/pprof fills as a side effect nobody serves).
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	c.addService(s.httpService("metrics", c.cfg.Metrics.Addr, func(func(http.Handler) http.Handler) http.Handler { return mux }, nil))
}

// httpMetrics counts and times the requests of one listener.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  prometheus.Observer
	// counters memoises requests' children by method and code: a label
	// lookup hashes strings on every request.
	counters sync.Map // int -> prometheus.Counter
}

func newHTTPMetrics(reg prometheus.Registerer, listener string) *httpMetrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "certcenter_http_requests_total",
		Help:        "HTTP requests by listener, method and status code.",
		ConstLabels: prometheus.Labels{"listener": listener},
	}, []string{"method", "code"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:        "certcenter_http_request_duration_seconds",
		Help:        "HTTP request latency by listener.",
		ConstLabels: prometheus.Labels{"listener": listener},
		Buckets:     []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	reg.MustRegister(requests, latency)
	return &httpMetrics{requests: requests, latency: latency}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (m *httpMetrics) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rec, r)
		m.latency.Observe(time.Since(start).Seconds())
		mi, method := 3, "other"
		switch r.Method {
		case http.MethodGet:
			mi, method = 0, http.MethodGet
		case http.MethodPost:
			mi, method = 1, http.MethodPost
		case http.MethodHead:
			mi, method = 2, http.MethodHead
		}
		key := mi*1000 + rec.code
		c, ok := m.counters.Load(key)
		if !ok {
			c, _ = m.counters.LoadOrStore(key, m.requests.WithLabelValues(method, strconv.Itoa(rec.code)))
		}
		c.(prometheus.Counter).Inc()
	})
}
