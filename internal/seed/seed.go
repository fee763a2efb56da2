// Package seed adds synthetic subscribers with certificates to a store, for
// demos and benchmarks. Seeded subscribers are named seed-0000000,
// seed-0000001, ... continuing after the ones already there.
package seed

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
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
	// Workers sign in parallel; default GOMAXPROCS.
	Workers int
	// BatchSize certificates are stored per transaction; default 500.
	BatchSize int
	// Progress, if set, is called after each stored batch with the total so far.
	Progress func(done int)
}

// Result reports what was added.
type Result struct {
	Subscribers int
	Revoked     int
	First, Last string
	// OCSPSigned counts responses pre-signed after seeding (set by the caller).
	OCSPSigned int
	Elapsed    time.Duration
}

// Run issues opts.Count certificates through the authority's default CA.
func Run(ctx context.Context, st *store.Store, auth *ca.Authority, opts Options) (Result, error) {
	if opts.Count < 0 {
		return Result{}, fmt.Errorf("count %d must not be negative", opts.Count)
	}
	if opts.RevokedFraction < 0 || opts.RevokedFraction > 1 {
		return Result{}, fmt.Errorf("revoked fraction %g must be between 0 and 1", opts.RevokedFraction)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	iss, err := auth.Default()
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	base, err := nextIndex(ctx, st)
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
				n, err := seedBatch(ctx, st, auth, iss.Name, org, b.from, b.to, opts.RevokedFraction)
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

// nextIndex finds the first unused seed number, so seeding twice adds more
// instead of colliding.
func nextIndex(ctx context.Context, st *store.Store) (int, error) {
	lo, hi := 0, 1
	exists := func(i int) (bool, error) {
		found := false
		err := st.View(ctx, func(tx *store.Tx) error {
			_, err := tx.Subscriber(Name(i))
			if err == nil {
				found = true
				return nil
			}
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		})
		return found, err
	}
	for {
		ok, err := exists(hi - 1)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	// the first missing index is in [lo, hi)
	for lo < hi {
		mid := (lo + hi) / 2
		ok, err := exists(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

var reasons = []ca.Reason{ca.ReasonKeyCompromise, ca.ReasonSuperseded, ca.ReasonAffiliationChanged, ca.ReasonCessationOfOperation}

func seedBatch(ctx context.Context, st *store.Store, auth *ca.Authority, caName, org string, from, to int, fraction float64) (int, error) {
	reqs := make([]ca.IssueRequest, 0, to-from)
	subs := make([]*store.Subscriber, 0, to-from)
	now := time.Now().UTC()
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
	if err := st.Update(ctx, func(tx *store.Tx) error {
		for _, s := range subs {
			if err := tx.PutSubscriber(s); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("storing seeded subscribers: %w", err)
	}
	certs, err := auth.IssueBatch(ctx, reqs)
	if err != nil {
		return 0, err
	}
	var serials [][]byte
	var rs []ca.Reason
	for _, c := range certs {
		if fraction > 0 && rand.Float64() < fraction {
			serials = append(serials, c.Serial)
			rs = append(rs, reasons[rand.IntN(len(reasons))])
		}
	}
	if len(serials) > 0 {
		if err := auth.RevokeBatch(ctx, serials, rs); err != nil {
			return 0, err
		}
	}
	return len(serials), nil
}
