package server

import (
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/config"

	"github.com/certcenter/certcenter/ocsp"
)

// wireOCSP builds the OCSP responder: it pre-signs on every issuance and
// revocation (subscribed to the CA, so before Issue/Revoke return), serves
// POST /ocsp and GET /ocsp/{base64} ahead of the mux's path cleaning, and runs
// the start-up repair and refresher; /readyz waits for the repair.
func wireOCSP(c *components) error {
	r, err := newOCSPResponder(c.cfg, c.core, c.log, c.reg)
	if err != nil {
		return err
	}
	c.core.ca.Subscribe(r.HandleEvent)
	c.diag.OCSP = ocspDiagnostics(r)
	c.public.Handle("POST /ocsp", r)
	c.public.Handle("/ocsp/", r)
	c.addFront("/ocsp", r)
	c.addCheck("ocsp", r.Ready)

	c.runLoop("ocsp", r.Run)
	return nil
}

func newOCSPResponder(cfg *config.Config, core *core, log *slog.Logger, reg prometheus.Registerer) (*ocsp.Responder, error) {
	r, err := ocsp.New(ocsp.Options{
		Store:             core.store,
		Authority:         core.ca,
		Logger:            log,
		Registerer:        reg,
		Validity:          cfg.OCSP.Validity.D(),
		Backdate:          cfg.OCSP.Backdate.D(),
		CacheEntries:      ocspCacheEntries(cfg.OCSP),
		CacheBytes:        int64(cfg.OCSP.CacheMB) << 20,
		ResponderIDByName: cfg.OCSP.ResponderID == "name",
		SignNonces:        cfg.OCSP.Nonce == "sign",
		MaxRequestBytes:   cfg.OCSP.MaxRequestBytes,
		BodyTimeout:       cfg.HTTP.ReadTimeout.D(),
		Path:              "/ocsp",
	})
	if err != nil {
		return nil, fmt.Errorf("building the OCSP responder: %w", err)
	}
	return r, nil
}

// ocspCacheEntries is the cache's entry bound: ocsp.cache_mb 0 disables
// the cache as ocsp.cache_entries 0 does.
func ocspCacheEntries(c config.OCSP) int {
	if c.CacheMB == 0 {
		return 0
	}
	return c.CacheEntries
}
