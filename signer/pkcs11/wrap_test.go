package pkcs11

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

func TestKeyWrapper(t *testing.T) {
	ctx := context.Background()
	tok := newToken(t, "wrap")
	p := tok.open(t, 2)
	w, err := p.KeyWrapper(ctx, "escrow-kek")
	if err != nil {
		t.Fatal(err)
	}
	// A second call finds the same KEK rather than making another.
	if _, err := p.KeyWrapper(ctx, "escrow-kek"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, 7, 8, 121, 1218} {
		secret := bytes.Repeat([]byte{byte(n)}, n)
		aad := []byte("serial 0a")
		sealed, err := w.Wrap(ctx, secret, aad)
		if err != nil {
			t.Fatalf("wrap %d bytes: %v", n, err)
		}
		if n > 7 && bytes.Contains(sealed, secret) {
			t.Fatal("the wrapped key holds the secret in clear")
		}
		got, err := w.Unwrap(ctx, sealed, aad)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("unwrap %d bytes: %x, %v", n, got, err)
		}
		if _, err := w.Unwrap(ctx, sealed, []byte("serial 0b")); !errors.Is(err, signer.ErrUnwrap) {
			t.Fatalf("other aad: %v, want ErrUnwrap", err)
		}
		tampered := bytes.Clone(sealed)
		tampered[3] ^= 0x40
		if _, err := w.Unwrap(ctx, tampered, aad); !errors.Is(err, signer.ErrUnwrap) {
			t.Fatalf("tampered: %v, want ErrUnwrap", err)
		}
	}
	// The provider still signs after refused unwraps: the pool did not
	// take the refusals for a lost token.
	if err := p.Healthy(ctx); err != nil {
		t.Fatal(err)
	}

	// The KEK is one token object, sensitive and never extractable.
	r := tok.raw(t)
	if err := r.ctx.Login(r.h, pkcs11.CKU_USER, testPIN); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
		t.Fatal(err)
	}
	if err := r.ctx.FindObjectsInit(r.h, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, "escrow-kek")}); err != nil {
		t.Fatal(err)
	}
	hs, _, err := r.ctx.FindObjects(r.h, 5)
	r.ctx.FindObjectsFinal(r.h)
	if err != nil || len(hs) != 1 {
		t.Fatalf("objects labelled escrow-kek: %d, %v", len(hs), err)
	}
	attrs, err := r.ctx.GetAttributeValue(r.h, hs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, nil), pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, nil), pkcs11.NewAttribute(pkcs11.CKA_TOKEN, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if attrs[0].Value[0] != 1 || attrs[1].Value[0] != 0 || attrs[2].Value[0] != 1 {
		t.Fatalf("KEK sensitive=%v extractable=%v token=%v, want true false true", attrs[0].Value, attrs[1].Value, attrs[2].Value)
	}
	if _, err := r.ctx.GetAttributeValue(r.h, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
		t.Fatal("the KEK's value was readable")
	}
}

func TestFrame(t *testing.T) {
	for _, tc := range []struct {
		secret, aad string
	}{{"", ""}, {"x", "serial"}, {"0123456789abcdef0123", "a"}} {
		f, err := frame([]byte(tc.secret), []byte(tc.aad))
		if err != nil || len(f)%8 != 0 || len(f) < 16 {
			t.Fatalf("frame(%q, %q) = %d bytes, %v", tc.secret, tc.aad, len(f), err)
		}
		got, err := unframe(f, []byte(tc.aad))
		if err != nil || string(got) != tc.secret {
			t.Fatalf("unframe = %q, %v", got, err)
		}
	}
	if _, err := unframe([]byte{0, 0, 0, 0, 0, 9, 1}, nil); !errors.Is(err, signer.ErrUnwrap) {
		t.Fatalf("bad length: %v", err)
	}
}

// BenchmarkKeyWrapper wraps and unwraps a 1218-byte secret (an RSA 2048
// PKCS#8 key) with the token's KEK.
func BenchmarkKeyWrapper(b *testing.B) {
	ctx := context.Background()
	tok := newToken(b, "wrapbench")
	p := tok.open(b, 2)
	w, err := p.KeyWrapper(ctx, "kek")
	if err != nil {
		b.Fatal(err)
	}
	secret := bytes.Repeat([]byte{7}, 1218)
	sealed, _ := w.Wrap(ctx, secret, []byte("aad"))
	b.Run("wrap", func(b *testing.B) {
		for b.Loop() {
			if _, err := w.Wrap(ctx, secret, []byte("aad")); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unwrap", func(b *testing.B) {
		for b.Loop() {
			if _, err := w.Unwrap(ctx, sealed, []byte("aad")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
