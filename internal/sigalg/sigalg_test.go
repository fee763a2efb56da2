package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"testing"
	"time"
)

// TestForMatchesX509: each key's algorithm is the one crypto/x509 writes
// into a certificate it signs with that key, and Verify accepts the
// signature and refuses another key's.
func TestForMatchesX509(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, key := range []crypto.Signer{p256, p384, p521, rsaKey} {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			t.Fatal(err)
		}
		var cert struct {
			TBS       asn1.RawValue
			Algorithm asn1.RawValue
			Signature asn1.BitString
		}
		if _, err := asn1.Unmarshal(der, &cert); err != nil {
			t.Fatal(err)
		}
		alg, err := For(key.Public())
		if err != nil {
			t.Fatal(err)
		}
		if string(alg.DER) != string(cert.Algorithm.FullBytes) {
			t.Errorf("%T: %x, crypto/x509 %x", key, alg.DER, cert.Algorithm.FullBytes)
		}
		h := alg.Hash.New()
		h.Write(cert.TBS.FullBytes)
		if err := alg.Verify(key.Public(), h.Sum(nil), cert.Signature.Bytes); err != nil {
			t.Errorf("%T: %v", key, err)
		}
		if err := alg.Verify(key.Public(), h.Sum(nil)[1:], cert.Signature.Bytes); err == nil {
			t.Errorf("%T: a signature over another digest verified", key)
		}
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := For(edKey.Public()); err == nil {
		t.Error("an Ed25519 key got an algorithm")
	}
}
