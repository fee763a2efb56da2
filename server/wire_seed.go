package server

import (
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/seed"
)

// wireSeed mounts POST /api/v1/seed when api.seed is on: the seed of a
// running server, whose data directory the offline `certcenter seed`
// cannot open.
func wireSeed(c *components) error {
	if !c.cfg.API.Seed {
		return nil
	}
	m, err := httpapi.NewMetrics(c.reg, "seed")
	if err != nil {
		return err
	}
	a := &seed.API{Store: c.core.store, Authority: c.core.ca, Audit: c.auditLog, Logger: c.log}
	httpapi.Register(c.api, a.Routes(), httpapi.Mount{Auth: c.auth, Log: c.log, MaxBodyBytes: c.cfg.API.MaxBodyBytes, Metrics: m})
	c.log.Warn("api.seed is on: CA operators can add synthetic subscribers with real certificates (demos and benchmarks only)")
	return nil
}
