package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// certHolder is the server TLS certificate shared by the API, LDAPS and
// StartTLS listeners. They read it per handshake (tls.Config.GetCertificate),
// so a replacement takes effect for every new connection without a restart.
type certHolder struct {
	cur atomic.Pointer[tls.Certificate]
	mu  sync.Mutex // serialises replacements
}

func newCertHolder(c tls.Certificate) *certHolder {
	h := &certHolder{}
	h.cur.Store(&c)
	return h
}

func (h *certHolder) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.cur.Load(), nil
}

func (h *certHolder) serial() []byte {
	if leaf := h.cur.Load().Leaf; leaf != nil {
		return leaf.SerialNumber.Bytes()
	}
	return nil
}

// certRevoked reports whether the store has serial revoked; a certificate it
// does not know (a data directory from elsewhere) counts as not revoked.
func certRevoked(ctx context.Context, c *core, serial []byte) bool {
	revoked := false
	_ = c.store.View(ctx, func(tx *store.Tx) error {
		rec, err := tx.Cert(serial)
		if err == nil {
			revoked = rec.Status == store.StatusRevoked
		}
		return err
	})
	return revoked
}

// replaceServerCertOnRevoke subscribes to revocations: when the server TLS
// certificate is revoked, a new one is issued (ensureServerCert sees the old
// one revoked) and swapped in before Revoke returns.
func replaceServerCertOnRevoke(c *components, h *certHolder) {
	c.core.ca.Subscribe(func(ctx context.Context, ev ca.Event) {
		if ev.Kind != ca.EventRevoked || !bytes.Equal(ev.Cert.Serial, h.serial()) {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := h.replace(ctx, c); err != nil {
			c.log.Error("replacing the revoked server TLS certificate failed: it stays in use", "serial", ev.Cert.SerialHex(), "err", err)
			return
		}
		c.log.Warn("server TLS certificate revoked: replaced", "old_serial", ev.Cert.SerialHex(), "serial", fmt.Sprintf("%x", h.serial()))
	})
}

func (h *certHolder) replace(ctx context.Context, c *components) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	next, err := ensureServerCert(ctx, c.cfg, c.core)
	if err != nil {
		return err
	}
	if next.Leaf != nil && bytes.Equal(next.Leaf.SerialNumber.Bytes(), h.serial()) {
		return errors.New("no new certificate was issued")
	}
	h.cur.Store(&next)
	return nil
}
