package server

import (
	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/internal/httpapi"
)

// wireAdmin mounts the admin API.
func wireAdmin(c *components) error {
	m, err := httpapi.NewMetrics(c.reg, "admin")
	if err != nil {
		return err
	}
	admin.New(admin.Options{
		Store: c.core.store, Authority: c.core.ca, Credentials: c.core.ca, Auth: c.auth,
		Logger: c.log, Audit: c.auditLog, MaxBodyBytes: c.cfg.API.MaxBodyBytes, Metrics: m,
	}).Register(c.api)
	return nil
}
