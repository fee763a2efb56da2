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
	// The mark is committed before the new responder: a crash once the new
	// one is current but before every old response is dropped would leave
	// the revoked key's signatures in service until their refresh (days),
	// as the revoked responder is then no longer current for the start-up
	// to notice. Run finishes the drop of a marked issuer.
	if err := r.store.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob(replacingNamespace, issuer, []byte{1}) }); err != nil {
		return fmt.Errorf("marking the OCSP responder replacement of %s: %w", issuer, err)
	}
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
	dropped, err := r.dropReplaced(ctx, issuer)
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

// dropReplaced drops the responses of issuer, then the replacement's mark.
func (r *Responder) dropReplaced(ctx context.Context, issuer string) (int, error) {
	dropped, err := r.dropResponses(ctx, issuer)
	if err != nil {
		return dropped, err
	}
	if err := r.store.Update(ctx, func(tx *store.Tx) error { return tx.DeleteBlob(replacingNamespace, issuer) }); err != nil {
		return dropped, fmt.Errorf("clearing the OCSP responder replacement mark of %s: %w", issuer, err)
	}
	return dropped, nil
}

// finishReplacements drops, at start-up, the responses of every issuer
// whose responder replacement a crash interrupted after the mark (the
// Refresh that follows signs them again with the current responder).
func (r *Responder) finishReplacements(ctx context.Context) {
	var marked []string
	err := r.store.View(ctx, func(tx *store.Tx) error {
		return tx.EachBlob(replacingNamespace, func(k string, _ []byte) error {
			marked = append(marked, k)
			return nil
		})
	})
	if err != nil {
		r.log.Error("reading OCSP responder replacement marks", "err", err)
		return
	}
	for _, issuer := range marked {
		dropped, err := r.dropReplaced(ctx, issuer)
		if err != nil {
			r.log.Error("finishing an interrupted OCSP responder replacement", "issuer", issuer, "err", err)
			continue
		}
		r.log.Warn("finished an interrupted OCSP responder replacement", "issuer", issuer, "dropped", dropped)
	}
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
				// The refresher signs it anew from the dirty set.
				if err := tx.MarkDirty(store.DirtyOCSP, hex.EncodeToString(c.Serial)); err != nil {
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

// replacingNamespace holds, per issuer, the mark of a responder
// replacement whose drop of the old responder's responses has not
// finished.
const replacingNamespace = "ocsp-replacing"
