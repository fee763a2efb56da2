package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// Signing goes through the module's function list directly (native.go): a
// signature is one cgo call instead of miekg/pkcs11's two, and a batch over
// every free session is one cgo call in all, with C threads doing the
// signing. The second matters more than it looks. Measured on two cores
// with SoftHSM2, two goroutines each making a cgo call per signature reach
// ≈ 1.3–1.5x one goroutine, while the same two threads looping inside C
// reach ≈ 1.8x: every return from a 50 µs cgo call goes back through the Go
// scheduler, which by then has handed the P to another thread. Bulk signers
// (OCSP pre-signing) therefore use SignBatch. Handing single signatures to
// dedicated signing threads was tried and is worse (0.8x): a thread wake-up
// per signature costs about as much as the signature on a paravirtualised
// guest (PERFORMANCE.md).

// signFast signs input on a session of the caller's slot in one cgo call,
// and through signOne (two plain PKCS#11 calls, with the key looked up again
// if its handle went stale) if that fails.
func (k *Key) signFast(mech *pkcs11.Mechanism, input []byte) ([]byte, error) {
	p := k.p
	var sig []byte
	_ = p.withSession(func(s *session) error {
		h, err := k.handle(s)
		if err != nil {
			return err
		}
		l := lane{mod: p.mod.native, sh: s.h, key: p.sessionKey(s, h)}
		return p.mod.use(s.gen, func(*pkcs11.Ctx) (err error) {
			sig, err = signNative(l, batchItem{mech: mech, input: input}, k.maxSigLen())
			return err
		})
	})
	if sig != nil {
		return sig, nil
	}
	return k.signOne(mech, input)
}

// signOne signs on a session of the caller's slot with plain miekg/pkcs11
// calls, looking the key up again if its handle went stale.
func (k *Key) signOne(mech *pkcs11.Mechanism, input []byte) ([]byte, error) {
	var sig []byte
	mechs := []*pkcs11.Mechanism{mech}
	err := k.p.withSession(func(s *session) error {
		h, err := k.handle(s)
		if err != nil {
			return err
		}
		sig, err = k.p.sign(s, mechs, k.p.sessionKey(s, h), input)
		if staleHandle(err) {
			// The object was renumbered (module reloaded by someone else)
			// or deleted: look it up once more.
			k.forget(s)
			if h, err = k.handle(s); err != nil {
				return err
			}
			sig, err = k.p.sign(s, mechs, h, input)
		}
		return err
	})
	return sig, err
}

// staleHandle reports an error saying the key's object handle no longer
// names it.
func staleHandle(err error) bool {
	return errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID))
}

// forget drops the cached handle of the key and s's session copies, so the
// next use looks the key up again.
func (k *Key) forget(s *session) {
	k.ref.Store(nil)
	s.copies = nil
}

// signAlone signs one input on a slot of its own, with the usual retries,
// and returns the token's raw signature.
func (k *Key) signAlone(ctx context.Context, mech *pkcs11.Mechanism, input []byte) ([]byte, error) {
	if err := k.p.acquireSlot(ctx); err != nil {
		return nil, err
	}
	defer k.p.releaseSlot()
	return k.signFast(mech, input)
}

// SignBatch signs each of digests as Sign would and returns the signatures
// in the same order. It takes every session that is free across all module
// instances (waiting for one if none is) and signs on all of them at once
// in a single cgo call, one C thread per session (native.go), which is what
// makes bulk signing (OCSP pre-signing) scale with the pool. Whatever those
// sessions could not sign is then signed one by one with the usual retries.
// It fails as a whole if any signature fails.
func (k *Key) SignBatch(ctx context.Context, digests [][]byte, opts crypto.SignerOpts) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, err)
	}
	items := make([]batchItem, len(digests))
	for i, d := range digests {
		mech, input, err := k.mechanism(d, opts)
		if err != nil {
			return nil, fmt.Errorf("%s: signing with key %q: digest %d: %w", k.p.desc, k.label, i, err)
		}
		items[i] = batchItem{mech: mech, input: input}
	}
	if len(items) == 0 {
		return [][]byte{}, nil
	}
	// In rounds of perLane items per session: between rounds the sessions
	// go back to the pool, where single signers waiting for one (issuance,
	// nonced OCSP requests, the health probe) get them first, and ctx is
	// checked. A round's cgo call cannot be interrupted.
	raw := make([][]byte, 0, len(items))
	for len(raw) < len(items) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, err)
		}
		held, err := k.takeLanes(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, err)
		}
		if len(held) == 0 {
			// No session could be made ready: the one-by-one path below
			// reopens the token, or says why it cannot.
			raw = append(raw, make([][]byte, len(items)-len(raw))...)
			break
		}
		n := min(len(items)-len(raw), perLane*len(held))
		raw = append(raw, k.signOnLanes(held, items[len(raw):len(raw)+n])...)
	}
	sigs := make([][]byte, len(items))
	var err error
	for i := range items {
		if raw[i] == nil {
			raw[i], err = k.pick().signAlone(ctx, items[i].mech, items[i].input)
		}
		if err == nil {
			sigs[i], err = k.encode(raw[i])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: signing with key %q: digest %d: %w", k.p.desc, k.label, i, err)
		}
	}
	return sigs, nil
}

// perLane is how many signatures a SignBatch round gives each session: a
// round's thread starts are amortised over this many signatures, and a
// single signer waits at most this long for a session (≈ 1.6 ms for
// ECDSA P-256 on SoftHSM2, ≈ 20 ms for RSA-2048).
const perLane = 32

// heldLane is a session taken from an instance's pool for signParallel.
type heldLane struct {
	k     *Key // the key as found in the session's instance
	s     *session
	epoch uint64
	key   pkcs11.ObjectHandle
	err   error
}

// takeLanes takes every free session of every instance of the key, with
// its handle of the key; if none is free it waits for one.
func (k *Key) takeLanes(ctx context.Context) ([]*heldLane, error) {
	var held []*heldLane
	add := func(kk *Key) {
		s, err := kk.p.session()
		if err != nil {
			kk.p.releaseSlot()
			return
		}
		epoch := s.epoch
		h, err := kk.handle(s)
		if err != nil {
			kk.p.release(s, err)
			if gone(err) {
				kk.p.broken(epoch, err)
			}
			kk.p.releaseSlot()
			return
		}
		held = append(held, &heldLane{k: kk, s: s, epoch: epoch, key: kk.p.sessionKey(s, h)})
	}
	for _, kk := range k.instances() {
		for range cap(kk.p.sem) {
			if len(held) == maxLanes {
				break
			}
			select {
			case kk.p.sem <- struct{}{}:
				add(kk)
			default:
			}
		}
	}
	if len(held) == 0 {
		kk := k.pick()
		if err := kk.p.acquireSlot(ctx); err != nil {
			return nil, err
		}
		add(kk)
	}
	return held, nil
}

// signOnLanes signs items on the held sessions at once and gives the
// sessions back; it returns the signatures made (nil where none was).
func (k *Key) signOnLanes(held []*heldLane, items []batchItem) [][]byte {
	defer func() {
		for _, l := range held {
			p := l.k.p
			if staleHandle(l.err) {
				l.k.forget(l.s)
			}
			p.release(l.s, l.err)
			if gone(l.err) {
				p.broken(l.epoch, l.err)
			}
			p.releaseSlot()
		}
	}()
	lanes, used, unlock := lockLanes(held)
	defer unlock()
	sigs, laneErrs := signParallel(lanes, items, k.maxSigLen())
	for i, l := range used {
		l.err = laneErrs[i]
	}
	return sigs
}

// lockLanes holds each module instance's read lock once (lanes of one
// instance are adjacent, instances in a fixed order) so no handle reaches a
// module initialised again since its session was opened; lanes whose
// session is from an earlier initialisation are left out, marked stale.
func lockLanes(held []*heldLane) (lanes []lane, used []*heldLane, unlock func()) {
	var locked []*module
	for _, l := range held {
		m := l.k.p.mod
		if len(locked) == 0 || locked[len(locked)-1] != m {
			m.mu.RLock()
			locked = append(locked, m)
		}
		if m.gen != l.s.gen {
			l.err = errStale
			continue
		}
		lanes = append(lanes, lane{mod: m.native, sh: l.s.h, key: l.key})
		used = append(used, l)
	}
	return lanes, used, func() {
		for _, m := range locked {
			m.mu.RUnlock()
		}
	}
}

// maxSigLen is the longest signature the key makes: r||s for ECDSA, the
// modulus size for RSA.
func (k *Key) maxSigLen() int {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		return 2 * ((pub.Curve.Params().BitSize + 7) / 8)
	case *rsa.PublicKey:
		return pub.Size()
	}
	return 1024
}

// encode turns the token's signature into what crypto.Signer callers
// expect: DER for ECDSA, as is for RSA (which is always the modulus size).
func (k *Key) encode(sig []byte) ([]byte, error) {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsaDER(sig, (pub.Curve.Params().BitSize+7)/8)
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return nil, fmt.Errorf("token returned a %d-byte RSA signature, want %d", len(sig), pub.Size())
		}
	}
	return sig, nil
}
