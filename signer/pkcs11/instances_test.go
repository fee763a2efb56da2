package pkcs11

import (
	"context"
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/certcenter/certcenter/signer"
)

// openInstances opens a Provider with n module instances and the given pool
// size, with private copies of the module made under a temporary directory
// the test can inspect.
func (tok *testToken) openInstances(tb testing.TB, pool, n int) (*Provider, string) {
	tb.Helper()
	tmp := tb.TempDir()
	tb.Setenv("TMPDIR", tmp)
	o := tok.options(tb, pool)
	o.ModuleInstances = n
	p, err := Open(context.Background(), o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
	})
	return p, tmp
}

func openModules() int {
	modules.mu.Lock()
	defer modules.mu.Unlock()
	return len(modules.byPath)
}

// TestModuleInstances signs through three instances of SoftHSM2 in one
// process: every instance is used, every signature verifies, the copies of
// the library are not left on disk, and Close unloads all three.
func TestModuleInstances(t *testing.T) {
	tok := newToken(t, "instances")
	p, tmp := tok.openInstances(t, 7, 3)
	if got := openModules(); got != 3 {
		t.Fatalf("%d modules loaded, want 3", got)
	}
	if len(p.peers) != 2 || cap(p.sem) != 3 || cap(p.peers[0].sem) != 2 || cap(p.peers[1].sem) != 2 {
		t.Fatalf("%d peers, want 2, and 7 sessions shared out 3+2+2", len(p.peers))
	}
	if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
		t.Fatalf("temporary directory after loading: %v %v, want empty", ents, err)
	}
	ctx := context.Background()
	ec := mustGenerate(t, p, "ec", signer.ECDSAP256)
	rs := mustGenerate(t, p, "rsa", signer.RSA2048)
	// Bulk signing alongside: it takes whatever sessions are free.
	batchDone := make(chan error, 1)
	go func() {
		for round := range 3 {
			digests := make([][]byte, 100)
			for i := range digests {
				digests[i] = digest(t, crypto.SHA256, fmt.Sprintf("batch %d/%d", round, i))
			}
			sigs, err := ec.SignBatch(ctx, digests, crypto.SHA256)
			for i := range sigs {
				if err == nil {
					err = verify(ec.Public(), digests[i], sigs[i], crypto.SHA256)
				}
			}
			if err != nil {
				batchDone <- fmt.Errorf("batch %d: %w", round, err)
				return
			}
		}
		batchDone <- nil
	}()
	signMixed(t, ec, rs, 32, 10, nil)
	if err := <-batchDone; err != nil {
		t.Error(err)
	}
	for i, inst := range append([]*Provider{p}, p.peers...) {
		inst.mu.Lock()
		idle := len(inst.idle)
		inst.mu.Unlock()
		if idle == 0 {
			t.Errorf("instance %d never opened a session", i)
		}
	}
	if err := p.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openModules(); got != 0 {
		t.Fatalf("%d modules still loaded after Close", got)
	}
}

// TestSignBatch signs batches with each mechanism, spread over instances and
// sessions, and checks that every signature belongs to its own digest.
func TestSignBatch(t *testing.T) {
	tok := newToken(t, "batch")
	p, _ := tok.openInstances(t, 4, 2)
	ctx := context.Background()
	ec := mustGenerate(t, p, "ec", signer.ECDSAP384)
	rs := mustGenerate(t, p, "rsa", signer.RSA2048)
	for _, c := range []struct {
		name string
		k    *Key
		opts crypto.SignerOpts
		n    int
	}{
		{"ok/ecdsa-p384", ec, crypto.SHA384, 150},
		{"ok/rsa-pkcs1", rs, crypto.SHA256, 40},
		{"ok/rsa-pss", rs, &rsa.PSSOptions{Hash: crypto.SHA512, SaltLength: rsa.PSSSaltLengthAuto}, 9},
		{"ok/one", ec, crypto.SHA384, 1},
		{"ok/none", ec, crypto.SHA384, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			digests := make([][]byte, c.n)
			for i := range digests {
				digests[i] = digest(t, c.opts.HashFunc(), fmt.Sprintf("%s %d", c.name, i))
			}
			sigs, err := c.k.SignBatch(ctx, digests, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(sigs) != c.n {
				t.Fatalf("%d signatures for %d digests", len(sigs), c.n)
			}
			for i := range sigs {
				if err := verify(c.k.Public(), digests[i], sigs[i], c.opts); err != nil {
					t.Fatalf("signature %d: %v", i, err)
				}
			}
		})
	}
	t.Run("bad/digest-length", func(t *testing.T) {
		digests := [][]byte{digest(t, crypto.SHA256, "a"), make([]byte, 20)}
		if _, err := ec.SignBatch(ctx, digests, crypto.SHA256); err == nil {
			t.Fatal("a 20-byte SHA-256 digest was signed")
		} else {
			t.Log(err)
		}
	})
	t.Run("bad/cancelled", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := ec.SignBatch(cctx, [][]byte{digest(t, crypto.SHA384, "a")}, crypto.SHA384)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("SignBatch with a cancelled context: %v", err)
		}
	})
}

// TestInstancesRecoverTokenRecreated deletes and re-creates the token under
// a Provider with two module instances: both notice, reload their copy of
// the module, and sign with a new key afterwards.
func TestInstancesRecoverTokenRecreated(t *testing.T) {
	tok := newToken(t, "recreate2")
	p, _ := tok.openInstances(t, 2, 2)
	ctx := context.Background()
	k := mustGenerate(t, p, "ca", signer.ECDSAP256)
	mustSign(t, k)
	tok.deleteToken(t)
	eventually(t, 5*time.Second, func() error {
		if p.Healthy(ctx) == nil {
			return errors.New("Healthy still nil with the token deleted")
		}
		return nil
	})
	tok.initToken(t)
	eventually(t, 5*time.Second, func() error {
		if err := p.Healthy(ctx); !errors.Is(err, signer.ErrKeyNotFound) {
			return fmt.Errorf("Healthy: %v, want the old key reported missing", err)
		}
		return nil
	})
	k2 := mustGenerate(t, p, "ca", signer.ECDSAP256)
	for range 8 { // spread over both instances
		mustSign(t, k2)
	}
	if err := p.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSignBatchAfterSessionsClosed closes every session under the Provider
// (C_CloseAllSessions from another handle on the module): the batch's
// sessions fail inside the parallel call, and what they could not sign is
// signed again after a transparent reopen.
func TestSignBatchAfterSessionsClosed(t *testing.T) {
	tok := newToken(t, "batchclosed")
	p := tok.open(t, 4)
	ctx := context.Background()
	k := mustGenerate(t, p, "ec", signer.ECDSAP256)
	digests := make([][]byte, 64)
	for i := range digests {
		digests[i] = digest(t, crypto.SHA256, fmt.Sprint(i))
	}
	if _, err := k.SignBatch(ctx, digests, crypto.SHA256); err != nil {
		t.Fatal(err)
	}
	raw := tok.raw(t)
	if err := raw.ctx.CloseAllSessions(raw.slot); err != nil {
		t.Fatal(err)
	}
	sigs, err := k.SignBatch(ctx, digests, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sigs {
		if err := verify(k.Public(), digests[i], sigs[i], crypto.SHA256); err != nil {
			t.Fatalf("signature %d: %v", i, err)
		}
	}
	if err := p.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSignBatchLetsSingleSignersIn runs a long batch on a one-session pool
// and a single signature while it runs: the batch gives its session back
// between rounds, so the single signature must not wait for the whole batch.
func TestSignBatchLetsSingleSignersIn(t *testing.T) {
	tok := newToken(t, "fair")
	p := tok.open(t, 1)
	ctx := context.Background()
	k := mustGenerate(t, p, "ec", signer.ECDSAP256)
	digests := make([][]byte, 100*perLane)
	for i := range digests {
		digests[i] = digest(t, crypto.SHA256, fmt.Sprint(i))
	}
	batchDone := make(chan struct{})
	go func() {
		defer close(batchDone)
		if _, err := k.SignBatch(ctx, digests, crypto.SHA256); err != nil {
			t.Error(err)
		}
	}()
	// Wait until the batch holds the session, then ask for one signature.
	for len(p.sem) == 0 {
		time.Sleep(time.Millisecond)
	}
	mustSign(t, k)
	select {
	case <-batchDone:
		t.Fatal("the single signature waited for the whole batch of 3200")
	default:
	}
	<-batchDone
}
