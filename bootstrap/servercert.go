package bootstrap

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// ServerCert is the server TLS certificate shared by the API, LDAPS and
// StartTLS listeners. They read it per handshake (GetCertificate), so a
// replacement takes effect for every new connection without a restart.
type ServerCert struct {
	b   *Bootstrap
	cur atomic.Pointer[tls.Certificate]
	mu  sync.Mutex // serialises replacements
}

func newServerCert(b *Bootstrap, c tls.Certificate) *ServerCert {
	h := &ServerCert{b: b}
	h.cur.Store(&c)
	return h
}

// GetCertificate is tls.Config.GetCertificate: the current certificate.
func (h *ServerCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cur.Load(), nil
}

// Serial is the serial number of the current certificate.
func (h *ServerCert) Serial() []byte {
	if leaf := h.cur.Load().Leaf; leaf != nil {
		return leaf.SerialNumber.Bytes()
	}
	return nil
}

// ReplaceOnRevoke subscribes to the CA's revocations: when the server TLS
// certificate is revoked, a new one is issued (ensureServerCert sees the
// old one revoked) and swapped in before Revoke returns. Subscribe it after
// the features, so the revoked certificate's OCSP response and CRL come
// first.
func (h *ServerCert) ReplaceOnRevoke() {
	log := h.b.log
	h.b.ca.Subscribe(func(ctx context.Context, ev ca.Event) {
		if ev.Kind != ca.EventRevoked || !bytes.Equal(ev.Cert.Serial, h.Serial()) {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := h.replace(ctx); err != nil {
			log.Error("replacing the revoked server TLS certificate failed: it stays in use", "serial", ev.Cert.SerialHex(), "err", err)
			return
		}
		log.Warn("server TLS certificate revoked: replaced", "old_serial", ev.Cert.SerialHex(), "serial", fmt.Sprintf("%x", h.Serial()))
	})
}

func (h *ServerCert) replace(ctx context.Context) error {
	renewed, err := h.Renew(ctx)
	if err == nil && !renewed {
		err = errors.New("no new certificate was issued")
	}
	return err
}

// Renew swaps in a new certificate when the current one is within 30 days
// of expiry, revoked, or does not cover the configured hosts, and reports
// whether it did.
func (h *ServerCert) Renew(ctx context.Context) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next, err := h.b.ensureServerCert(ctx)
	if err != nil {
		return false, err
	}
	if next.Leaf != nil && bytes.Equal(next.Leaf.SerialNumber.Bytes(), h.Serial()) {
		return false, nil
	}
	h.cur.Store(&next)
	return true, nil
}

// Run renews the certificate (Renew) every checkEvery until ctx is done, so
// a server that runs for longer than the certificate's validity never
// presents an expired one, and replaces a revoked one within revokedEvery.
func (h *ServerCert) Run(ctx context.Context) error {
	t := time.NewTicker(revokedEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if due := time.Since(last) >= checkEvery; h.check(ctx, due) || due {
			last = time.Now()
		}
	}
}

// check renews the certificate when full is set or the one in use is
// revoked, and reports whether it tried.
func (h *ServerCert) check(ctx context.Context, full bool) bool {
	old := h.Serial()
	if !full && !h.b.revoked(ctx, old) {
		return false
	}
	renewed, err := h.Renew(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		h.b.log.Error("renewing the server TLS certificate failed; retrying at the next check", "err", err)
	case renewed:
		h.b.log.Info("server TLS certificate renewed", "old_serial", fmt.Sprintf("%x", old), "serial", fmt.Sprintf("%x", h.Serial()))
	}
	return true
}

// ensureServerCert loads the TLS certificate of the API and LDAPS listeners,
// issuing a new one when it is missing, expires within renewBefore, is
// revoked, or does not cover the configured hosts (ServerCertHosts).
func (b *Bootstrap) ensureServerCert(ctx context.Context) (tls.Certificate, error) {
	cfg := b.cfg
	dir := filepath.Join(cfg.DataDir, TLSDir)
	certPath, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	hosts := ServerCertHosts(cfg)
	if kp, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf := kp.Leaf; leaf != nil && leaf.NotAfter.Sub(b.now()) > renewBefore && coversHosts(leaf, hosts) &&
			!b.revoked(ctx, leaf.SerialNumber.Bytes()) {
			return kp, nil
		}
	}
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		return tls.Certificate{}, err
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	cn := cfg.API.Hosts[0]
	crt, err := b.ca.Issue(ctx, ca.IssueRequest{
		Profile: ca.ProfileServerTLS, PublicKey: key.Public(),
		Subject:  &pkix.Name{CommonName: cn, Organization: []string{cfg.CA.Organization}},
		DNSNames: dns, IPAddresses: ips,
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing server TLS certificate: %w", err)
	}
	iss, err := b.ca.Issuer(crt.Issuer)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeCredential(dir, "server", crt.DER, iss.Cert.Raw, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

func coversHosts(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// revoked reports whether the store has serial revoked; a certificate it
// does not know (a data directory from elsewhere) counts as not revoked.
func (b *Bootstrap) revoked(ctx context.Context, serial []byte) bool {
	revoked := false
	_ = b.st.View(ctx, func(tx *store.Tx) error {
		rec, err := tx.Cert(serial)
		if err == nil {
			revoked = rec.Status == store.StatusRevoked
		}
		return err
	})
	return revoked
}
