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
		return err
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
