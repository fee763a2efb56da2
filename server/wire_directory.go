package server

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/directory"
)

// wireDirectory serves the LDAP directory on the ldap (plain + StartTLS) and
// ldaps listeners; both share one Directory.
func wireDirectory(c *components) error {
	cfg := c.cfg.LDAP
	if cfg.Addr == "" && cfg.LDAPSAddr == "" {
		return nil
	}
	cfg.MaxConnections = ldapConnectionCap(c, cfg)
	d, err := directory.New(directory.Options{
		Store: c.core.store, CA: c.core.ca, Config: cfg,
		Logger: c.log, Registerer: c.reg, VendorVersion: Version,
		TLS: &tls.Config{GetCertificate: c.tlsCert.getCertificate, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return err
	}
	c.diag.Directory = directoryDiagnostics(d)
	var listeners []*directory.Listener
	c.addService(service{
		name: "ldap",
		start: func(ctx context.Context) error {
			if err := d.Start(ctx); err != nil {
				return err
			}
			for _, l := range []struct {
				name, addr string
				tls        bool
			}{{"ldap", cfg.Addr, false}, {"ldaps", cfg.LDAPSAddr, true}} {
				if l.addr == "" {
					continue
				}
				ln, err := d.Listen(l.name, l.addr, l.tls)
				if err != nil {
					for _, o := range listeners {
						_ = o.Close(ctx)
					}
					_ = d.Stop()
					return err
				}
				listeners = append(listeners, ln)
				c.setAddr(l.name, ln.Addr().String())
			}
			return nil
		},
		stop: func(ctx context.Context) error {
			var errs []error
			for _, l := range listeners {
				errs = append(errs, l.Close(ctx))
			}
			errs = append(errs, d.Stop())
			return errors.Join(errs...)
		},
	})
	return nil
}

// ldapConnectionCap sizes ldap.max_connections to the process's file
// descriptor limit, raised to its hard limit first, and says so: past the
// limit accept fails and Badger cannot open its files.
func ldapConnectionCap(c *components, cfg config.LDAP) int {
	nofile, err := directory.RaiseFileLimit()
	if err != nil {
		c.log.Warn("ldap: could not raise the file descriptor limit", "err", err)
	}
	listeners := 0
	for _, a := range []string{cfg.Addr, cfg.LDAPSAddr} {
		if a != "" {
			listeners++
		}
	}
	limit, lowered := directory.ConnectionCap(cfg.MaxConnections, listeners, nofile)
	if lowered {
		c.log.Warn("ldap.max_connections lowered to fit the file descriptor limit: raise the limit (LimitNOFILE=, ulimit -n) to allow more",
			"configured", cfg.MaxConnections, "max_connections", limit, "nofile", nofile, "listeners", listeners)
	} else {
		c.log.Info("ldap connection cap", "max_connections", limit, "per", "listener", "nofile", nofile, "listeners", listeners)
	}
	return limit
}
