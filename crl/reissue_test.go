package crl

import (
	"context"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// fullBuilds is how many full CRL builds have succeeded
// (certcenter_crl_builds_total{kind="full",result="ok"}).
func fullBuilds(t *testing.T, b *Builder) int {
	t.Helper()
	var m dto.Metric
	if err := b.metrics.builds.WithLabelValues("full", "ok").Write(&m); err != nil {
		t.Fatal(err)
	}
	return int(m.GetCounter().GetValue())
}

// run starts the builder's schedule with every revocation notified, as
// server/wire_crl.go wires it.
func (e *env) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.b.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); e.b.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e.ca.Subscribe(func(_ context.Context, ev ca.Event) {
		if ev.Kind == ca.EventRevoked {
			e.b.Notify(ev.Cert.Issuer)
		}
	})
}

func lists(rl *x509.RevocationList, serials ...*big.Int) bool {
	have := map[string]bool{}
	for _, ent := range rl.RevokedCertificateEntries {
		have[ent.SerialNumber.String()] = true
	}
	for _, s := range serials {
		if !have[s.String()] {
			return false
		}
	}
	return true
}

// waitFull polls the full CRL served over HTTP until it lists every serial;
// the deadline is generous (the target is 5 s), not a timing assertion.
func waitFull(t *testing.T, e *env, url string, serials ...*big.Int) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, body := get(t, url, nil)
		if resp.StatusCode == 200 && lists(e.parse(body), serials...) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("the full CRL at %s does not list the revocations after 30 s", url)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A revocation reaches the full CRL served over HTTP within seconds, not at
// the next crl.interval, so a client that ignores delta CRLs (openssl
// verify -crl_check without -use_deltas, the JDK) sees it.
func TestRevocationReissuesFullCRL(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.run(t)
	srv := newServer(t, e)
	certs := e.issue(2)
	oldDER := e.blob("demo.crl")
	before := e.parse(oldDER).Number
	start := time.Now()
	e.revoke(certs[0], ca.ReasonKeyCompromise)
	der := waitFull(t, e, srv.URL+"/crl/demo.crl", certs[0].SerialNumber)
	t.Logf("revocation in the full CRL over HTTP after %s", time.Since(start).Round(time.Millisecond))
	full := e.parse(der)
	if full.Number.Cmp(before) <= 0 {
		t.Errorf("full CRL number %s not above %s", full.Number, before)
	}
	// The delta issued with the re-issued full CRL shares its number (RFC
	// 5280 §5.2.3) and keeps the base of the scheduled full CRL, so a
	// relying party still holding that one applies the delta and sees the
	// revocation without downloading the full CRL again.
	deltaDER := e.blob("demo-delta.crl")
	delta := e.parse(deltaDER)
	if base := deltaBase(t, delta); base.Cmp(before) != 0 || delta.Number.Cmp(full.Number) != 0 {
		t.Errorf("delta %s based on %s, want number %s (the re-issued full CRL's) based on %s", delta.Number, base, full.Number, before)
	}
	dir := t.TempDir()
	caPEM := writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", e.iss.Cert.Raw)
	out := opensslFails(t, "verify", "-CAfile", caPEM, "-crl_check", "-use_deltas",
		"-CRLfile", writePEM(t, filepath.Join(dir, "old-full.pem"), "X509 CRL", oldDER),
		"-CRLfile", writePEM(t, filepath.Join(dir, "delta.pem"), "X509 CRL", deltaDER),
		writePEM(t, filepath.Join(dir, "revoked-delta.pem"), "CERTIFICATE", certs[0].Raw))
	if !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -use_deltas with the old full CRL and the new delta: %s", out)
	}
	fullPEM := writePEM(t, filepath.Join(dir, "full.pem"), "X509 CRL", der)
	out = opensslFails(t, "verify", "-CAfile", caPEM, "-CRLfile", fullPEM, "-crl_check",
		writePEM(t, filepath.Join(dir, "revoked.pem"), "CERTIFICATE", certs[0].Raw))
	if !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_check with the full CRL: %s", out)
	}
	openssl(t, "verify", "-CAfile", caPEM, "-CRLfile", fullPEM, "-crl_check",
		writePEM(t, filepath.Join(dir, "good.pem"), "CERTIFICATE", certs[1].Raw))
}

// deltaBase is the BaseCRLNumber of a delta CRL.
func deltaBase(t *testing.T, rl *x509.RevocationList) *big.Int {
	t.Helper()
	for _, ext := range rl.Extensions {
		if ext.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 27}) {
			n := new(big.Int)
			if _, err := asn1.Unmarshal(ext.Value, &n); err != nil {
				t.Fatalf("delta CRL indicator: %v", err)
			}
			return n
		}
	}
	t.Fatal("not a delta CRL")
	return nil
}

// A burst of revocations that arrives while a full CRL is being built (the
// CA's build lock is held, as by a 2.5 s build of a million entries) costs
// one more full build, not one per revocation.
func TestRevocationBurstCoalesces(t *testing.T) {
	const n = 100
	e := newEnv(t, envOpts{})
	e.run(t)
	certs := e.issue(n)
	builds := fullBuilds(t, e.b)

	unlock := e.b.lock("demo") // a long build in progress
	e.revoke(certs[0], ca.ReasonKeyCompromise)
	// Wait until Run has taken that revocation and waits for the lock.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		e.b.pendMu.Lock()
		taken := len(e.b.pending) == 0 && e.b.timer == nil
		e.b.pendMu.Unlock()
		if taken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not take the first revocation")
		}
	}
	var serials []*big.Int
	for _, c := range certs {
		serials = append(serials, c.SerialNumber)
		if c != certs[0] {
			e.revoke(c, ca.ReasonSuperseded)
		}
	}
	unlock()
	srv := newServer(t, e)
	waitFull(t, e, srv.URL+"/crl/demo.crl", serials...)
	// Let Run take what is pending and finish the build it is in.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		e.b.pendMu.Lock()
		idle := len(e.b.pending) == 0 && e.b.timer == nil
		e.b.pendMu.Unlock()
		if idle {
			break
		}
	}
	e.b.lock("demo")()
	if got := fullBuilds(t, e.b) - builds; got > 2 {
		t.Errorf("%d revocations cost %d full CRL builds, want at most 2", n, got)
	}
	t.Logf("%d revocations, %d full CRL builds", n, fullBuilds(t, e.b)-builds)
}

// A revocation committed before the process died, and before its full CRL
// was rebuilt, is in the full CRL after the restart: the revocation record,
// written in the revocation's transaction, is what marks the full CRL
// dirty, and Repair compares the CRL with it.
func TestRepairRebuildsADirtyFullCRL(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	if err := e.b.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	certs := e.issue(2)
	for i, c := range certs {
		e.restart()
		// Committed the way ca.Revoke does it, without the event: the
		// process died before Notify's rebuild.
		err := e.store.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.RevokeCert(c.SerialNumber.Bytes(), e.clock.Now(), 1)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		e.restart()
		if m := e.marks(); len(m) != 2 {
			t.Fatalf("dirty marks after the revocation = %v; want the full and the delta CRL's", m)
		}
		if err := e.b.Repair(ctx); err != nil {
			t.Fatal(err)
		}
		if m := e.marks(); len(m) != 0 {
			t.Fatalf("dirty marks after the repair = %v; want none", m)
		}
		full := e.parse(e.blob("demo.crl"))
		if !lists(full, c.SerialNumber) || len(full.RevokedCertificateEntries) != i+1 {
			t.Fatalf("after restart %d the full CRL lists %d entries, want the committed revocation", i, len(full.RevokedCertificateEntries))
		}
		// Nothing changed since: a second repair keeps it.
		if err := e.b.Repair(ctx); err != nil {
			t.Fatal(err)
		}
		if again := e.parse(e.blob("demo.crl")); again.Number.Cmp(full.Number) != 0 {
			t.Errorf("repair rebuilt a current full CRL: %s -> %s", full.Number, again.Number)
		}
	}
}
