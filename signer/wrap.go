package signer

import (
	"context"
	"errors"
)

// ErrUnwrap is returned by KeyWrapper.Unwrap for a wrapped key that does not
// open under the key-encryption key with the given associated data: it was
// altered, belongs to another record, or was wrapped under another KEK.
var ErrUnwrap = errors.New("wrapped key does not unwrap")

// KeyWrapper seals secrets (escrowed private keys) under a key-encryption
// key (KEK) that stays where the provider keeps its keys: an AES key inside
// the PKCS#11 token, or an AES-256 key file beside the file signer's keys.
// The KEK is made on first use and never exported.
//
// Wrap binds aad (what the secret belongs to, such as a certificate serial)
// to the result: Unwrap with any other aad fails with ErrUnwrap, so a
// wrapped key copied onto another record does not open there.
// Implementations are safe for concurrent use.
type KeyWrapper interface {
	Wrap(ctx context.Context, secret, aad []byte) ([]byte, error)
	Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error)
	// Mechanism names the KEK and algorithm, recorded beside each wrapped
	// key ("file:aes-256-gcm:<name>", "pkcs11:aes-key-wrap:<label>").
	Mechanism() string
}

// Wrapping is a Provider that also keeps key-encryption keys: KeyWrapper
// returns the KEK called name, making it on first use.
type Wrapping interface {
	KeyWrapper(ctx context.Context, name string) (KeyWrapper, error)
}
