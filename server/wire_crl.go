package server

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/crl"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/store"
)

// wireCRL builds the CRL builder, serves /crl/{file} and /ca/{file}
// (the CRL distribution point and caIssuers URLs of issued certificates),
// rebuilds the delta and full CRLs after revocations (batched), and runs
// the full-CRL schedule. Start-up repairs CRLs that are missing, corrupt, due, or missed
// a revocation before the listeners open.
func wireCRL(c *components) error {
	cfg := c.cfg.CRL
	b, err := crl.New(crl.Options{
		Store: c.core.store, CA: c.core.ca, Logger: c.log, Audit: c.audit, Registerer: c.reg,
		Interval: cfg.Interval.D(), Validity: cfg.Validity.D(), DeltaValidity: cfg.DeltaValidity.D(),
		DeltaDelay: cfg.DeltaDelay.D(), // crl.shards reaches the builder through the CA's CRLLayout
	})
	if err != nil {
		return fmt.Errorf("crl: %w", err)
	}
	c.core.ca.Subscribe(func(_ context.Context, ev ca.Event) {
		if ev.Kind == ca.EventRevoked {
			b.Notify(ev.Cert.Issuer)
		}
	})
	c.public.HandleFunc("GET "+crlscope.HTTPPath+"{file}", b.ServeCRL)
	c.diag.CRLs = crlDiagnostics(b)
	c.public.HandleFunc("GET /ca/{file}", b.ServeCACert)
	c.addCheck("crl", b.Ready)

	jobs := newLoop("crl", c.log, b.Run)
	var closeOnce sync.Once
	c.addService(service{
		name: "crl",
		start: func(ctx context.Context) error {
			if err := b.Repair(ctx); errors.Is(err, store.ErrReadOnly) {
				// A store that refuses writes (disk full) still serves the
				// CRLs it holds: start, say so, and let the schedule retry.
				c.log.Error("CRLs not repaired at start: the store refuses writes; serving the stored ones", "err", err)
			} else if err != nil {
				return fmt.Errorf("repairing CRLs: %w", err)
			}
			jobs.start(ctx)
			return nil
		},
		stop: func(ctx context.Context) error {
			err := jobs.stop(ctx)
			closeOnce.Do(b.Close)
			return err
		},
	})
	return nil
}
