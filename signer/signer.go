// Package signer provides the private keys of the CA as crypto.Signer values.
//
// A Provider generates keys and finds them by name; the key material stays
// wherever the provider keeps it (a PEM file for the demo, an HSM token in
// production). Consumers (ca, ocsp, crl) only ever see crypto.Signer, never a
// provider type, so any provider serves every consumer.
package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
)

// ErrKeyNotFound is returned when no key has the requested name.
var ErrKeyNotFound = errors.New("key not found")

// ErrKeyExists is returned by Generate when a key of that name exists.
var ErrKeyExists = errors.New("key already exists")

// Algorithm is a key type and size.
type Algorithm string

const (
	ECDSAP256 Algorithm = "ecdsa-p256"
	ECDSAP384 Algorithm = "ecdsa-p384"
	RSA2048   Algorithm = "rsa-2048"
	RSA3072   Algorithm = "rsa-3072"
	RSA4096   Algorithm = "rsa-4096"
)

// Algorithms lists every supported algorithm, default first.
var Algorithms = []Algorithm{ECDSAP256, ECDSAP384, RSA2048, RSA3072, RSA4096}

// ParseAlgorithm accepts the names above, case-insensitively.
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range Algorithms {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	names := make([]string, len(Algorithms))
	for i, a := range Algorithms {
		names[i] = string(a)
	}
	return "", fmt.Errorf("unknown key algorithm %q (want one of %s)", s, strings.Join(names, ", "))
}

// Curve returns the elliptic curve of an ECDSA algorithm, or nil.
func (a Algorithm) Curve() elliptic.Curve {
	switch a {
	case ECDSAP256:
		return elliptic.P256()
	case ECDSAP384:
		return elliptic.P384()
	}
	return nil
}

// RSABits returns the modulus size of an RSA algorithm, or 0.
func (a Algorithm) RSABits() int {
	switch a {
	case RSA2048:
		return 2048
	case RSA3072:
		return 3072
	case RSA4096:
		return 4096
	}
	return 0
}

// AlgorithmOf describes an existing public key.
func AlgorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ECDSAP256, nil
		case elliptic.P384():
			return ECDSAP384, nil
		}
		return "", fmt.Errorf("unsupported curve %s", k.Curve.Params().Name)
	case *rsa.PublicKey:
		switch k.N.BitLen() {
		case 2048:
			return RSA2048, nil
		case 3072:
			return RSA3072, nil
		case 4096:
			return RSA4096, nil
		}
		return "", fmt.Errorf("unsupported RSA size %d", k.N.BitLen())
	}
	return "", fmt.Errorf("unsupported key type %T", pub)
}

// Provider keeps private keys and hands out signers for them.
//
// Implementations must be safe for concurrent use, and the crypto.Signer
// values they return must be safe to call from many goroutines at once.
type Provider interface {
	// Generate creates a new key under name. It fails with ErrKeyExists if the
	// name is taken, so a retried init never silently replaces a CA key.
	Generate(ctx context.Context, name string, alg Algorithm) (crypto.Signer, error)
	// Signer finds the key called name; ErrKeyNotFound if there is none.
	Signer(ctx context.Context, name string) (crypto.Signer, error)
	// Healthy reports whether the provider can sign right now (for /readyz).
	Healthy(ctx context.Context) error
	// Close releases the provider's resources.
	Close() error
}
