package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"sync"

	"github.com/miekg/pkcs11"
)

// Signing goes through the module's function list directly (native.go): a
// signature is one cgo call instead of miekg/pkcs11's two, and a batch of
// signatures on one session is one cgo call in all. The second matters more
// than it looks. Measured on two cores with SoftHSM2, two goroutines each
// making a cgo call per signature reach ≈ 1.3–1.5x one goroutine, while the
// same two threads looping inside C reach ≈ 1.8x: every return from a
// 50 µs cgo call goes back through the Go scheduler, which by then has
// handed the P to another thread. Bulk signers (OCSP pre-signing) therefore
// use SignBatch. Handing single signatures to dedicated signing threads was
// tried and is worse (0.8x): a thread wake-up per signature costs about as
// much as the signature on a paravirtualised guest.

// maxChunk bounds the signatures one session makes in one cgo call, so a
// SignBatch of many digests still spreads over every session of the pool.
const maxChunk = 32

// signItems signs items on the caller's slot of p, natively while that
// works and one by one through signOne after the first failure, so each
// item gets the ordinary retries. It returns the raw signatures.
func (k *Key) signItems(items []*pkcs11.Mechanism, inputs [][]byte) ([][]byte, error) {
	p := k.p
	sigs := make([][]byte, 0, len(inputs))
	done := 0
	_ = p.withSession(func(s *session) error {
		h, err := k.handle(s)
		if err != nil {
			return err
		}
		batch := make([]batchItem, len(inputs)-done)
		key := p.sessionKey(s, h)
		for i := range batch {
			batch[i] = batchItem{key: key, mech: items[done+i], input: inputs[done+i]}
		}
		var got [][]byte
		err = p.mod.use(s.gen, func(*pkcs11.Ctx) (err error) {
			got, err = p.mod.native.signBatch(s.h, batch, k.maxSigLen())
			return err
		})
		sigs = append(sigs, got...)
		done += len(got)
		return err
	})
	for i := done; i < len(inputs); i++ {
		sig, err := k.signOne(items[i], inputs[i])
		if err != nil {
			return nil, err
		}
		sigs = append(sigs, sig)
	}
	return sigs, nil
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
		if errors.Is(err, pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)) || errors.Is(err, pkcs11.Error(pkcs11.CKR_OBJECT_HANDLE_INVALID)) {
			// The object was renumbered (module reloaded by someone else)
			// or deleted: look it up once more.
			k.ref.Store(nil)
			s.copies = nil
			if h, err = k.handle(s); err != nil {
				return err
			}
			sig, err = k.p.sign(s, mechs, h, input)
		}
		return err
	})
	return sig, err
}

// SignBatch signs each of digests as Sign would and returns the signatures
// in the same order. The digests are spread over every session of every
// module instance, each session signing its share in one cgo call, which
// is what makes bulk signing (OCSP pre-signing, CRL shards) scale with the
// pool. It fails as a whole if any signature fails.
func (k *Key) SignBatch(ctx context.Context, digests [][]byte, opts crypto.SignerOpts) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, err)
	}
	mechs := make([]*pkcs11.Mechanism, len(digests))
	inputs := make([][]byte, len(digests))
	for i, d := range digests {
		var err error
		if mechs[i], inputs[i], err = k.mechanism(d, opts); err != nil {
			return nil, fmt.Errorf("%s: signing with key %q: digest %d: %w", k.p.desc, k.label, i, err)
		}
	}
	keys := k.instances()
	sessions := 0
	for _, kk := range keys {
		sessions += cap(kk.p.sem)
	}
	// Guided self-scheduling: each worker takes a share of what is left,
	// so shares shrink towards the end and the sessions finish together
	// instead of idling while one works off a last large chunk.
	var mu sync.Mutex
	next := 0
	take := func() (lo, hi int) {
		mu.Lock()
		defer mu.Unlock()
		n := min(maxChunk, max(1, (len(digests)-next)/(2*sessions)))
		lo, hi = next, min(len(digests), next+n)
		next = hi
		return lo, hi
	}
	sigs := make([][]byte, len(digests))
	var wg sync.WaitGroup
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	// One worker per session, each tied to its instance.
	for w := range min(sessions, len(digests)) {
		kk := keys[w%len(keys)]
		wg.Go(func() {
			for {
				lo, hi := take()
				if lo == hi {
					return
				}
				if err := kk.p.acquireSlot(ctx); err != nil {
					fail(err)
					return
				}
				raw, err := kk.signItems(mechs[lo:hi], inputs[lo:hi])
				kk.p.releaseSlot()
				for i := range raw {
					if err == nil {
						sigs[lo+i], err = k.encode(raw[i])
					}
				}
				if err != nil {
					fail(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("%s: signing with key %q: %w", k.p.desc, k.label, firstErr)
	}
	return sigs, nil
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
// expect: DER for ECDSA, as is for RSA.
func (k *Key) encode(sig []byte) ([]byte, error) {
	if pub, ok := k.pub.(*ecdsa.PublicKey); ok {
		return ecdsaDER(sig, (pub.Curve.Params().BitSize+7)/8)
	}
	return sig, nil
}
