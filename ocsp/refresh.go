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

// Refresh signs the responses that are missing, older than their
// certificate's status, or past half of their validity (with one refresh
// interval of margin). It reads two indexes, not every certificate: the
// store's dirty set (store.DirtyOCSP: every certificate written since its
// response was last stored, marked in the same transaction) and the
// schedule (namespace ocsp-due: one key per stored response, ordered by
// the time it is due), from its start up to now plus one interval. A
// store written before the indexes existed is walked once (walkAll).
// Certificates that expired more than one validity period ago are skipped:
// a request for one is answered live.
func (r *Responder) Refresh(ctx context.Context) (RefreshStats, error) {
	r.checked.Store(0)
	var indexed bool
	if err := r.store.View(ctx, func(tx *store.Tx) (err error) {
		indexed, err = tx.DirtyIndexed(store.DirtyOCSP)
		return err
	}); err != nil {
		return RefreshStats{}, fmt.Errorf("reading the OCSP dirty index: %w", err)
	}
	if !indexed {
		st, err := r.walkAll(ctx)
		if err != nil {
			return st, err
		}
		if err := r.store.Update(ctx, func(tx *store.Tx) error { return tx.SetDirtyIndexed(store.DirtyOCSP) }); err != nil {
			return st, err
		}
		return st, nil
	}
	var st RefreshStats
	if err := r.refreshDirty(ctx, &st); err != nil {
		return st, err
	}
	if err := r.refreshDue(ctx, &st); err != nil {
		return st, err
	}
	var oldest int64
	if err := r.store.View(ctx, func(tx *store.Tx) error {
		// The schedule's first key is the response due first, and so the
		// oldest one (responses share one validity).
		return tx.EachBlob(dueNamespace, func(k string, _ []byte) error {
			if serial, _, ok := parseDueKey(k); ok {
				if b, err := tx.Blob(blobNamespace, serial); err == nil {
					if rec, err := decodeRecord(b); err == nil {
						oldest = rec.thisUpdate.Unix()
					}
				}
			}
			return errStopWalk
		})
	}); err != nil && !errors.Is(err, errStopWalk) {
		return st, fmt.Errorf("reading the OCSP refresh schedule: %w", err)
	}
	r.oldest.Store(oldest)
	return st, nil
}

var errStopWalk = errors.New("stop")

// dueNamespace is the refresh schedule: a key per stored response,
// "<due, 16 hex digits of unix s>-<serial hex>", due being half-way from
// thisUpdate to nextUpdate. save writes it with the response and deletes
// the previous response's key; a key left behind by a response deleted
// otherwise is dropped when the refresher reaches it.
const dueNamespace = "ocsp-due"

func dueOf(rec *record) time.Time {
	return rec.thisUpdate.Add(rec.nextUpdate.Sub(rec.thisUpdate) / 2)
}

func dueKey(rec *record, serial string) string {
	return fmt.Sprintf("%016x-%s", max(dueOf(rec).Unix(), 0), serial)
}

func parseDueKey(k string) (serial string, due int64, ok bool) {
	if len(k) < 18 || k[16] != '-' {
		return "", 0, false
	}
	var u uint64
	if _, err := fmt.Sscanf(k[:16], "%016x", &u); err != nil {
		return "", 0, false
	}
	return k[17:], int64(u), true
}

// refreshDirty signs the responses of the certificates in the dirty set
// whose stored response is not current, and clears the marks of those
// whose response is (an event signed it, or a mark outlived a crash).
func (r *Responder) refreshDirty(ctx context.Context, st *RefreshStats) error {
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ids []string
		if err := r.store.View(ctx, func(tx *store.Tx) error {
			return tx.EachDirty(store.DirtyOCSP, after, func(id string, _ []byte) error {
				ids = append(ids, id)
				if len(ids) == refreshPage {
					return errStopWalk
				}
				return nil
			})
		}); err != nil && !errors.Is(err, errStopWalk) {
			return fmt.Errorf("reading the OCSP dirty set: %w", err)
		}
		if len(ids) == 0 {
			return nil
		}
		after = ids[len(ids)-1]
		var due []*store.Cert
		now := r.now()
		err := r.store.Update(ctx, func(tx *store.Tx) error {
			due = due[:0]
			for _, id := range ids {
				serial, err := hex.DecodeString(id)
				if err != nil {
					return tx.ClearDirty(store.DirtyOCSP, id)
				}
				c, err := tx.Cert(serial)
				if errors.Is(err, store.ErrNotFound) {
					if err := tx.ClearDirty(store.DirtyOCSP, id); err != nil {
						return err
					}
					continue
				}
				if err != nil {
					return err
				}
				if now.Sub(c.NotAfter) > r.opts.Validity {
					if err := tx.ClearDirty(store.DirtyOCSP, id); err != nil {
						return err
					}
					continue
				}
				b, err := tx.Blob(blobNamespace, id)
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				if err == nil {
					if rec, err := decodeRecord(b); err == nil && !r.needsSigning(c, rec, now) {
						// Current already: only the mark outlived its work.
						if err := tx.PutBlob(dueNamespace, dueKey(rec, id), nil); err != nil {
							return err
						}
						if err := tx.ClearDirty(store.DirtyOCSP, id); err != nil {
							return err
						}
						continue
					}
				}
				due = append(due, c)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading dirty certificates for OCSP refresh: %w", err)
		}
		st.Checked += len(ids)
		n, _, err := r.signAndSave(ctx, due)
		st.Signed += n
		if err != nil {
			return err
		}
		r.checked.Store(int64(st.Checked))
		if len(ids) < refreshPage {
			return nil
		}
	}
}

// refreshDue signs the responses the schedule says are due within one
// refresh interval, and drops the schedule's stale keys.
func (r *Responder) refreshDue(ctx context.Context, st *RefreshStats) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := r.now()
		horizon := now.Add(r.opts.RefreshInterval).Unix()
		var due []*store.Cert
		var stale []string
		rekey := map[string]string{} // stale key -> the record's own key
		seen := 0
		err := r.store.View(ctx, func(tx *store.Tx) error {
			return tx.EachBlob(dueNamespace, func(k string, _ []byte) error {
				serialHex, at, ok := parseDueKey(k)
				if !ok {
					stale = append(stale, k)
					return nil
				}
				if at > horizon || len(due)+len(stale) == refreshPage {
					return errStopWalk
				}
				seen++
				serial, err := hex.DecodeString(serialHex)
				if err != nil {
					stale = append(stale, k)
					return nil
				}
				c, err := tx.Cert(serial)
				if errors.Is(err, store.ErrNotFound) {
					stale = append(stale, k)
					return nil
				}
				if err != nil {
					return err
				}
				b, err := tx.Blob(blobNamespace, serialHex)
				var rec *record
				if err == nil {
					rec, err = decodeRecord(b)
				}
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					// Unreadable: sign it anew; save replaces the key.
					rec, err = nil, store.ErrNotFound
				}
				switch {
				case now.Sub(c.NotAfter) > r.opts.Validity:
					stale = append(stale, k)
				case rec == nil:
					// Deleted without its key: drop the key and sign.
					stale = append(stale, k)
					due = append(due, c)
				case dueKey(rec, serialHex) != k:
					// The record was replaced without its key (by a
					// version before the schedule): schedule it anew.
					stale = append(stale, k)
					rekey[k] = dueKey(rec, serialHex)
				default:
					due = append(due, c)
				}
				return nil
			})
		})
		if err != nil && !errors.Is(err, errStopWalk) {
			return fmt.Errorf("reading the OCSP refresh schedule: %w", err)
		}
		if len(stale) > 0 {
			if err := r.store.Update(ctx, func(tx *store.Tx) error {
				for _, k := range stale {
					if err := tx.DeleteBlob(dueNamespace, k); err != nil {
						return err
					}
					if nk, ok := rekey[k]; ok {
						if err := tx.PutBlob(dueNamespace, nk, nil); err != nil {
							return err
						}
					}
				}
				return nil
			}); err != nil {
				return fmt.Errorf("dropping stale OCSP schedule keys: %w", err)
			}
		}
		st.Checked += seen
		n, _, err := r.signAndSave(ctx, due)
		st.Signed += n
		if err != nil {
			return err
		}
		if len(due)+len(stale) < refreshPage {
			return nil
		}
		if n == 0 && len(stale) == 0 {
			// Nothing was written (the responder changed under us): the
			// next pass retries rather than spin on the same page.
			return nil
		}
	}
}

// walkAll is the refresh of a store whose indexes do not cover every
// record yet (written by an older version): it walks every certificate,
// signs what is not current, and puts the current ones on the schedule
// and out of the dirty set.
func (r *Responder) walkAll(ctx context.Context) (RefreshStats, error) {
	var st RefreshStats
	oldest := int64(0)
	var after []byte
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		var certs []*store.Cert
		var due []*store.Cert
		now := r.now()
		err := r.store.Update(ctx, func(tx *store.Tx) error {
			var err error
			var next []byte
			due = due[:0]
			certs, next, err = tx.CertPage(after, refreshPage)
			if err != nil {
				return err
			}
			after = next
			for _, c := range certs {
				id := hex.EncodeToString(c.Serial)
				if now.Sub(c.NotAfter) > r.opts.Validity {
					if err := clearMark(tx, id); err != nil {
						return err
					}
					continue
				}
				b, err := tx.Blob(blobNamespace, id)
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
				if err := tx.PutBlob(dueNamespace, dueKey(rec, id), nil); err != nil {
					return err
				}
				if err := clearMark(tx, id); err != nil {
					return err
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

// clearMark clears a certificate's mark if it has one: a store written
// before the index has none, and a delete of every absent key would leave
// a million tombstones for compaction.
func clearMark(tx *store.Tx, id string) error {
	mark, err := tx.Dirty(store.DirtyOCSP, id)
	if err != nil || mark == nil {
		return err
	}
	return tx.ClearDirty(store.DirtyOCSP, id)
}
