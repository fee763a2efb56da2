package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
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
	r, err := ra.New(ra.Options{
		Store: c.core.store, Authority: c.core.ca, Audit: c.auditLog, Config: c.cfg.RA, Auth: c.auth,
		Logger: c.log, Registerer: c.reg, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
		// built here so that it logs years without holiday data
		Calendar: cal,
	})
	if err != nil {
		return err
	}
	r.Register(c.api)
	var wg sync.WaitGroup
	var cancel context.CancelFunc
	c.addService(service{
		name: "ra",
		start: func(ctx context.Context) error {
			var runCtx context.Context
			runCtx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			wg.Add(1)
			go func() { defer wg.Done(); _ = r.Run(runCtx) }()
			return nil
		},
		stop: func(context.Context) error {
			cancel()
			wg.Wait()
			return nil
		},
	})
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
