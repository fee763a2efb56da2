package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/certcenter/certcenter/publish"
)

// wirePublish starts one delivery worker per publish target in the
// background: a target that is down at start delays nothing (its worker
// retries), and a lagging target is named in /readyz detail without
// failing readiness. c.publisher is what diagnostics read.
func wirePublish(c *components) error {
	if len(c.cfg.Publish.Targets) == 0 {
		return nil
	}
	p, err := publish.New(publish.Options{Store: c.core.store, Config: c.cfg.Publish, Logger: c.log, Metrics: c.reg})
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	c.publisher = p
	c.addWarning("publish", func(ctx context.Context) string { return strings.Join(p.Lagging(ctx), "; ") })
	c.runLoop("publish", p.Run)
	return nil
}
