package server

import "github.com/certcenter/certcenter/admin"

// wireAdmin mounts the admin API.
func wireAdmin(c *components) error {
	admin.New(admin.Options{
		Store: c.core.store, Authority: c.core.ca, Auth: c.auth,
		Logger: c.log, Audit: c.auditLog, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
	}).Register(c.api)
	replaceServerCertOnRevoke(c, c.tlsCert)
	return nil
}
