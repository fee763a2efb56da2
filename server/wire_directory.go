package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/jimlambrt/gldap"
)

// wireDirectory starts the LDAP listeners (issue: LDAP directory). Until the
// directory lands they answer every operation with unwillingToPerform.
func wireDirectory(c *components) error {
	for _, l := range []struct {
		name, addr string
		tls        *tls.Config
	}{
		{"ldap", c.cfg.LDAP.Addr, nil},
		{"ldaps", c.cfg.LDAP.LDAPSAddr, &tls.Config{Certificates: []tls.Certificate{c.tlsCert}, MinVersion: tls.VersionTLS12}},
	} {
		if l.addr == "" {
			continue
		}
		c.addService(placeholderLDAP(l.name, l.addr, l.tls))
	}
	return nil
}

func placeholderLDAP(name, addr string, tlsConf *tls.Config) service {
	var srv *gldap.Server
	errc := make(chan error, 1)
	return service{
		name: name,
		start: func(ctx context.Context) error {
			var err error
			if srv, err = gldap.NewServer(); err != nil {
				return err
			}
			mux, err := gldap.NewMux()
			if err != nil {
				return err
			}
			_ = mux.DefaultRoute(func(w *gldap.ResponseWriter, r *gldap.Request) {
				_ = w.Write(r.NewResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
					gldap.WithDiagnosticMessage("the directory is not built yet")))
			})
			_ = srv.Router(mux)
			var opts []gldap.Option
			if tlsConf != nil {
				opts = append(opts, gldap.WithTLSConfig(tlsConf))
			}
			go func() { errc <- srv.Run(addr, opts...) }()
			for deadline := time.Now().Add(5 * time.Second); !srv.Ready(); {
				select {
				case err := <-errc:
					return fmt.Errorf("listening on %s: %w", addr, err)
				case <-time.After(10 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("listening on %s: timed out", addr)
				}
			}
			select {
			case err := <-errc:
				return fmt.Errorf("listening on %s: %w", addr, err)
			case <-time.After(20 * time.Millisecond):
			}
			return nil
		},
		stop: func(ctx context.Context) error { return srv.Stop() },
	}
}
