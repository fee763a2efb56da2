package httpapi

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// Route is one endpoint of a JSON API. Every package that serves API
// routes (ra, admin) lists them as Routes; Register mounts them all the same
// way, and server's OpenAPI test checks api/openapi.yaml against the union.
type Route struct {
	Method, Pattern string
	Handler         HandlerFunc
	Access          Access
}

// Mount is how Register wraps every route.
type Mount struct {
	// Auth authenticates the callers of routes that are not Public.
	Auth *Authenticator
	Log  *slog.Logger
	// MaxBodyBytes limits request bodies (config api.max_body_bytes);
	// default 1 MiB.
	MaxBodyBytes int64
	// Metrics counts the errors the routes answer; nil counts nothing.
	Metrics *Metrics
}

// Register mounts routes on mux: the body limit, then authentication and
// the route's Access, then the handler, whose error is rendered (and
// counted) by WriteError. The caller is in the request's context
// (PrincipalFrom).
func Register(mux *http.ServeMux, routes []Route, m Mount) {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.MaxBodyBytes <= 0 {
		m.MaxBodyBytes = 1 << 20
	}
	for _, rt := range routes {
		mux.Handle(rt.Method+" "+rt.Pattern, m.wrap(rt))
	}
}

func (m Mount) wrap(rt Route) http.Handler {
	name := rt.Method + " " + rt.Pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, m.MaxBodyBytes)
		err := m.serve(w, r, rt)
		if err == nil {
			return
		}
		ae := WriteError(w, r, m.Log, err)
		m.Metrics.count(name, ae.Code)
	})
}

func (m Mount) serve(w http.ResponseWriter, r *http.Request, rt Route) error {
	if !rt.Access.Public {
		if m.Auth == nil {
			return errors.New("route " + rt.Pattern + " needs an authenticator and has none")
		}
		p, err := m.Auth.Authenticate(r)
		if err != nil {
			return err
		}
		if err := rt.Access.Allows(p); err != nil {
			return err
		}
		r = r.WithContext(WithPrincipal(r.Context(), p))
	}
	return rt.Handler(w, r)
}

// Metrics counts API errors by route and code.
type Metrics struct {
	errors *prometheus.CounterVec
}

// NewMetrics registers the error counter of the API named api (ra, admin)
// with reg.
func NewMetrics(reg prometheus.Registerer, api string) (*Metrics, error) {
	m := &Metrics{errors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name:        "certcenter_api_errors_total",
		Help:        "API requests answered with an error, by route and error code.",
		ConstLabels: prometheus.Labels{"api": api},
	}, []string{"route", "code"})}
	if err := reg.Register(m.errors); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) count(route, code string) {
	if m != nil {
		m.errors.WithLabelValues(route, code).Inc()
	}
}
