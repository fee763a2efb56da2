package server

import (
	"context"
	"fmt"

	"github.com/certcenter/certcenter/ocsp"
)

// wireOCSP builds the OCSP responder: it pre-signs on every issuance and
// revocation (subscribed to the CA, so before Issue/Revoke return), serves
// POST /ocsp and GET /ocsp/{base64} ahead of the mux's path cleaning, and runs
// the start-up repair and refresher; /readyz waits for the repair.
func wireOCSP(c *components) error {
	cfg := c.cfg.OCSP
	r, err := ocsp.New(ocsp.Options{
		Store:             c.core.store,
		Authority:         c.core.ca,
		Logger:            c.log,
		Registerer:        c.reg,
		Validity:          cfg.Validity.D(),
		Backdate:          cfg.Backdate.D(),
		CacheEntries:      cfg.CacheEntries,
		ResponderIDByName: cfg.ResponderID == "name",
		SignNonces:        cfg.Nonce == "sign",
		MaxRequestBytes:   cfg.MaxRequestBytes,
		Path:              "/ocsp",
	})
	if err != nil {
		return fmt.Errorf("building the OCSP responder: %w", err)
	}
	c.core.ca.Subscribe(r.HandleEvent)
	c.public.Handle("POST /ocsp", r)
	c.public.Handle("/ocsp/", r)
	c.addFront("/ocsp", r)
	c.addCheck("ocsp", r.Ready)

	var cancel context.CancelFunc
	done := make(chan struct{})
	c.addService(service{
		name: "ocsp",
		start: func(ctx context.Context) error {
			var runCtx context.Context
			runCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			go func() {
				defer close(done)
				if err := r.Run(runCtx); err != nil {
					c.log.Error("OCSP refresher stopped", "err", err)
				}
			}()
			return nil
		},
		stop: func(ctx context.Context) error {
			cancel()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	return nil
}
