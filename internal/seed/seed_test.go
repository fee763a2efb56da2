package seed_test

import (
	"context"
	"crypto/x509"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// seeded reads back every seeded subscriber's certificates.
func seeded(t *testing.T, e *testenv.Env) map[string]*store.Cert {
	t.Helper()
	out := map[string]*store.Cert{}
	if err := e.Store.View(e.Ctx, func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if strings.HasPrefix(c.CommonName, "seed-") {
				if _, dup := out[c.CommonName]; dup {
					t.Errorf("two certificates for %s", c.CommonName)
				}
				out[c.CommonName] = c
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name        string
		count       int
		fraction    float64
		batch       int
		wantRevoked int
	}{
		{"ok/none revoked", 12, 0, 5, 0},
		{"ok/a quarter over uneven batches", 20, 0.25, 3, 5},
		{"ok/half in one batch", 30, 0.5, 100, 15},
		{"ok/all revoked", 9, 1, 4, 9},
		{"ok/a tenth of 25 rounds to 3", 25, 0.1, 6, 3},
		{"ok/a tenth of 4 rounds to 0", 4, 0.1, 1, 0},
		{"ok/nothing to seed", 0, 0.5, 10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := testenv.New(t, testenv.Options{})
			e.Clock.Advance(-1000) // a clock apart from the real one
			res, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: tc.count, RevokedFraction: tc.fraction, BatchSize: tc.batch, Workers: 3, Now: e.Clock.Now})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Subscribers != tc.count || res.Revoked != tc.wantRevoked {
				t.Fatalf("result %+v, want %d subscribers, %d revoked", res, tc.count, tc.wantRevoked)
			}
			if tc.count > 0 && (res.First != "seed-0000000" || res.Last != seed.Name(tc.count-1)) {
				t.Errorf("result names %s..%s", res.First, res.Last)
			}
			certs := seeded(t, e)
			if len(certs) != tc.count {
				t.Fatalf("%d seeded certificates, want %d", len(certs), tc.count)
			}
			if n := e.Counts(); n.Subscribers != tc.count || n.Revoked != tc.wantRevoked {
				t.Errorf("store counts %+v, want %d subscribers and %d revoked", n, tc.count, tc.wantRevoked)
			}
			revoked := 0
			for i := range tc.count {
				name := seed.Name(i)
				c, ok := certs[name]
				if !ok {
					t.Fatalf("no certificate for %s", name)
				}
				x, err := x509.ParseCertificate(c.DER)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := x.Verify(x509.VerifyOptions{Roots: e.Roots(), CurrentTime: e.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
					t.Errorf("%s does not verify: %v", name, err)
				}
				if x.Subject.CommonName != name || c.SubscriberID != name || len(x.EmailAddresses) != 1 || x.EmailAddresses[0] != name+"@seed.example" {
					t.Errorf("%s: subject %s, subscriber %s, mail %v", name, x.Subject, c.SubscriberID, x.EmailAddresses)
				}
				if c.Status == store.StatusRevoked {
					revoked++
					if !c.RevokedAt.Equal(e.Clock.Now()) {
						t.Errorf("%s revoked at %v, want the clock's %v", name, c.RevokedAt, e.Clock.Now())
					}
					if r := ca.Reason(c.Reason); r == ca.ReasonUnspecified || r == ca.ReasonCertificateHold {
						t.Errorf("%s revoked with reason %s", name, r)
					}
				}
				var s *store.Subscriber
				e.Store.View(e.Ctx, func(tx *store.Tx) error {
					s, err = tx.Subscriber(name)
					return err
				})
				if err != nil || s.CommonName != name || !s.CreatedAt.Equal(e.Clock.Now()) {
					t.Errorf("subscriber %s: %+v, %v (want created at the clock's time)", name, s, err)
				}
			}
			if revoked != tc.wantRevoked {
				t.Errorf("%d revoked in the store, want %d", revoked, tc.wantRevoked)
			}
		})
	}
}

// TestRunContinues: a second seed continues after the first one's names,
// also after an interrupted one.
func TestRunContinues(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	first, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 5})
	if err != nil {
		t.Fatal(err)
	}
	// Interrupted after its first batch: it reserved 5..12 and stored at
	// most some whole batches of them.
	ctx, cancel := context.WithCancel(e.Ctx)
	defer cancel()
	if _, err := seed.Run(ctx, e.Store, e.CA, seed.Options{Count: 8, BatchSize: 2, Workers: 1, Progress: func(int) { cancel() }}); err == nil {
		t.Fatal("an interrupted seed reported success")
	}
	e.Restart() // the counter is in the store, not in memory
	second, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 3, BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if first.First != "seed-0000000" || first.Last != "seed-0000004" {
		t.Errorf("first seed %s..%s", first.First, first.Last)
	}
	// Never a name of the interrupted seed's range, stored or not.
	if second.First != "seed-0000013" || second.Last != "seed-0000015" {
		t.Errorf("second seed %s..%s, want seed-0000013..seed-0000015", second.First, second.Last)
	}
	certs := seeded(t, e)
	for _, n := range []int{0, 4, 5, 6, 13, 14, 15} {
		if certs[seed.Name(n)] == nil {
			t.Errorf("%s missing", seed.Name(n))
		}
	}
	if interrupted := len(certs) - 8; interrupted < 2 || interrupted%2 != 0 {
		t.Errorf("the interrupted seed stored %d certificates, want whole batches of 2, at least the first", interrupted)
	}
}

// TestRunEvents: the CA's events after a seed carry the certificates as
// committed, revoked ones revoked, so a subscriber (the OCSP responder)
// does not sign "good" for a revoked certificate.
func TestRunEvents(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	var mu sync.Mutex
	events := map[string]*store.Cert{}
	e.CA.Subscribe(func(_ context.Context, ev ca.Event) {
		mu.Lock()
		events[ev.Cert.SerialHex()] = ev.Cert
		mu.Unlock()
	})
	if _, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 10, RevokedFraction: 0.5, BatchSize: 4}); err != nil {
		t.Fatal(err)
	}
	certs := seeded(t, e)
	if len(events) != len(certs) {
		t.Fatalf("%d events for %d certificates", len(events), len(certs))
	}
	for name, c := range certs {
		ev := events[c.SerialHex()]
		if ev == nil || ev.Status != c.Status || !ev.UpdatedAt.Equal(c.UpdatedAt) {
			t.Errorf("%s is %s in the store, but its event says %v", name, c.Status, ev)
		}
	}
}

func TestRunRefuses(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	for _, tc := range []struct {
		name string
		opts seed.Options
		msg  string
	}{
		{"fail/negative count", seed.Options{Count: -1}, "count -1 must not be negative"},
		{"fail/fraction over 1", seed.Options{Count: 1, RevokedFraction: 1.5}, "between 0 and 1"},
		{"fail/negative fraction", seed.Options{Count: 1, RevokedFraction: -0.1}, "between 0 and 1"},
		{"fail/NaN fraction", seed.Options{Count: 1, RevokedFraction: math.NaN()}, "between 0 and 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.Counts()
			_, err := seed.Run(e.Ctx, e.Store, e.CA, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Run: %v, want an error with %q", err, tc.msg)
			}
			if after := e.Counts(); after != before {
				t.Errorf("a refused seed changed the store: %+v -> %+v", before, after)
			}
		})
	}
	t.Run("fail/corrupt counter", func(t *testing.T) {
		if err := e.Store.Update(e.Ctx, func(tx *store.Tx) error { return tx.PutBlob("seed", "next", []byte{1, 2, 3}) }); err != nil {
			t.Fatal(err)
		}
		before := e.Counts()
		if _, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 2}); err == nil || !strings.Contains(err.Error(), "seed counter is corrupt (3 bytes)") {
			t.Fatalf("Run: %v, want a corrupt counter error", err)
		}
		if after := e.Counts(); after != before {
			t.Errorf("store changed: %+v -> %+v", before, after)
		}
	})
}

func BenchmarkRun(b *testing.B) {
	e := testenv.New(b, testenv.Options{})
	b.ResetTimer()
	for b.Loop() {
		if _, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 2000, RevokedFraction: 0.02}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPresignSeesBatchAsCommitted: Presign runs in each batch's
// transaction after the revocations, with the certificates as they will
// commit (revoked ones revoked); what it writes commits with the batch,
// and an error from it rolls the batch back and fails the run.
func TestPresignSeesBatchAsCommitted(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	var mu sync.Mutex
	seen := map[string]store.CertStatus{}
	_, err := seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 20, RevokedFraction: 0.25, BatchSize: 6, Workers: 2, Now: e.Clock.Now,
		Presign: func(_ context.Context, tx *store.Tx, certs []*store.Cert) error {
			mu.Lock()
			defer mu.Unlock()
			for _, c := range certs {
				stored, err := tx.Cert(c.Serial)
				if err != nil {
					return err
				}
				if stored.Status != c.Status || !stored.UpdatedAt.Equal(c.UpdatedAt) {
					t.Errorf("%s: Presign got status %v updated %v, the transaction holds %v %v", c.CommonName, c.Status, c.UpdatedAt, stored.Status, stored.UpdatedAt)
				}
				seen[c.SerialHex()] = c.Status
				if err := tx.PutBlob("presign-test", c.SerialHex(), []byte{1}); err != nil {
					return err
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	revoked := 0
	for _, st := range seen {
		if st == store.StatusRevoked {
			revoked++
		}
	}
	if len(seen) != 20 || revoked != 5 {
		t.Fatalf("Presign saw %d certificates, %d revoked; want 20 and 5", len(seen), revoked)
	}
	for serial := range seen {
		if err := e.Store.View(e.Ctx, func(tx *store.Tx) error { _, err := tx.Blob("presign-test", serial); return err }); err != nil {
			t.Errorf("what Presign wrote for %s did not commit: %v", serial, err)
		}
	}

	before := len(seeded(t, e))
	_, err = seed.Run(e.Ctx, e.Store, e.CA, seed.Options{Count: 4, BatchSize: 4, Now: e.Clock.Now,
		Presign: func(context.Context, *store.Tx, []*store.Cert) error { return errors.New("signer gone") }})
	if err == nil || !strings.Contains(err.Error(), "signer gone") {
		t.Fatalf("Run with a failing Presign: %v", err)
	}
	if after := len(seeded(t, e)); after != before {
		t.Errorf("a batch whose Presign failed committed: %d seeded certificates, %d before", after, before)
	}
}
