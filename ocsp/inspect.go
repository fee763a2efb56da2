package ocsp

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/store"
)

// Where a served response comes from (Served.Source).
const (
	SourceCache = "cache"
	SourceStore = "store"
	SourceLive  = "live"
)

// Served is the response a GET for a certificate's SHA-1 CertID would be
// answered with now, as diagnostics show it. It is read the way lookup reads
// it (cache, then store, then live) but changes nothing: no cache fill, no
// signature, no metrics.
type Served struct {
	// Source is SourceCache, SourceStore, or SourceLive when no stored
	// response is current and a request would be signed live.
	Source string
	// Status is good, revoked or unknown, as the response's SingleResponse
	// says; for SourceLive, what a live signature would say.
	Status     string
	RevokedAt  time.Time
	Reason     int
	ProducedAt time.Time
	ThisUpdate time.Time
	NextUpdate time.Time
	// ResponderSerial is the serial of the responder certificate the
	// response carries (and was verified with); CurrentResponderSerial that
	// of the issuer's current responder certificate.
	ResponderSerial        []byte
	CurrentResponderSerial []byte
	// SignedForUpdate is the certificate's UpdatedAt when the response was
	// signed; before the certificate's current UpdatedAt means it was
	// signed for an earlier status.
	SignedForUpdate time.Time
	// Invalid says why the response does not parse, verify against the
	// issuer or name the certificate, or why the stored record could not be
	// decoded ("" when all is well).
	Invalid string
}

// Inspect reports the response served now for c. It returns an error only
// when the store cannot be read.
func (r *Responder) Inspect(ctx context.Context, c *store.Cert) (Served, error) {
	now := r.now()
	var s Served
	if cur := r.responderCert(c.Issuer); cur != nil {
		s.CurrentResponderSerial = cur.SerialNumber.Bytes()
	}
	iss := r.issuers.Load().byName[c.Issuer]
	if iss == nil {
		return s, fmt.Errorf("inspecting the OCSP response of %x: unknown issuer %q", c.Serial, c.Issuer)
	}
	var der []byte
	if k, ok := makeKey(SHA1, c.Serial); ok {
		if e := r.cache.get(&k); e != nil && now.Before(e.nextUpdate) && e.issuer == c.Issuer {
			s.Source, der, s.SignedForUpdate = SourceCache, e.response(), e.certUpdatedAt
		}
	}
	if der == nil {
		var rec *record
		err := r.store.View(ctx, func(tx *store.Tx) error {
			b, err := tx.Blob(blobNamespace, hex.EncodeToString(c.Serial))
			if err != nil {
				return err
			}
			if rec, err = decodeRecord(b); err != nil {
				s.Invalid = err.Error()
				rec = nil
			} else {
				rec.der = append([]byte(nil), rec.der...)
			}
			return nil
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return s, fmt.Errorf("reading the stored OCSP response of %x: %w", c.Serial, err)
		}
		if rec != nil && now.Before(rec.nextUpdate) && rec.issuer == c.Issuer {
			s.Source, der, s.SignedForUpdate = SourceStore, rec.der, rec.certUpdatedAt
		}
	}
	if der == nil {
		// What lookup would sign: the certificate's status now, by the
		// current responder.
		produced, this, next := r.times()
		s.Source, s.ProducedAt, s.ThisUpdate, s.NextUpdate = SourceLive, produced, this, next
		s.ResponderSerial, s.SignedForUpdate = s.CurrentResponderSerial, c.UpdatedAt
		s.Status = "good"
		if c.Status == store.StatusRevoked {
			s.Status, s.RevokedAt, s.Reason = "revoked", c.RevokedAt, c.Reason
		}
		return s, nil
	}
	s.Invalid = ""
	// The issuer verifies the responder certificate the response carries,
	// and that certificate the response: what a relying party checks.
	resp, err := xocsp.ParseResponseForCert(der, nil, iss.cert)
	if err != nil {
		s.Invalid = err.Error()
		return s, nil
	}
	if resp.SerialNumber == nil || !bytes.Equal(resp.SerialNumber.Bytes(), c.Serial) {
		s.Invalid = fmt.Sprintf("the response is for serial %x", resp.SerialNumber)
		return s, nil
	}
	switch resp.Status {
	case xocsp.Good:
		s.Status = "good"
	case xocsp.Revoked:
		s.Status, s.RevokedAt, s.Reason = "revoked", resp.RevokedAt, resp.RevocationReason
	default:
		s.Status = "unknown"
	}
	s.ProducedAt, s.ThisUpdate, s.NextUpdate = resp.ProducedAt, resp.ThisUpdate, resp.NextUpdate
	if resp.Certificate != nil {
		s.ResponderSerial = resp.Certificate.SerialNumber.Bytes()
	}
	return s, nil
}
