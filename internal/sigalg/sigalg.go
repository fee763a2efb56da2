// Package sigalg is how certcenter signs with a key it holds: the signature
// algorithm a key's type and curve call for, and the check of a signature
// that came from outside the process. Certificates (ca) and OCSP responses
// (ocsp) share it; CRLs (crl) keep their own choice, SHA-384 for RSA keys of
// 4096 bits.
package sigalg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
)

// Alg is one key's signature algorithm.
type Alg struct {
	// DER is the whole AlgorithmIdentifier, as it goes into what is signed.
	DER []byte
	// Hash is what the signer is given.
	Hash crypto.Hash
}

// Whole-DER AlgorithmIdentifiers: ecdsa-with-SHA256/384/512 (RFC 5758
// §3.2, no parameters) and sha256WithRSAEncryption (RFC 4055 §5, NULL
// parameters).
var (
	ecdsaSHA256 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02}
	ecdsaSHA384 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03}
	ecdsaSHA512 = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04}
	rsaSHA256   = []byte{0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00}
)

// For is crypto/x509's default for a key, which every relying party
// verifies: ECDSA with the hash matching the curve (RFC 5480 §4), RSA
// PKCS #1 v1.5 with SHA-256.
func For(pub crypto.PublicKey) (Alg, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return Alg{ecdsaSHA256, crypto.SHA256}, nil
		case elliptic.P384():
			return Alg{ecdsaSHA384, crypto.SHA384}, nil
		case elliptic.P521():
			return Alg{ecdsaSHA512, crypto.SHA512}, nil
		}
	case *rsa.PublicKey:
		return Alg{rsaSHA256, crypto.SHA256}, nil
	}
	return Alg{}, fmt.Errorf("key type %T is not ECDSA P-256/384/521 or RSA", pub)
}

// Verify checks sig, made by pub's private key with a over digest.
func (a Alg) Verify(pub crypto.PublicKey, digest, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(k, digest, sig) {
			return errors.New("ECDSA signature does not verify")
		}
		return nil
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, a.Hash, digest, sig)
	}
	return fmt.Errorf("cannot verify with a %T", pub)
}
