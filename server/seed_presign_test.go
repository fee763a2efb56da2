package server

import (
	"context"
	"crypto/x509"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/store"
)

// TestSeedPresignsInItsBatches: the offline seed stores every seeded
// certificate's OCSP response, and its place in the refresh schedule, in
// the certificate's own transaction: after it, no OCSP dirty mark is left
// (none was written, so start-up has no tombstones to skip), every
// certificate has a response saying its status, and the server answers
// from them at once.
func TestSeedPresignsInItsBatches(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	opts := seedOptions(60, 0.25)
	opts.BatchSize = 7
	var batches atomic.Int32 // batches commit from parallel workers
	// In each batch's own transaction, before it commits: the batch's
	// certificates already have their responses and no mark (a crash
	// between batches leaves no certificate without its response).
	opts.OnBatch = func(tx *store.Tx, first, last string, _ int) error {
		batches.Add(1)
		for _, name := range []string{first, last} {
			n := 0
			if err := tx.CertsBySubscriber(name, func(c *store.Cert) error {
				n++
				if _, err := tx.Blob("ocsp", c.SerialHex()); err != nil {
					t.Errorf("%s's certificate has no response in its batch's transaction: %v", name, err)
				}
				if mark, err := tx.Dirty(store.DirtyOCSP, c.SerialHex()); err != nil || mark != nil {
					t.Errorf("%s's certificate is marked OCSP-dirty in its batch (%x, %v)", name, mark, err)
				}
				return nil
			}); err != nil || n != 1 {
				t.Errorf("%s has %d certificates (%v)", name, n, err)
			}
		}
		return nil
	}
	res, err := Seed(ctx, cfg, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := batches.Load(); n < 9 { // a retried transaction runs OnBatch again
		t.Errorf("%d batches of 7 for 60; want 9", n)
	}
	if res.Revoked != 15 || res.OCSPSigned < 60 {
		t.Fatalf("seed result %+v: want 15 revoked and at least 60 responses", res)
	}

	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir)})
	if err != nil {
		t.Fatal(err)
	}
	ocspMarks, _ := dirtyMarks(t, st)
	var good, revoked []string
	scheduled := map[string]bool{}
	if err := st.View(ctx, func(tx *store.Tx) error {
		if err := tx.EachBlob("ocsp-due", func(k string, _ []byte) error {
			if i := strings.IndexByte(k, '-'); i >= 0 {
				scheduled[k[i+1:]] = true
			}
			return nil
		}); err != nil {
			return err
		}
		// The CRLs the revocations made due are built before the seed
		// returns, not left to the next start.
		if _, err := tx.Blob("crl", cfg.CA.Name+".crl"); err != nil {
			t.Errorf("no full CRL after the seed: %v", err)
		}
		return tx.EachCert(func(c *store.Cert) error {
			if !strings.HasPrefix(c.SubscriberID, "seed-") {
				return nil
			}
			id := c.SerialHex()
			if _, err := tx.Blob("ocsp", id); err != nil {
				t.Errorf("seeded certificate %s has no stored response: %v", id, err)
			}
			if !scheduled[id] {
				t.Errorf("seeded certificate %s is not on the refresh schedule", id)
			}
			if c.Status == store.StatusRevoked {
				revoked = append(revoked, id)
			} else {
				good = append(good, id)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	// Nothing follows the change log here: the seed wrote no entries for
	// the server's first compaction to delete.
	entries, err := st.ReadLog(ctx, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	seeded := map[string]bool{}
	for _, id := range append(append([]string{}, good...), revoked...) {
		seeded[id] = true
	}
	for _, e := range entries {
		if seeded[e.Key] {
			t.Errorf("the seed wrote change-log entry %+v with no consumer to read it", e)
			break
		}
	}
	st.Close()
	if len(ocspMarks) != 0 {
		t.Errorf("the seed left %d OCSP dirty marks: %v", len(ocspMarks), ocspMarks)
	}
	if len(good) != 45 || len(revoked) != 15 {
		t.Fatalf("seeded %d good and %d revoked certificates; want 45 and 15", len(good), len(revoked))
	}

	s := startTest(t, cfg)
	public := "http://" + s.Addr("http")
	waitReady(t, public)
	issuer := readCert(t, filepath.Join(cfg.DataDir, bootstrap.CACert))
	code, body := get(t, http.DefaultClient, public+"/crl/"+cfg.CA.Name+".crl")
	if code != 200 {
		t.Fatalf("full CRL: %d", code)
	}
	list, err := x509.ParseRevocationList([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.RevokedCertificateEntries) != 15 {
		t.Errorf("full CRL lists %d; want the 15 seeded revocations", len(list.RevokedCertificateEntries))
	}
	for _, c := range []struct {
		serial string
		want   int
	}{{good[0], xocsp.Good}, {good[len(good)-1], xocsp.Good}, {revoked[0], xocsp.Revoked}, {revoked[len(revoked)-1], xocsp.Revoked}} {
		if got := ocspStatusAt(t, cfg.DataDir, public, c.serial, issuer); got != c.want {
			t.Errorf("OCSP status of seeded %s = %d; want %d", c.serial, got, c.want)
		}
	}
}

// TestSeedAppliesMemoryLimit: the offline seed runs under
// server.memory_limit, as the server does, and puts the previous limit
// back when it returns.
func TestSeedAppliesMemoryLimit(t *testing.T) {
	cfg := testConfig(t)
	cfg.Server.MemoryLimit = 300 << 20
	before := debug.SetMemoryLimit(-1)
	opts := seedOptions(3, 0)
	var during atomic.Int64
	opts.OnBatch = func(*store.Tx, string, string, int) error {
		during.Store(debug.SetMemoryLimit(-1))
		return nil
	}
	if _, err := Seed(context.Background(), cfg, slog.New(slog.DiscardHandler), opts); err != nil {
		t.Fatal(err)
	}
	if got := during.Load(); got != 300<<20 {
		t.Errorf("memory limit while seeding = %d; want server.memory_limit %d", got, 300<<20)
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("memory limit after the seed = %d; want the previous %d", got, before)
	}
}
