package pkcs11

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

// TestDeriveSoftHSM makes a master secret on SoftHSM2 and derives with
// CKM_SHA256_HMAC: the same input gives the same value after a reopen,
// other inputs other values, and the secret's value cannot be read out.
func TestDeriveSoftHSM(t *testing.T) {
	ctx := context.Background()
	tok := newToken(t, "derive")
	p, err := Open(ctx, tok.options(t, 2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Derive(ctx, "token-admin", []byte("x")); !errors.Is(err, signer.ErrKeyNotFound) {
		t.Fatalf("derive before generate: %v, want ErrKeyNotFound", err)
	}
	if err := p.GenerateSecret(ctx, "token-admin"); err != nil {
		t.Fatal(err)
	}
	if err := p.GenerateSecret(ctx, "token-admin"); !errors.Is(err, signer.ErrKeyExists) {
		t.Fatalf("second generate: %v, want ErrKeyExists", err)
	}
	a, err := p.Derive(ctx, "token-admin", []byte("serial-1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 {
		t.Fatalf("derived %d bytes, want 32", len(a))
	}
	b, err := p.Derive(ctx, "token-admin", []byte("serial-2"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Fatal("two inputs derive the same value")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	p2 := tok.open(t, 1)
	again, err := p2.Derive(ctx, "token-admin", []byte("serial-1"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, again) {
		t.Fatal("the secret derives another value after a reopen")
	}
	// The secret never leaves the token.
	r := tok.raw(t)
	if err := r.ctx.Login(r.h, pkcs11.CKU_USER, testPIN); err != nil && err != pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN) {
		t.Fatal(err)
	}
	if err := r.ctx.FindObjectsInit(r.h, secretTemplate("token-admin")); err != nil {
		t.Fatal(err)
	}
	hs, _, err := r.ctx.FindObjects(r.h, 2)
	r.ctx.FindObjectsFinal(r.h)
	if err != nil || len(hs) != 1 {
		t.Fatalf("finding the secret: %v, %d objects", err, len(hs))
	}
	if _, err := r.ctx.GetAttributeValue(r.h, hs[0], []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)}); err == nil {
		t.Fatal("the secret's CKA_VALUE could be read")
	}
}

// BenchmarkDeriveSoftHSM is one SO PIN derivation on the HSM (an unlock
// authorisation or a personalisation costs one).
func BenchmarkDeriveSoftHSM(b *testing.B) {
	ctx := context.Background()
	tok := newToken(b, "derive-bench")
	p := tok.open(b, 1)
	if err := p.GenerateSecret(ctx, "token-admin"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Derive(ctx, "token-admin", []byte("certcenter/token/so-pin\x00serial")); err != nil {
			b.Fatal(err)
		}
	}
}
