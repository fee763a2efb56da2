package server

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/certcenter/certcenter/directory"
)

// wireDirectory serves the LDAP directory on the ldap (plain + StartTLS) and
// ldaps listeners; both share one Directory.
func wireDirectory(c *components) error {
	cfg := c.cfg.LDAP
	if cfg.Addr == "" && cfg.LDAPSAddr == "" {
		return nil
	}
	d, err := directory.New(directory.Options{
		Store: c.core.store, CA: c.core.ca, Config: cfg,
		Logger: c.log, Registerer: c.reg, VendorVersion: Version,
		TLS: &tls.Config{GetCertificate: c.tlsCert.getCertificate, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return err
	}
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
