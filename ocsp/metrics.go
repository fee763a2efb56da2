package ocsp

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// result is what a request was answered with, the label of the request counter.
type result int

const (
	resGood result = iota
	resRevoked
	resNotModified
	resUnauthorized
	resMalformed
	resTryLater
	resInternalError
	numResults
)

var resultNames = [numResults]string{"good", "revoked", "not_modified", "unauthorized", "malformed", "try_later", "internal_error"}

const (
	mGET = iota
	mPOST
	numMethods
)

var methodNames = [numMethods]string{"GET", "POST"}

// metrics holds every series pre-resolved, so the hot path only increments.
type metrics struct {
	requests    [numMethods][numResults]prometheus.Counter
	latency     [numMethods]prometheus.Observer
	cacheHits   prometheus.Counter
	cacheMisses prometheus.Counter
	signatures  map[string]prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, r *Responder) *metrics {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certcenter_ocsp_requests_total",
		Help: "OCSP requests by HTTP method and result.",
	}, []string{"method", "result"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "certcenter_ocsp_request_duration_seconds",
		Help:    "OCSP request latency, from the handler's start to the response written.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"method"})
	cache := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certcenter_ocsp_cache_lookups_total",
		Help: "Lookups of the in-memory response cache by outcome (hit, miss).",
	}, []string{"outcome"})
	signatures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certcenter_ocsp_signatures_total",
		Help: "OCSP responses signed, by reason: issue, revoke, refresh (and repair), live (missing, stale or SHA-2 CertID, several CertIDs), nonce.",
	}, []string{"reason"})
	m := &metrics{
		cacheHits:   cache.WithLabelValues("hit"),
		cacheMisses: cache.WithLabelValues("miss"),
		signatures:  map[string]prometheus.Counter{},
	}
	for mi := range numMethods {
		for ri := range numResults {
			m.requests[mi][ri] = requests.WithLabelValues(methodNames[mi], resultNames[ri])
		}
		m.latency[mi] = latency.WithLabelValues(methodNames[mi])
	}
	for _, reason := range []string{"issue", "revoke", "refresh", "live", "nonce"} {
		m.signatures[reason] = signatures.WithLabelValues(reason)
	}
	if reg == nil {
		return m
	}
	reg.MustRegister(requests, latency, cache, signatures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "certcenter_ocsp_cache_entries",
			Help: "Responses held in the in-memory cache.",
		}, func() float64 { return float64(r.cache.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "certcenter_ocsp_cache_bytes",
			Help: "Bytes the in-memory cache holds (bounded by ocsp.cache_mb).",
		}, func() float64 { return float64(r.cache.bytes()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "certcenter_ocsp_cache_hit_ratio",
			Help: "Cache hits / lookups since start (use the lookup counter's rates for a window).",
		}, func() float64 {
			h, miss := counterValue(m.cacheHits), counterValue(m.cacheMisses)
			if h+miss == 0 {
				return 0
			}
			return h / (h + miss)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "certcenter_ocsp_oldest_response_age_seconds",
			Help: "Age (now - thisUpdate) of the oldest stored response seen by the last refresh pass.",
		}, func() float64 {
			t := r.oldest.Load()
			if t == 0 {
				return 0
			}
			return float64(r.now().Unix() - t)
		}),
	)
	return m
}

func (m *metrics) signed(reason string) {
	if c, ok := m.signatures[reason]; ok {
		c.Inc()
	}
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil || d.Counter == nil {
		return 0
	}
	return d.Counter.GetValue()
}
