package server

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/crl"
)

// buildSeedCRLs builds the CRLs the offline seed's revocations left due,
// as the next start's repair would before /readyz: a million seeded
// certificates with 10 % revoked is a full CRL of 100 000 entries, seconds
// of a start that should take less than five. The builder is the server's
// (wireCRL), with the same options, so what it stores is what a start
// would have built; it reports how long that took.
func buildSeedCRLs(ctx context.Context, cfg *config.Config, c *core, log *slog.Logger) (time.Duration, error) {
	start := time.Now()
	b, err := crl.New(crl.Options{
		Store: c.store, CA: c.ca, Logger: log, Audit: log.With("stream", "audit"),
		Interval: cfg.CRL.Interval.D(), Validity: cfg.CRL.Validity.D(), DeltaValidity: cfg.CRL.DeltaValidity.D(),
		DeltaDelay: cfg.CRL.DeltaDelay.D(),
	})
	if err != nil {
		return 0, fmt.Errorf("crl: %w", err)
	}
	defer b.Close()
	if err := b.Repair(ctx); err != nil {
		return 0, fmt.Errorf("building the CRLs after seeding: %w", err)
	}
	return time.Since(start), nil
}
