package pkcs11

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

func digest(tb testing.TB, h crypto.Hash, msg string) []byte {
	tb.Helper()
	w := h.New()
	w.Write([]byte(msg))
	return w.Sum(nil)
}

// verify checks sig over d with pub the way an x509 verifier would.
func verify(pub crypto.PublicKey, d, sig []byte, opts crypto.SignerOpts) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, d, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			// Verify with the salt length the signer was asked for, so a
			// token that silently used another one is caught.
			want := *pss
			if want.SaltLength == rsa.PSSSaltLengthAuto {
				want.SaltLength = (pub.N.BitLen()-1+7)/8 - 2 - pss.Hash.Size()
			}
			return rsa.VerifyPSS(pub, pss.Hash, d, sig, &want)
		}
		return rsa.VerifyPKCS1v15(pub, opts.HashFunc(), d, sig)
	}
	return fmt.Errorf("unexpected key type %T", pub)
}

func TestSignVerify(t *testing.T) {
	tok := newToken(t, "sign")
	p := tok.open(t, 4)
	ctx := context.Background()

	pss := func(h crypto.Hash, salt int) *rsa.PSSOptions { return &rsa.PSSOptions{Hash: h, SaltLength: salt} }
	tests := []struct {
		alg  signer.Algorithm
		opts []crypto.SignerOpts
	}{
		{signer.ECDSAP256, []crypto.SignerOpts{crypto.SHA256, crypto.SHA384}},
		{signer.ECDSAP384, []crypto.SignerOpts{crypto.SHA384, crypto.SHA512}},
		{signer.RSA2048, []crypto.SignerOpts{
			crypto.SHA256, crypto.SHA384, crypto.SHA512,
			pss(crypto.SHA256, rsa.PSSSaltLengthEqualsHash),
			pss(crypto.SHA384, rsa.PSSSaltLengthEqualsHash),
			pss(crypto.SHA512, rsa.PSSSaltLengthEqualsHash),
			pss(crypto.SHA256, rsa.PSSSaltLengthAuto),
			pss(crypto.SHA256, 20),
		}},
		{signer.RSA3072, []crypto.SignerOpts{crypto.SHA256, pss(crypto.SHA384, rsa.PSSSaltLengthEqualsHash)}},
		{signer.RSA4096, []crypto.SignerOpts{crypto.SHA512, pss(crypto.SHA512, rsa.PSSSaltLengthEqualsHash)}},
	}
	for _, tc := range tests {
		t.Run(string(tc.alg), func(t *testing.T) {
			gen, err := p.Generate(ctx, "key-"+string(tc.alg), tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := signer.AlgorithmOf(gen.Public()); err != nil || got != tc.alg {
				t.Fatalf("public key is %v (%v), want %v", got, err, tc.alg)
			}
			// The same key found again by name, as ca.Load does after a restart.
			found, err := p.Signer(ctx, "key-"+string(tc.alg))
			if err != nil {
				t.Fatal(err)
			}
			if !gen.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(found.Public()) {
				t.Fatal("Signer found a different public key than Generate returned")
			}
			for _, opts := range tc.opts {
				name := "ok/" + opts.HashFunc().String()
				if ps, ok := opts.(*rsa.PSSOptions); ok {
					name = fmt.Sprintf("ok/PSS-%v-salt%d", ps.Hash, ps.SaltLength)
				}
				t.Run(name, func(t *testing.T) {
					for _, k := range []crypto.Signer{gen, found} {
						d := digest(t, opts.HashFunc(), "to be signed by "+string(tc.alg))
						sig, err := k.Sign(rand.Reader, d, opts)
						if err != nil {
							t.Fatal(err)
						}
						if err := verify(k.Public(), d, sig, opts); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
		})
	}

	t.Run("fail/digest-length", func(t *testing.T) {
		k, err := p.Signer(ctx, "key-"+string(signer.RSA2048))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Sign(nil, []byte("short"), crypto.SHA256); err == nil {
			t.Fatal("signed a 5-byte digest as SHA-256")
		}
		if _, err := k.Sign(nil, make([]byte, 20), crypto.SHA1); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Fatalf("SHA-1 RSA signature: %v, want not supported", err)
		}
	})
	t.Run("ok/by-id", func(t *testing.T) {
		k, err := p.Signer(ctx, "key-"+string(signer.ECDSAP256))
		if err != nil {
			t.Fatal(err)
		}
		byID, err := p.Signer(ctx, fmt.Sprintf("id:%x", k.(*Key).ID()))
		if err != nil {
			t.Fatal(err)
		}
		if byID.(*Key).Label() != k.(*Key).Label() {
			t.Fatalf("id lookup found %q", byID.(*Key).Label())
		}
	})
}

// TestKeyAttributes reads the new private key's attributes back from the
// token: it must be impossible to get the key out.
func TestKeyAttributes(t *testing.T) {
	tok := newToken(t, "attrs")
	p := tok.open(t, 2)
	ctx := context.Background()
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			s, err := p.Generate(ctx, "ca-"+string(alg), alg)
			if err != nil {
				t.Fatal(err)
			}
			k := s.(*Key)
			if want := subjectKeyID(k.Public()); !bytes.Equal(k.ID(), want) {
				t.Fatalf("CKA_ID %x, want the SHA-1 of the public key %x", k.ID(), want)
			}
			raw := tok.raw(t)
			if err := raw.ctx.FindObjectsInit(raw.h, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_PRIVATE_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_LABEL, k.Label()),
			}); err != nil {
				t.Fatal(err)
			}
			hs, _, err := raw.ctx.FindObjects(raw.h, 2)
			raw.ctx.FindObjectsFinal(raw.h)
			if err != nil || len(hs) != 1 {
				t.Fatalf("found %d private keys labelled %q: %v", len(hs), k.Label(), err)
			}
			want := map[uint]bool{
				pkcs11.CKA_TOKEN:             true,
				pkcs11.CKA_PRIVATE:           true,
				pkcs11.CKA_SENSITIVE:         true,
				pkcs11.CKA_ALWAYS_SENSITIVE:  true,
				pkcs11.CKA_EXTRACTABLE:       false,
				pkcs11.CKA_NEVER_EXTRACTABLE: true,
				pkcs11.CKA_SIGN:              true,
				pkcs11.CKA_DECRYPT:           false,
			}
			var tmpl []*pkcs11.Attribute
			for a := range want {
				tmpl = append(tmpl, pkcs11.NewAttribute(a, nil))
			}
			tmpl = append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_ID, nil))
			got, err := raw.ctx.GetAttributeValue(raw.h, hs[0], tmpl)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range got {
				if a.Type == pkcs11.CKA_ID {
					if !bytes.Equal(a.Value, k.ID()) {
						t.Errorf("token CKA_ID %x, key says %x", a.Value, k.ID())
					}
					continue
				}
				if v := len(a.Value) == 1 && a.Value[0] != 0; v != want[a.Type] {
					t.Errorf("attribute %#x = %v, want %v", a.Type, v, want[a.Type])
				}
			}
			// And the secret itself is refused.
			secret := uint(pkcs11.CKA_VALUE)
			if alg.RSABits() > 0 {
				secret = pkcs11.CKA_PRIVATE_EXPONENT
			}
			_, err = raw.ctx.GetAttributeValue(raw.h, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(secret, nil)})
			if !errors.Is(err, pkcs11.Error(pkcs11.CKR_ATTRIBUTE_SENSITIVE)) {
				t.Fatalf("reading the private value: %v, want CKR_ATTRIBUTE_SENSITIVE", err)
			}
		})
	}
}

func TestGenerateExists(t *testing.T) {
	tok := newToken(t, "exists")
	p := tok.open(t, 2)
	ctx := context.Background()
	if _, err := p.Generate(ctx, "ca", signer.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	_, err := p.Generate(ctx, "ca", signer.ECDSAP384)
	if !errors.Is(err, signer.ErrKeyExists) {
		t.Fatalf("second Generate: %v, want ErrKeyExists", err)
	}
	for _, want := range []string{`"exists"`, `"ca"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	// Concurrent Generate of one name: exactly one wins.
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, exists := 0, 0
	for range 8 {
		wg.Go(func() {
			_, err := p.Generate(ctx, "race", signer.ECDSAP256)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, signer.ErrKeyExists):
				exists++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || exists != 7 {
		t.Fatalf("concurrent Generate: %d created, %d ErrKeyExists; want 1 and 7", wins, exists)
	}
	for _, bad := range []string{"", "id:00"} {
		if _, err := p.Generate(ctx, bad, signer.ECDSAP256); err == nil {
			t.Errorf("Generate accepted name %q", bad)
		}
	}
	if _, err := p.Generate(ctx, "x", signer.Algorithm("dsa-1024")); err == nil {
		t.Error("Generate accepted an unknown algorithm")
	}
}

// TestErrors checks the messages an operator sees for the usual mistakes:
// each names the token (and key) and says what is wrong.
func TestErrors(t *testing.T) {
	tok := newToken(t, "errors")
	ctx := context.Background()
	slot := func(v uint) *uint { return &v }

	tests := []struct {
		name   string
		mod    func(*Options)
		is     error
		phrase []string
	}{
		{"fail/wrong-pin", func(o *Options) { o.PIN = "0000" }, ErrPINIncorrect, []string{`"errors"`, "PIN incorrect"}},
		{"fail/missing-token", func(o *Options) { o.TokenLabel = "nope" }, ErrTokenNotFound, []string{`"nope"`, "token not found", `"errors" in slot`}},
		{"fail/wrong-slot", func(o *Options) { o.TokenLabel = ""; o.Slot = slot(987654) }, ErrTokenNotFound, []string{"slot 987654", "token not found"}},
		{"fail/missing-module", func(o *Options) { o.Module = "/nonexistent/libp11.so" }, nil, []string{"/nonexistent/libp11.so"}},
		{"fail/no-pin", func(o *Options) { o.PIN = "" }, nil, []string{"no PIN"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := tok.options(t, 2)
			tc.mod(&o)
			p, err := Open(ctx, o)
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error is not %v", tc.is)
			}
			for _, ph := range tc.phrase {
				if !strings.Contains(err.Error(), ph) {
					t.Errorf("error %q does not contain %q", err, ph)
				}
			}
		})
	}

	t.Run("fail/missing-key", func(t *testing.T) {
		p := tok.open(t, 2)
		_, err := p.Signer(ctx, "no-such-key")
		t.Log(err)
		if !errors.Is(err, signer.ErrKeyNotFound) {
			t.Fatalf("error is not ErrKeyNotFound: %v", err)
		}
		for _, ph := range []string{`"errors"`, `"no-such-key"`} {
			if !strings.Contains(err.Error(), ph) {
				t.Errorf("error %q does not contain %s", err, ph)
			}
		}
		if err := p.Healthy(ctx); err != nil {
			t.Fatalf("a missing key must not make the token unhealthy: %v", err)
		}
	})
	t.Run("ok/slot-and-label", func(t *testing.T) {
		first := tok.open(t, 2)
		o := tok.options(t, 2)
		o.Slot = slot(first.slot)
		second, err := Open(ctx, o) // shares the module with first
		if err != nil {
			t.Fatal(err)
		}
		if err := second.Close(); err != nil {
			t.Fatal(err)
		}
		// first still works after second finalised nothing.
		if err := first.Healthy(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/closed", func(t *testing.T) {
		p, err := Open(ctx, tok.options(t, 2))
		if err != nil {
			t.Fatal(err)
		}
		k, err := p.Generate(ctx, "closed", signer.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		if _, err := k.Sign(nil, make([]byte, 32), crypto.SHA256); !errors.Is(err, ErrClosed) {
			t.Fatalf("Sign after Close: %v, want ErrClosed", err)
		}
		if err := p.Healthy(ctx); !errors.Is(err, ErrClosed) {
			t.Fatalf("Healthy after Close: %v, want ErrClosed", err)
		}
	})
}

// TestConcurrentSign signs from 64 goroutines through a pool of 4 sessions.
// Under -race it also proves the pool hands a session to one goroutine at a
// time (a shared session would fail with CKR_OPERATION_ACTIVE or produce
// signatures that do not verify).
func TestConcurrentSign(t *testing.T) {
	tok := newToken(t, "concurrent")
	const poolSize = 4
	p := tok.open(t, poolSize)
	ctx := context.Background()
	ec := mustGenerate(t, p, "ec", signer.ECDSAP256)
	rs := mustGenerate(t, p, "rsa", signer.RSA2048)
	signMixed(t, ec, rs, 64, 20, func(g, i int) error {
		if g%16 == 0 && i == 0 {
			return p.Healthy(ctx)
		}
		return nil
	})
	p.mu.Lock()
	idle := len(p.idle)
	p.mu.Unlock()
	if idle > poolSize || idle == 0 {
		t.Fatalf("%d idle sessions after the run, want 1..%d", idle, poolSize)
	}
}

func TestCapPoolSize(t *testing.T) {
	tests := []struct {
		name  string
		want  int
		maxRW uint
		size  int
	}{
		{"ok/infinite", 8, pkcs11.CK_EFFECTIVELY_INFINITE, 8},
		{"ok/unavailable", 8, pkcs11.CK_UNAVAILABLE_INFORMATION, 8},
		{"ok/below", 4, 16, 4},
		{"ok/equal", 16, 16, 16},
		{"ok/capped", 32, 5, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := capPoolSize(tc.want, tc.maxRW); got != tc.size {
				t.Fatalf("capPoolSize(%d, %d) = %d, want %d", tc.want, tc.maxRW, got, tc.size)
			}
		})
	}
}

// TestParseECPoint covers the CKA_EC_POINT encodings tokens use in the wild,
// which SoftHSM2 alone would not exercise.
func TestParseECPoint(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, _ := key.PublicKey.Bytes()
	// A bare point whose X begins with len-2 also parses as a DER OCTET
	// STRING (1 key in 256): always test one such key.
	for point[1] != byte(len(point)-2) {
		if key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
			t.Fatal(err)
		}
		point, _ = key.PublicKey.Bytes()
	}
	wrapped, _ := asn1.Marshal(point)
	p384, _ := asn1.Marshal(oidP384)
	p256, _ := asn1.Marshal(oidP256)
	secp256k1, _ := asn1.Marshal(asn1.ObjectIdentifier{1, 3, 132, 0, 10})
	tests := []struct {
		name          string
		params, point []byte
		ok            bool
	}{
		{"ok/octet-string", p384, wrapped, true},
		{"ok/bare-point", p384, point, true},
		{"fail/wrong-curve", p256, wrapped, false},
		{"fail/unsupported-curve", secp256k1, wrapped, false},
		{"fail/not-an-oid", []byte{0x04, 0x01, 0x00}, wrapped, false},
		{"fail/truncated", p384, wrapped[:20], false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pub, err := parseECPoint(tc.params, tc.point)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && !pub.Equal(&key.PublicKey) {
				t.Fatal("parsed a different key")
			}
		})
	}
}

// TestECDSADER compares the hand-written r||s to DER conversion with
// encoding/asn1, on the edge cases: leading zero bytes, top bit set, zero.
func TestECDSADER(t *testing.T) {
	for _, size := range []int{32, 48, 66} {
		half := func(fill func([]byte)) []byte {
			b := make([]byte, size)
			fill(b)
			return b
		}
		cases := map[string][2][]byte{
			"random":     {half(func(b []byte) { rand.Read(b) }), half(func(b []byte) { rand.Read(b) })},
			"top-bit":    {half(func(b []byte) { rand.Read(b); b[0] |= 0x80 }), half(func(b []byte) { rand.Read(b); b[0] |= 0x80 })},
			"leading-00": {half(func(b []byte) { rand.Read(b); b[0], b[1] = 0, 0x7f }), half(func(b []byte) { rand.Read(b); b[0], b[1], b[2] = 0, 0, 0x81 })},
			"zero-one":   {half(func(b []byte) {}), half(func(b []byte) { b[size-1] = 1 })},
		}
		for name, c := range cases {
			t.Run(fmt.Sprintf("ok/%d/%s", size, name), func(t *testing.T) {
				got, err := ecdsaDER(append(append([]byte{}, c[0]...), c[1]...), size)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(c[0]), new(big.Int).SetBytes(c[1])})
				if !bytes.Equal(got, want) {
					t.Fatalf("got  %x\nwant %x", got, want)
				}
			})
		}
	}
	if _, err := ecdsaDER(make([]byte, 63), 32); err == nil {
		t.Fatal("accepted a 63-byte P-256 signature")
	}
}

// TestSessionCopiesStaySealed checks the per-session copies Sign makes of a
// token key: session objects, as sensitive and non-extractable as the
// original, and never counted as a second key under its label.
func TestSessionCopiesStaySealed(t *testing.T) {
	tok := newToken(t, "copies")
	p := tok.open(t, 2)
	ctx := context.Background()
	s, err := p.Generate(ctx, "ca", signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	d := digest(t, crypto.SHA256, "copy")
	for i := 0; i < 4; i++ {
		if _, err := s.Sign(nil, d, crypto.SHA256); err != nil {
			t.Fatal(err)
		}
	}
	copies := 0
	err = p.do(ctx, func(sess *session) error {
		return p.mod.use(sess.gen, func(c *pkcs11.Ctx) error {
			for orig, cp := range sess.copies {
				if cp == orig {
					return errors.New("SoftHSM2 refused the session copy")
				}
				copies++
				got, err := c.GetAttributeValue(sess.h, cp, []*pkcs11.Attribute{
					pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
					pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil),
					pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil),
				})
				if err != nil {
					return err
				}
				want := map[uint]bool{pkcs11.CKA_TOKEN: false, pkcs11.CKA_SENSITIVE: true, pkcs11.CKA_EXTRACTABLE: false}
				for _, a := range got {
					if v := len(a.Value) == 1 && a.Value[0] != 0; v != want[a.Type] {
						t.Errorf("session copy attribute %#x = %v, want %v", a.Type, v, want[a.Type])
					}
				}
				if _, err := c.GetAttributeValue(sess.h, cp, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
					t.Error("the session copy's private value could be read")
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if copies == 0 {
		t.Fatal("signing made no session copy")
	}
	if _, err := p.Signer(ctx, "ca"); err != nil {
		t.Errorf("lookup by label with session copies present: %v", err)
	}
}

// signMixed signs from goroutines goroutines, each times, with ec and every
// fourth time with rs (RSA-PSS), and verifies every signature; before each
// signature it runs also(goroutine, i) if not nil.
func signMixed(t *testing.T, ec, rs crypto.Signer, goroutines, each int, also func(g, i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				k, opts := ec, crypto.SignerOpts(crypto.SHA256)
				if (g+i)%4 == 0 {
					k, opts = rs, &rsa.PSSOptions{Hash: crypto.SHA256, SaltLength: rsa.PSSSaltLengthEqualsHash}
				}
				err := error(nil)
				if also != nil {
					err = also(g, i)
				}
				if err == nil {
					d := digest(t, crypto.SHA256, fmt.Sprintf("%d/%d", g, i))
					var sig []byte
					if sig, err = k.Sign(nil, d, opts); err == nil {
						err = verify(k.Public(), d, sig, opts)
					}
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d signature %d: %w", g, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// mustGenerate makes a key pair on p under name.
func mustGenerate(t *testing.T, p *Provider, name string, alg signer.Algorithm) *Key {
	t.Helper()
	k, err := p.Generate(context.Background(), name, alg)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*Key)
}
