package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/store"
)

// wireRA mounts the RA API on the API listener and runs its background jobs
// (renewal reminders, repair of requests left in flight).
func wireRA(c *components) error {
	cal, err := raCalendar(c.cfg.RA, c.log, time.Now())
	if err != nil {
		return err
	}
	keys, err := raEscrow(c)
	if err != nil {
		// OCSP, CRLs, the directory and the rest of the RA must not wait on
		// the key-encryption key (a lost or read-only token): the server
		// starts, /readyz detail says why, and the escrow routes answer 501
		// until an operator restores the KEK.
		c.log.Error("key escrow unavailable: encryption certificates and key recovery will be refused", "component", "ra", "err", err)
		escrowErr := err
		c.addWarning("escrow", func(context.Context) string { return "key escrow unavailable: " + escrowErr.Error() })
		keys = nil
	}
	r, err := ra.New(ra.Options{
		Store: c.core.store, Authority: c.core.ca, Audit: c.auditLog, Config: c.cfg.RA, Auth: c.auth,
		Logger: c.log, Registerer: c.reg, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
		// built here so that it logs years without holiday data
		Calendar: cal,
		Escrow:   keys,
		Tokens:   raTokens(c), Recoverer: raRecoverer(c),
	})
	if err != nil {
		return err
	}
	r.Register(c.api)
	c.ra = r
	c.runLoop("ra", r.Run)
	return nil
}

// VerifyAudit verifies the audit log of a stopped server's data directory.
func VerifyAudit(ctx context.Context, cfg *config.Config, log *slog.Logger) (audit.Report, error) {
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir), Logger: log})
	if err != nil {
		return audit.Report{}, err
	}
	defer st.Close()
	return audit.New(audit.Options{Store: st, Logger: log}).Verify(ctx)
}
