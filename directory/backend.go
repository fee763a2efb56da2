package directory

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"golang.org/x/crypto/bcrypt"
)

// backend is a gldap server on a loopback port that serves the operations
// gldap routes and that are not on the hot path: simple binds (service
// accounts), the write operations (answered unwillingToPerform: the RA
// publishes the directory) and the extended operations other than StartTLS.
//
// The front end (server.go) owns the client connections, because gldap
// cannot be given a listener, drops the connection on operations it does not
// route (Compare, ModifyDN, Abandon, SASL binds) and on an undecodable
// filter, has only absolute read/write deadlines, starts an unbounded
// goroutine per request and encodes and flushes every response message
// separately. The front end relays these operations to the backend over one
// loopback connection per client connection, opened on first use.
type backend struct {
	srv  *gldap.Server
	addr string
	errc chan error
}

func startBackend(d *Directory) (*backend, error) {
	accounts := map[string][]byte{}
	for _, a := range d.opts.Config.Accounts {
		n, ok := normDN(a.DN)
		if !ok {
			return nil, fmt.Errorf("ldap.accounts: bad DN %q", a.DN)
		}
		accounts[n] = []byte(a.PasswordHash)
	}
	mux, err := gldap.NewMux()
	if err != nil {
		return nil, err
	}
	unwilling := func(code int) gldap.HandlerFunc {
		return func(w *gldap.ResponseWriter, r *gldap.Request) {
			_ = w.Write(r.NewResponse(gldap.WithApplicationCode(code), gldap.WithResponseCode(gldap.ResultUnwillingToPerform),
				gldap.WithDiagnosticMessage("the directory is read-only: it is published by the RA")))
		}
	}
	if err := errors.Join(
		mux.Bind(func(w *gldap.ResponseWriter, r *gldap.Request) {
			code, diag := d.checkBind(r, accounts)
			resp := r.NewBindResponse(gldap.WithResponseCode(code))
			resp.SetDiagnosticMessage(diag)
			_ = w.Write(resp)
		}),
		mux.Add(unwilling(gldap.ApplicationAddResponse)),
		mux.Modify(unwilling(gldap.ApplicationModifyResponse)),
		mux.Delete(unwilling(gldap.ApplicationDelResponse)),
		mux.DefaultRoute(func(w *gldap.ResponseWriter, r *gldap.Request) {
			resp := r.NewExtendedResponse(gldap.WithResponseCode(gldap.ResultUnwillingToPerform))
			resp.SetDiagnosticMessage("extended operation not supported")
			_ = w.Write(resp)
		}),
	); err != nil {
		return nil, err
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		// gldap listens itself and cannot report the port of ":0", so pick a
		// free loopback port and hand it over; retry if someone takes it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a port for the LDAP backend: %w", err)
		}
		addr := ln.Addr().String()
		ln.Close()
		srv, err := gldap.NewServer(gldap.WithLogger(hclog.New(&hclog.LoggerOptions{Level: hclog.Off})))
		if err != nil {
			return nil, err
		}
		if err := srv.Router(mux); err != nil {
			return nil, err
		}
		b := &backend{srv: srv, addr: addr, errc: make(chan error, 1)}
		go func() { b.errc <- srv.Run(addr) }()
		if lastErr = b.waitReady(); lastErr == nil {
			return b, nil
		}
		_ = srv.Stop()
	}
	return nil, fmt.Errorf("starting the LDAP backend: %w", lastErr)
}

// waitReady waits until the backend accepts connections.
func (b *backend) waitReady() error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-b.errc:
			return err
		default:
		}
		if c, err := net.DialTimeout("tcp", b.addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return errors.New("timed out")
}

func (b *backend) stop() error { return b.srv.Stop() }

// checkBind decides a simple bind relayed to the backend.
func (d *Directory) checkBind(r *gldap.Request, accounts map[string][]byte) (int, string) {
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		return gldap.ResultProtocolError, "bad bind request"
	}
	if m.UserName == "" && m.Password == "" {
		// anonymous bind always succeeds (RFC 4513 5.1.1); with anonymous
		// read off, the searches are refused instead, so clients that bind
		// anonymously first (ldapsearch -x) can still read the rootDSE.
		return gldap.ResultSuccess, ""
	}
	if m.Password == "" {
		// RFC 4513 5.1.2: an unauthenticated bind must not pass as authenticated.
		return gldap.ResultUnwillingToPerform, "unauthenticated bind (name without password) is not allowed"
	}
	n, ok := normDN(m.UserName)
	hash := accounts[n]
	if !ok || hash == nil {
		// compare anyway so an unknown name costs as much as a wrong password
		_ = bcrypt.CompareHashAndPassword([]byte("$2a$10$7EqJtq98hPqEX7fNZaFWoOhi5BWX4Z4l1IHbP1Ebcw2yWxJ1mxYQe"), []byte(m.Password))
		return gldap.ResultInvalidCredentials, ""
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(m.Password)) != nil {
		d.log.Info("ldap bind failed", "dn", strings.ToLower(m.UserName))
		return gldap.ResultInvalidCredentials, ""
	}
	return gldap.ResultSuccess, ""
}
