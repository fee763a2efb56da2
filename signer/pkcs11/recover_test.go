package pkcs11

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certcenter/certcenter/signer"
)

func mustSign(tb testing.TB, k crypto.Signer) {
	tb.Helper()
	d := digest(tb, crypto.SHA256, "recover")
	sig, err := k.Sign(nil, d, crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	if err := verify(k.Public(), d, sig, crypto.SHA256); err != nil {
		tb.Fatal(err)
	}
}

// eventually polls f until it returns nil or the deadline passes.
func eventually(tb testing.TB, within time.Duration, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("still failing after %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRecoverClosedSessions closes every session of the application under
// the Provider (C_CloseAllSessions from another handle on the module, which
// also ends the login). The next signature reopens and logs in again without
// the caller seeing an error.
func TestRecoverClosedSessions(t *testing.T) {
	tok := newToken(t, "closeall")
	p := tok.open(t, 4)
	ctx := context.Background()
	k, err := p.Generate(ctx, "ca", signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	raw := tok.raw(t)

	t.Run("ok/idle", func(t *testing.T) {
		mustSign(t, k)
		if err := raw.ctx.CloseAllSessions(raw.slot); err != nil {
			t.Fatal(err)
		}
		mustSign(t, k) // transparently reopened
		if err := p.Healthy(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ok/under-load", func(t *testing.T) {
		var wg sync.WaitGroup
		var signed, failed atomic.Int64
		stop := make(chan struct{})
		for range 16 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					d := digest(t, crypto.SHA256, "load")
					sig, err := k.Sign(nil, d, crypto.SHA256)
					if err != nil {
						failed.Add(1)
						t.Log(err)
						continue
					}
					if err := verify(k.Public(), d, sig, crypto.SHA256); err != nil {
						t.Error(err) // a wrong signature is never acceptable
						return
					}
					signed.Add(1)
				}
			})
		}
		for range 10 {
			time.Sleep(20 * time.Millisecond)
			// Between calls, not during one: SoftHSM2 frees the sessions in
			// C_CloseAllSessions while another thread may be inside C_Sign
			// on one of them, and crashes (use after free). PKCS#11 leaves
			// closing a session that another thread is using undefined, so
			// the write lock waits for the calls in flight and holds off
			// new ones; the goroutines still hold their sessions on loan.
			p.mod.mu.Lock()
			err := raw.ctx.CloseAllSessions(raw.slot)
			p.mod.mu.Unlock()
			if err != nil {
				t.Error(err)
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("%d signatures, %d failed while sessions were closed 10 times underneath", signed.Load(), failed.Load())
		// A signature can fail only if its sessions are closed under it on
		// every attempt; with 20ms between closes that should not happen.
		if n := failed.Load(); n > 0 {
			t.Errorf("%d signatures failed", n)
		}
		mustSign(t, k)
		if err := p.Healthy(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRecoverModuleReloaded finalises the module underneath the Provider
// (another user of the library in the process calls C_Finalize, and maybe
// C_Initialize again). Object and session handles die with it; the
// Provider re-initialises, finds its key again and keeps signing.
func TestRecoverModuleReloaded(t *testing.T) {
	tok := newToken(t, "reload")
	p := tok.open(t, 4)
	ctx := context.Background()
	k, err := p.Generate(ctx, "ca", signer.RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	mustSign(t, k)

	t.Run("ok/finalized", func(t *testing.T) {
		raw := tok.raw(t)
		if err := raw.ctx.Finalize(); err != nil {
			t.Fatal(err)
		}
		mustSign(t, k)
		if err := p.Healthy(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/finalized-and-initialized", func(t *testing.T) {
		raw := tok.raw(t)
		if err := raw.ctx.Finalize(); err != nil {
			t.Fatal(err)
		}
		if err := raw.ctx.Initialize(); err != nil {
			t.Fatal(err)
		}
		mustSign(t, k)
		if err := p.Healthy(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestRecoverTokenRecreated deletes the token directory underneath (what a
// pulled device or a wiped HSM partition looks like), then creates a token
// with the same label again. While it is gone Healthy fails; afterwards the
// Provider finds the new token by itself, the old key is reported missing
// (it never signs with a different key under the old name), and new keys work.
func TestRecoverTokenRecreated(t *testing.T) {
	tok := newToken(t, "recreate")
	// A bystander: another token of the same module, with its own Provider.
	// Recovering "recreate" reloads the module, which must cost the
	// bystander nothing but a transparent reopen. (Made first: SoftHSM2
	// sees new tokens only in C_Initialize.)
	other := &testToken{module: tok.module, dir: tok.dir, label: "bystander"}
	other.initToken(t)

	p := tok.open(t, 4)
	ctx := context.Background()
	k, err := p.Generate(ctx, "ca", signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	mustSign(t, k)
	bp := other.open(t, 2)
	bk, err := bp.Generate(ctx, "ca", signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		mustSign(t, bk)
		if err := bp.Healthy(ctx); err != nil {
			t.Errorf("bystander: %v", err)
		}
	}()

	tok.deleteToken(t)
	eventually(t, 5*time.Second, func() error {
		if err := p.Healthy(ctx); err == nil {
			return errors.New("Healthy still nil with the token deleted")
		} else {
			t.Logf("Healthy while deleted: %v", err)
		}
		return nil
	})
	if _, err := k.Sign(nil, make([]byte, 32), crypto.SHA256); err == nil {
		t.Fatal("signed with a deleted token")
	}

	tok.initToken(t)
	// The token is back but the key that Healthy test-signs with is not:
	// Healthy must get past the token and session checks to say so.
	eventually(t, 5*time.Second, func() error {
		err := p.Healthy(ctx)
		if errors.Is(err, signer.ErrKeyNotFound) {
			return nil
		}
		return fmt.Errorf("Healthy: %v, want the key reported missing", err)
	})
	if _, err := k.Sign(nil, make([]byte, 32), crypto.SHA256); !errors.Is(err, signer.ErrKeyNotFound) {
		t.Fatalf("Sign with the old key on the new token: %v, want ErrKeyNotFound", err)
	}
	k2, err := p.Generate(ctx, "ca", signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	mustSign(t, k2)
	if err := p.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
}
