package ocsp

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// isResponderCert reports whether c is the current responder certificate of
// its issuer.
func (r *Responder) isResponderCert(c *store.Cert) bool {
	if c.Profile != ca.ProfileOCSPSigning {
		return false
	}
	cur := r.responderCert(c.Issuer)
	return cur != nil && bytes.Equal(cur.SerialNumber.Bytes(), c.Serial)
}

// ReplaceResponder gives a CA a new responder certificate at once (the
// path renewal before expiry takes), then drops every stored and cached
// response the old one signed and signs them again: a relying party that
// checks the responder's status must not be handed a signature by a
// revoked key. Until a response is re-signed, a request for it is signed
// live by the new responder.
func (r *Responder) ReplaceResponder(ctx context.Context, issuer string) error {
	r.renewMu.Lock()
	if _, err := r.auth.RenewOCSPResponder(ctx, issuer); err != nil {
		r.renewMu.Unlock()
		return fmt.Errorf("renewing the OCSP responder of %s: %w", issuer, err)
	}
	err := r.reloadIssuers()
	r.renewMu.Unlock()
	if err != nil {
		return err
	}
	dropped, err := r.dropResponses(ctx, issuer)
	if err != nil {
		return err
	}
	st, err := r.Refresh(ctx)
	if err != nil {
		return fmt.Errorf("re-signing OCSP responses of %s: %w", issuer, err)
	}
	r.log.Info("OCSP responder replaced", "issuer", issuer, "dropped", dropped, "signed", st.Signed)
	return nil
}

// dropResponses deletes the stored and cached responses of issuer's
// certificates, a page per transaction.
func (r *Responder) dropResponses(ctx context.Context, issuer string) (int, error) {
	n := 0
	var after []byte
	for {
		var page []*store.Cert
		err := r.store.Update(ctx, func(tx *store.Tx) error {
			var err error
			var next []byte
			page, next, err = tx.CertPage(after, refreshPage)
			if err != nil {
				return err
			}
			after = next
			for _, c := range page {
				if c.Issuer != issuer {
					continue
				}
				if err := tx.DeleteBlob(blobNamespace, hex.EncodeToString(c.Serial)); err != nil {
					return err
				}
				n++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("dropping OCSP responses of %s: %w", issuer, err)
		}
		for _, c := range page {
			if c.Issuer == issuer {
				r.invalidate(c.Serial)
			}
		}
		if after == nil {
			return n, nil
		}
	}
}

// replaceRevokedResponder runs ReplaceResponder when ev revokes a current
// responder certificate.
func (r *Responder) replaceRevokedResponder(ctx context.Context, ev ca.Event) {
	if ev.Kind != ca.EventRevoked || !r.isResponderCert(ev.Cert) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	r.log.Warn("OCSP responder certificate revoked: replacing it", "issuer", ev.Cert.Issuer, "serial", ev.Cert.SerialHex())
	if err := r.ReplaceResponder(ctx, ev.Cert.Issuer); err != nil {
		r.log.Error("replacing the revoked OCSP responder failed", "issuer", ev.Cert.Issuer, "err", err)
	}
}

// replaceRevokedResponders replaces, at start-up, a responder certificate
// whose revocation was committed but whose replacement was not (a crash in
// between).
func (r *Responder) replaceRevokedResponders(ctx context.Context) {
	for _, iss := range r.issuers.Load().list {
		if iss.resp == nil {
			continue
		}
		c, err := r.readCert(ctx, iss.resp.cert.SerialNumber.Bytes())
		if err != nil || c.Status != store.StatusRevoked {
			continue
		}
		r.replaceRevokedResponder(ctx, ca.Event{Kind: ca.EventRevoked, Cert: c})
	}
}
