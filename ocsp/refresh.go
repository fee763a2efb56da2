package ocsp

import (
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Run renews responder certificates, repairs the stored responses (missing
// ones, ones older than their certificate's status, ones due for refresh),
// marks the responder ready, and then repeats renewal and refresh every
// RefreshInterval until ctx is done.
func (r *Responder) Run(ctx context.Context) error {
	if r.opts.ReadOnly {
		// A replica's responses are the primary's: nothing to repair.
		r.repaired.Store(true)
		<-ctx.Done()
		return nil
	}
	r.replaceRevokedResponders(ctx)
	r.finishReplacements(ctx)
	r.renewResponders(ctx)
	begin := time.Now()
	st, err := r.Refresh(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		// Requests still get correct answers: whatever is missing or stale
		// is signed live. Readiness waits for a pass that succeeds.
		r.log.Error("start-up repair of OCSP responses failed", "err", err)
	} else {
		r.repaired.Store(true)
		r.log.Info("OCSP responses checked", "certificates", st.Checked, "signed", st.Signed, "elapsed", time.Since(begin).Round(time.Millisecond))
	}
	t := time.NewTicker(r.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// A replacement that failed when its revocation came (the signer
		// was down) is retried here, not only at the next start.
		r.replaceRevokedResponders(ctx)
		r.renewResponders(ctx)
		st, err := r.Refresh(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Error("refreshing OCSP responses failed", "err", err)
			continue
		}
		r.repaired.Store(true)
		if st.Signed > 0 {
			r.log.Info("OCSP responses refreshed", "certificates", st.Checked, "signed", st.Signed)
		}
	}
}

// renewResponders asks the CA for a new responder certificate where the
// current one is missing or expires within RenewBefore (or before a response
// signed now would expire).
func (r *Responder) renewResponders(ctx context.Context) {
	r.renewMu.Lock()
	defer r.renewMu.Unlock()
	now := r.now()
	renewed := false
	for _, iss := range r.issuers.Load().list {
		if iss.resp != nil && iss.resp.cert.NotAfter.Sub(now) > max(r.opts.RenewBefore, r.opts.Validity) {
			continue
		}
		if _, err := r.auth.RenewOCSPResponder(ctx, iss.name); err != nil {
			r.log.Error("renewing OCSP responder certificate failed", "issuer", iss.name, "err", err)
			continue
		}
		r.log.Info("renewed OCSP responder certificate", "issuer", iss.name)
		renewed = true
	}
	if renewed {
		if err := r.reloadIssuers(); err != nil {
			r.log.Error("reloading issuers", "err", err)
		}
	}
}

// RefreshStats reports one refresh pass.
type RefreshStats struct {
	Checked int
	Signed  int
}

const refreshPage = 512

// Refresh walks every certificate and signs the responses that are missing,
// older than the certificate's status, or past half of their validity (with
// one refresh interval of margin). Certificates that expired more than one
// validity period ago are skipped: a request for one is answered live.
func (r *Responder) Refresh(ctx context.Context) (RefreshStats, error) {
	var st RefreshStats
	r.checked.Store(0)
	oldest := int64(0)
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var certs []*store.Cert
		var due []*store.Cert
		now := r.now()
		err := r.store.View(ctx, func(tx *store.Tx) error {
			var err error
			var next []byte
			certs, next, err = tx.CertPage(after, refreshPage)
			if err != nil {
				return err
			}
			after = next
			for _, c := range certs {
				if now.Sub(c.NotAfter) > r.opts.Validity {
					continue
				}
				b, err := tx.Blob(blobNamespace, hex.EncodeToString(c.Serial))
				if errors.Is(err, store.ErrNotFound) {
					due = append(due, c)
					continue
				}
				if err != nil {
					return err
				}
				rec, err := decodeRecord(b)
				if err != nil || r.needsSigning(c, rec, now) {
					due = append(due, c)
					continue
				}
				if t := rec.thisUpdate.Unix(); oldest == 0 || t < oldest {
					oldest = t
				}
			}
			return nil
		})
		if err != nil {
			return st, fmt.Errorf("reading certificates for OCSP refresh: %w", err)
		}
		st.Checked += len(certs)
		n, first, err := r.signAndSave(ctx, due)
		st.Signed += n
		if err != nil {
			return st, err
		}
		if first != 0 && (oldest == 0 || first < oldest) {
			oldest = first
		}
		r.checked.Store(int64(st.Checked))
		if after == nil {
			break
		}
	}
	r.oldest.Store(oldest)
	return st, nil
}

func (r *Responder) needsSigning(c *store.Cert, rec *record, now time.Time) bool {
	if rec.certUpdatedAt.Before(c.UpdatedAt) || rec.revoked != (c.Status == store.StatusRevoked) || rec.issuer != c.Issuer {
		return true
	}
	half := rec.thisUpdate.Add(rec.nextUpdate.Sub(rec.thisUpdate) / 2)
	return !now.Add(r.opts.RefreshInterval).Before(half)
}

// batchSigner signs many digests more cheaply together than one by one:
// signer/pkcs11 spreads a batch over its sessions and signs each share in
// one call into the HSM library.
type batchSigner interface {
	SignBatch(ctx context.Context, digests [][]byte, opts crypto.SignerOpts) ([][]byte, error)
}

// signAll signs the responses of certs: in one batch per responder whose
// key can sign batches, with all workers otherwise.
func (r *Responder) signAll(ctx context.Context, certs []*store.Cert) ([]*record, error) {
	recs := make([]*record, len(certs))
	tbs := make([][]byte, len(certs))
	resps := make([]*responder, len(certs))
	batches := map[*responder][]int{}
	var single []int
	for i, c := range certs {
		var err error
		if resps[i], tbs[i], recs[i], err = r.prepare(c, SHA1); err != nil {
			return nil, err
		}
		if _, ok := resps[i].signer.(batchSigner); ok {
			batches[resps[i]] = append(batches[resps[i]], i)
		} else {
			single = append(single, i)
		}
	}
	for resp, idx := range batches {
		digests := make([][]byte, len(idx))
		for j, i := range idx {
			digests[j] = resp.digest(tbs[i])
		}
		sigs, err := resp.signer.(batchSigner).SignBatch(ctx, digests, resp.hash)
		if err != nil {
			return nil, fmt.Errorf("signing %d responses: %w", len(idx), err)
		}
		for j, i := range idx {
			if recs[i].der, err = resp.assemble(tbs[i], sigs[j]); err != nil {
				return nil, fmt.Errorf("signing response for %x: %w", certs[i].Serial, err)
			}
		}
	}
	errs := make([]error, len(single))
	var wg sync.WaitGroup
	workers := min(r.opts.Workers, len(single))
	for w := range workers {
		wg.Go(func() {
			for j := w; j < len(single); j += workers {
				i := single[j]
				var err error
				if recs[i].der, err = resps[i].signTBS(tbs[i]); err != nil {
					errs[j] = fmt.Errorf("signing response for %x: %w", certs[i].Serial, err)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return recs, nil
}

// signAndSave signs the responses of certs with all workers and stores them
// in one transaction. It returns how many were stored and the thisUpdate of
// the new ones.
func (r *Responder) signAndSave(ctx context.Context, certs []*store.Cert) (int, int64, error) {
	if len(certs) == 0 {
		return 0, 0, nil
	}
	recs, err := r.signAll(ctx, certs)
	if err != nil {
		return 0, 0, err
	}
	written, err := r.save(ctx, certs, recs)
	if err != nil {
		return 0, 0, err
	}
	n := 0
	for i, ok := range written {
		r.m.signed("refresh")
		if ok {
			n++
			// The cached response, if any, is older: let the next request
			// read the new one.
			if k, ok := makeKey(SHA1, certs[i].Serial); ok {
				r.cache.invalidate(&k)
			}
		}
	}
	return n, recs[0].thisUpdate.Unix(), nil
}
