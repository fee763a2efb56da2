// Package seed adds synthetic subscribers with certificates to a store, for
// demos and benchmarks. Seeded subscribers are named seed-0000000,
// seed-0000001, ... continuing after the ones already there.
package seed

import (
	"context"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Options say how many to add.
type Options struct {
	Count           int
	RevokedFraction float64
	// Workers sign in parallel; default 2 × GOMAXPROCS: a worker waits for
	// its batch's commit (an fsync) with its core idle, and a second worker
	// per core signs meanwhile.
	Workers int
	// BatchSize certificates are stored per transaction; default 500.
	BatchSize int
	// Progress, if set, is called after each stored batch with the total so far.
	Progress func(done int)
	// Now is the clock of the subscribers' creation and the revocations;
	// default time.Now. (Certificates take the authority's clock.)
	Now func() time.Time
	// OnBatch, if set, runs in each batch's transaction with the names of
	// its first and last subscriber and how many it revokes (the API
	// writes its audit record there, so a batch and its record commit
	// together).
	OnBatch func(tx *store.Tx, first, last string, revoked int) error
	// Presign, if set, runs in each batch's transaction after the
	// revocations with the batch's certificates as they will commit, and
	// stores their OCSP responses there (the offline seed: one pass, no
	// second walk of the store to pre-sign them afterwards).
	Presign func(ctx context.Context, tx *store.Tx, certs []*store.Cert) error
}

// Result reports what was added.
type Result struct {
	Subscribers int
	Revoked     int
	First, Last string
	// OCSPSigned counts the OCSP responses pre-signed: the seeded ones
	// (with their batches) and any the refresh after the seed signed (set
	// by the caller).
	OCSPSigned int
	// CRLs is how long building the CRLs after seeding took (set by the
	// caller; 0: not built).
	CRLs    time.Duration
	Elapsed time.Duration
}

// Run issues opts.Count certificates through the authority's default CA.
func Run(ctx context.Context, st *store.Store, auth *ca.Authority, opts Options) (Result, error) {
	if opts.Count < 0 {
		return Result{}, fmt.Errorf("count %d must not be negative", opts.Count)
	}
	// Written as a negation so NaN, for which every comparison is false, is refused.
	if !(opts.RevokedFraction >= 0 && opts.RevokedFraction <= 1) {
		return Result{}, fmt.Errorf("revoked fraction %g must be between 0 and 1", opts.RevokedFraction)
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	iss, err := auth.Default()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	base, err := reserve(ctx, st, opts.Count)
	if err != nil {
		return Result{}, err
	}
	org := "certcenter"
	if len(iss.Cert.Subject.Organization) > 0 {
		org = iss.Cert.Subject.Organization[0]
	}

	type batch struct{ from, to int }
	jobs := make(chan batch)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		done     atomic.Int64
		revoked  atomic.Int64
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for w := 0; w < opts.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				n, err := seedBatch(ctx, st, auth, iss.Name, org, base, b.from, b.to, opts)
				if err != nil {
					fail(err)
					return
				}
				revoked.Add(int64(n))
				total := done.Add(int64(b.to - b.from))
				if opts.Progress != nil {
					opts.Progress(int(total))
				}
			}
		}()
	}
feed:
	for from := 0; from < opts.Count; from += opts.BatchSize {
		to := min(from+opts.BatchSize, opts.Count)
		select {
		case jobs <- batch{base + from, base + to}:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return Result{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	res := Result{Subscribers: opts.Count, Revoked: int(revoked.Load()), Elapsed: time.Since(start)}
	if opts.Count > 0 {
		res.First, res.Last = Name(base), Name(base+opts.Count-1)
	}
	return res, nil
}

// Name is the CN of the i-th seeded subscriber.
func Name(i int) string { return fmt.Sprintf("seed-%07d", i) }

// reserve takes the next n seed numbers from a counter in the store. A
// seed that was interrupted has used part of its range at most, so the next
// one never reuses a name: parallel batches commit out of order, and a
// search for the first unused name would land inside the gap.
func reserve(ctx context.Context, st *store.Store, n int) (int, error) {
	var base uint64
	err := st.Update(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob("seed", "next")
		switch {
		case errors.Is(err, store.ErrNotFound):
			base = 0
		case err != nil:
			return err
		case len(b) != 8:
			return fmt.Errorf("seed counter is corrupt (%d bytes)", len(b))
		default:
			base = binary.BigEndian.Uint64(b)
		}
		return tx.PutBlob("seed", "next", binary.BigEndian.AppendUint64(nil, base+uint64(n)))
	})
	if err != nil {
		return 0, fmt.Errorf("reserving seed numbers: %w", err)
	}
	return int(base), nil
}

var reasons = []ca.Reason{ca.ReasonKeyCompromise, ca.ReasonSuperseded, ca.ReasonAffiliationChanged, ca.ReasonCessationOfOperation}

// revokes says whether the k-th subscriber of a run (from 0) is revoked:
// when the rounded count of revocations among the first k+1 grows. Each
// run then revokes exactly round(count×fraction), spread evenly over its
// batches, whatever the batch size or the order batches commit in.
func revokes(k int, fraction float64) bool {
	return math.Round(float64(k+1)*fraction) > math.Round(float64(k)*fraction)
}

func seedBatch(ctx context.Context, st *store.Store, auth *ca.Authority, caName, org string, base, from, to int, opts Options) (int, error) {
	fraction, clock, onBatch := opts.RevokedFraction, opts.Now, opts.OnBatch
	reqs := make([]ca.IssueRequest, 0, to-from)
	subs := make([]*store.Subscriber, 0, to-from)
	now := clock().UTC()
	for i := from; i < to; i++ {
		name := Name(i)
		key, err := signer.GenerateKey(signer.ECDSAP256)
		if err != nil {
			return 0, err
		}
		subs = append(subs, &store.Subscriber{
			ID: name, CommonName: name, Surname: "Seed", UID: name, Email: name + "@seed.example",
			Organization: org, OrgUnit: fmt.Sprintf("unit-%02d", i%16), SerialNumber: fmt.Sprintf("ID%010d", i), CreatedAt: now,
		})
		reqs = append(reqs, ca.IssueRequest{
			CA: caName, Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(), SubscriberID: name,
			Subject:        &pkix.Name{CommonName: name, Organization: []string{org}, OrganizationalUnit: []string{subs[len(subs)-1].OrgUnit}},
			EmailAddresses: []string{subs[len(subs)-1].Email},
		})
	}
	// Subscribers, their certificates and the revocations commit in one
	// transaction: an interrupted seed leaves whole batches or nothing.
	revoked := 0
	_, err := auth.IssueBatchWith(ctx, reqs, func(tx *store.Tx, certs []*store.Cert) error {
		revoked = 0
		for _, s := range subs {
			if err := tx.PutSubscriber(s); err != nil {
				return err
			}
		}
		at := clock()
		for i, c := range certs {
			if !revokes(from+i-base, fraction) {
				continue
			}
			r, err := tx.RevokeCert(c.Serial, at, int(reasons[rand.IntN(len(reasons))]))
			if err != nil {
				return err
			}
			// The issued event that follows the commit carries c: make it
			// the record as committed, revoked, not the one before.
			*c = *r
			revoked++
		}
		if opts.Presign != nil {
			if err := opts.Presign(ctx, tx, certs); err != nil {
				return fmt.Errorf("pre-signing OCSP responses: %w", err)
			}
		}
		if onBatch != nil {
			return onBatch(tx, Name(from), Name(to-1), revoked)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return revoked, nil
}
