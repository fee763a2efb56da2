// Package server wires certcenter together: it opens the store, builds the
// signer, constructs every component, starts the listeners in order and stops
// them in reverse, draining requests in flight. It holds no business logic.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/publish"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/replica"
	"github.com/certcenter/certcenter/token"
	"github.com/certcenter/certcenter/token/escrow"
)

// Version is set by the build (-ldflags "-X .../server.Version=...").
var Version = "dev"

// components is what each feature is built from; the wire_*.go files add
// their feature's routes, listeners and background jobs to it.
type components struct {
	cfg      *config.Config
	log      *slog.Logger
	audit    *slog.Logger
	core     *core
	reg      *prometheus.Registry
	public   *http.ServeMux
	api      *http.ServeMux
	tlsCert  listenerCert
	clientCA *x509.CertPool
	auth     *httpapi.Authenticator
	// auditLog is the tamper-evident record of every state change (ra, admin).
	auditLog *audit.Log
	// front holds path prefixes served before the public mux (see front.go).
	front []frontRoute
	// diag collects, from each feature's wiring, what the admin API's
	// diagnostics read (wire_admin.go).
	diag admin.Diagnostics

	services []service
	checks   []readinessCheck
	// warnings are /readyz detail lines that do not fail readiness.
	warnings []readinessWarning
	// publisher delivers to outside LDAP targets (nil: none configured).
	publisher *publish.Publisher
	// tokens is the USBKey inventory (wire_token.go), which the RA unlocks through.
	tokens *token.Service
	// ra is the RA (wire_ra.go); the desk opens USBKey replacements through it.
	ra *ra.RA
	// kb is the service desk's knowledge base (wire_kb.go); the desk's
	// wiring hands its Search to the ticket screens.
	kb *kb.KB
	// setAddr records a listener's bound address for Server.Addr.
	setAddr func(name, addr string)
	// escrow keeps encryption keys (wire_escrow.go); made by the first
	// wiring that needs it (the RA's, the token package's).
	escrow *escrow.Escrow
	// primary publishes the change log to NATS (replica.role primary),
	// follower applies it (replica.role replica); nil otherwise.
	primary  *replica.Publisher
	follower *replica.Follower
	nats     *natsConn
}

// service is a component with a lifecycle. start must return once the
// component is serving (listeners bound); stop must drain and return.
type service struct {
	name  string
	start func(ctx context.Context) error
	stop  func(ctx context.Context) error
}

// listenerCert is what the TLS listeners (API, LDAPS, StartTLS) read per
// handshake: bootstrap's server certificate, which it replaces in place.
type listenerCert struct {
	getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
}

type readinessCheck struct {
	name  string
	check func(ctx context.Context) error
}

type readinessWarning struct {
	name  string
	check func(ctx context.Context) string
}

func (c *components) addService(s service) { c.services = append(c.services, s) }
func (c *components) addWarning(name string, fn func(context.Context) string) {
	c.warnings = append(c.warnings, readinessWarning{name, fn})
}
func (c *components) addCheck(name string, fn func(context.Context) error) {
	c.checks = append(c.checks, readinessCheck{name, fn})
}

// Server is a running certcenter.
type Server struct {
	c       *components
	started []service
	ready   atomic.Bool
	// storeJobs is the store's maintenance (GC, free-space checks): it runs
	// before every service starts and stops after all have stopped.
	storeJobs *loop

	mu    sync.Mutex
	addrs map[string]string
	// restoreMemoryLimit puts back the runtime's memory limit that
	// server.memory_limit replaced (server/memory.go).
	restoreMemoryLimit func()
}

// Run starts the server and blocks until ctx is cancelled, then shuts down
// gracefully.
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	s, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout.D())
	defer cancel()
	return s.Stop(stopCtx)
}

// Start opens the data directory (initialising a demo CA in an empty one),
// builds every component and starts the listeners. On failure, whatever had
// started is stopped again.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Server, err error) {
	if cfg.Replica.Role == "replica" {
		return startReplica(ctx, cfg, log) // wire_replica.go
	}
	begin := time.Now()
	restoreMemoryLimit := applyMemoryLimit(cfg, log)
	core, err := openCore(ctx, cfg, log)
	if err != nil {
		restoreMemoryLimit()
		return nil, err
	}
	if cfg.Replica.Role == "primary" {
		core.store.ReplicateWrites(replicatedBlobs...) // before anything is written
	}
	defer func() {
		if err != nil {
			core.Close()
			restoreMemoryLimit()
		}
	}()
	// An empty data directory gets a demo CA; every start then completes
	// what an interrupted init left undone and loads the TLS certificate.
	boot := bootstrapOf(cfg, core, log)
	if err := boot.LoadOrCreate(ctx); err != nil {
		return nil, err
	}
	tlsCert, err := boot.Finish(ctx)
	if err != nil {
		return nil, err
	}
	clientCA := x509.NewCertPool()
	for _, iss := range core.ca.Issuers() {
		clientCA.AddCert(iss.Cert)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	c := &components{
		cfg: cfg, log: log, audit: log.With("stream", "audit"), core: core, reg: reg,
		public: http.NewServeMux(), api: http.NewServeMux(),
		tlsCert: listenerCert{tlsCert.GetCertificate}, clientCA: clientCA,
		auth:     &httpapi.Authenticator{Store: core.store, Now: time.Now, Log: log},
		auditLog: audit.New(audit.Options{Store: core.store, Logger: log}),
	}
	s := &Server{c: c, addrs: map[string]string{}, storeJobs: newLoop("store", log, core.store.Run), restoreMemoryLimit: restoreMemoryLimit}
	c.setAddr = s.setAddr
	s.storeJobs.start(ctx)

	c.addCheck("signer", core.signers.Healthy)
	// A store that refuses writes (disk below store.min_free_mb, file system
	// read-only) still serves OCSP, CRLs and LDAP, but the instance cannot
	// issue, revoke or refresh: not ready, and /readyz says why.
	c.addCheck("store", func(context.Context) error { return core.store.Writable() })
	for _, wire := range []func(*components) error{wireOCSP, wireCRL, wireDirectory, wirePublish, wireToken, wireRA, wireAdmin, wireKB, wireDesk, wireSeed, wirePrimary} {
		if err := wire(c); err != nil {
			s.Stop(context.Background())
			return nil, err
		}
	}
	// After the features' subscribers, so the revoked certificate's OCSP
	// response and CRL come before its replacement.
	tlsCert.ReplaceOnRevoke()
	c.runLoop("tls", tlsCert.Run)
	s.routeBasics()
	c.addService(s.httpService("http", cfg.HTTP.Addr, c.publicHandler, nil))
	c.addService(s.httpService("api", cfg.API.Addr, func(metered func(http.Handler) http.Handler) http.Handler { return metered(c.api) }, &tls.Config{
		GetCertificate: c.tlsCert.getCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      clientCA,
		MinVersion:     tls.VersionTLS12,
	}))
	for _, svc := range c.services {
		if err := svc.start(ctx); err != nil {
			s.Stop(context.Background())
			return nil, fmt.Errorf("starting %s: %w", svc.name, err)
		}
		s.started = append(s.started, svc)
	}
	s.ready.Store(true)
	log.Info("certcenter ready", "version", Version, "data", cfg.DataDir, "startup", time.Since(begin).Round(time.Millisecond),
		"http", s.Addr("http"), "api", s.Addr("api"), "ldap", s.Addr("ldap"), "ldaps", s.Addr("ldaps"))
	warnUnreachableURLs(cfg, log, s.Addr)
	return s, nil
}

// Addr returns the bound address of a listener ("http", "api", "ldap", "ldaps").
func (s *Server) Addr(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[name]
}

func (s *Server) setAddr(name, addr string) {
	s.mu.Lock()
	s.addrs[name] = addr
	s.mu.Unlock()
}

// Stop marks the server unready, stops the services in reverse order (each
// drains what it has in flight) and closes the store.
func (s *Server) Stop(ctx context.Context) error {
	s.ready.Store(false)
	defer s.restoreMemoryLimit()
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		if err := s.started[i].stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", s.started[i].name, err))
		}
	}
	s.started = nil
	_ = s.storeJobs.stop(ctx) // bounded by ctx, whose expiry is reported below
	if ctx.Err() != nil {
		// A drain that timed out may leave handlers or builders still using
		// the store; closing it under them would turn a slow shutdown into
		// panics. Badger's log already holds every commit, so leaving it to
		// the process exit loses nothing.
		s.c.log.Warn("shutdown timed out: leaving the store to close with the process")
		return errors.Join(append(errs, ctx.Err())...)
	}
	// Badger's Close flushes the memtable and retries for ever when the file
	// system refuses (turned read-only, failing): shutdown waits for it only
	// as long as ctx allows. What it abandons is in the write-ahead log,
	// which the next start replays.
	closed := make(chan error, 1)
	go func() { closed <- s.c.core.Close() }()
	select {
	case err := <-closed:
		errs = append(errs, err)
	case <-ctx.Done():
		s.c.log.Error("shutdown timed out closing the store: abandoned the flush of its memtable (kept in its write-ahead log) and the signer's close",
			"store", s.c.core.store.Writable())
		errs = append(errs, fmt.Errorf("closing the store: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

func (s *Server) routeBasics() {
	c := s.c
	c.public.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	c.public.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "no-store")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: starting or shutting down")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var failed []string
		for _, ch := range c.checks {
			if err := ch.check(ctx); err != nil {
				failed = append(failed, ch.name+": "+err.Error())
			}
		}
		if len(failed) > 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			for _, f := range failed {
				fmt.Fprintln(w, f)
			}
			return
		}
		fmt.Fprintln(w, "ready")
		for _, wn := range c.warnings {
			if msg := wn.check(ctx); msg != "" {
				fmt.Fprintln(w, "warning: "+wn.name+": "+msg)
			}
		}
	})
	s.routeMetrics()
	c.api.Handle("/api/", httpapi.Fallback(c.api, "/api/"))
}

// httpService serves on addr the handler that build makes, given the
// listener's metrics middleware; with tlsConf it serves HTTPS.
func (s *Server) httpService(name, addr string, build func(metered func(http.Handler) http.Handler) http.Handler, tlsConf *tls.Config) service {
	cfg := s.c.cfg.HTTP
	m := newHTTPMetrics(s.c.reg, name)
	readTimeout, writeTimeout := cfg.ReadTimeout.D(), cfg.WriteTimeout.D()
	connWriteTimeout := writeTimeout
	metered := m.wrap
	var conns *connMetrics
	if tlsConf == nil {
		conns = newConnMetrics(s.c.reg, name)
		// The public listener arms read and write deadlines per handler, not
		// per request: net/http re-arms both on every request, which costs
		// the OCSP GET hot path several percent, and a GET with a
		// sub-kilobyte answer needs neither (ReadHeaderTimeout bounds the
		// request). The routes behind the mux (CRL and certificate
		// downloads) get both here; OCSP bounds its POST body itself, and
		// every write on the listener gets a lazily armed deadline
		// (listener.go), so a client that stops reading is cut off.
		read, write := readTimeout, writeTimeout
		metered = func(h http.Handler) http.Handler {
			return m.wrap(withDeadlines(h, read, write))
		}
		readTimeout, writeTimeout = 0, 0
	}
	srv := &http.Server{
		Handler:           build(metered),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.D(),
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       cfg.IdleTimeout.D(),
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		TLSConfig:         tlsConf,
		ErrorLog:          slog.NewLogLogger(s.c.log.With("listener", name).Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	return service{
		name: name,
		start: func(ctx context.Context) error {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			s.setAddr(name, ln.Addr().String())
			if conns != nil {
				ln = newPublicListener(ln, cfg.MaxConnections, connWriteTimeout, conns)
			}
			go func() {
				defer close(done)
				var err error
				if tlsConf != nil {
					err = srv.ServeTLS(ln, "", "")
				} else {
					err = srv.Serve(ln)
				}
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					s.c.log.Error("listener failed", "listener", name, "err", err)
				}
			}()
			return nil
		},
		stop: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			<-done
			return err
		},
	}
}

// withDeadlines gives each request read and write deadlines, as
// http.Server's ReadTimeout and WriteTimeout would.
func withDeadlines(h http.Handler, read, write time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now.Add(read))
		_ = rc.SetWriteDeadline(now.Add(write))
		h.ServeHTTP(w, r)
	})
}
