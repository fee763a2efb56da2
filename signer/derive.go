package signer

import "context"

// Deriver keeps named master secrets and derives values from them without
// letting them out: HMAC-SHA256 under the secret. A token's SO PIN or admin
// key is derived from the token's serial this way (package token), so none
// is stored and a stolen database reveals none.
//
// File keeps a secret as a 32-byte key file (mode 0600) beside the CA keys;
// the PKCS#11 provider keeps it as a CKK_GENERIC_SECRET key on the HSM,
// sensitive and not extractable, and derives with CKM_SHA256_HMAC.
type Deriver interface {
	// GenerateSecret creates the master secret name; ErrKeyExists if it
	// exists, so a retried set-up never replaces the secret every derived
	// value depends on.
	GenerateSecret(ctx context.Context, name string) error
	// Derive returns HMAC-SHA256(secret name, data); ErrKeyNotFound if
	// there is no such secret.
	Derive(ctx context.Context, name string, data []byte) ([]byte, error)
}
