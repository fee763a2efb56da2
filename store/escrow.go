package store

import (
	"encoding/hex"
	"fmt"
	"time"
)

// Escrowed key layout:
//
//	escrow\0<serial>    escrowed private key of an encryption certificate
var pEscrow = []byte("escrow\x00")

// EscrowedKey is the private key of an encryption certificate, kept only
// wrapped under the signer's key-encryption key (SPEC Art. 13): the clear
// key is never written. The record is made before the certificate is
// signed, under the serial the certificate will carry, so an issuance
// retried after a crash certifies the same key.
type EscrowedKey struct {
	// Serial is the encryption certificate's serial.
	Serial []byte `json:"serial"`
	// Algorithm is the key's signer.Algorithm name.
	Algorithm string `json:"algorithm"`
	// PublicKey is the SubjectPublicKeyInfo (DER): what the certificate
	// must certify, and what an unwrapped key is checked against.
	PublicKey []byte `json:"public_key"`
	// Wrapped is the PKCS#8 private key sealed by Mechanism, bound to Serial.
	Wrapped   []byte `json:"wrapped"`
	Mechanism string `json:"mechanism"`
	// SigningSerial is the holder's signing certificate it is paired with.
	SigningSerial []byte `json:"signing_serial,omitempty"`
	// Request is the RA request that made it.
	Request   string    `json:"request,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// RAEscrow is what an encryption certificate or key recovery request
// carries beyond the common fields.
type RAEscrow struct {
	// Algorithm is the encryption key's algorithm (encryption certificate).
	Algorithm string `json:"algorithm,omitempty"`
	// Format is how the key reaches the holder: "cms" (EnvelopedData to
	// the holder's signing certificate) or "pkcs12" (under a one-time
	// password).
	Format string `json:"format"`
	// Recipient is the serial of the signing certificate CMS delivery is
	// enveloped to.
	Recipient []byte `json:"recipient,omitempty"`
	// Judicial marks a recovery ordered by a court or other authority;
	// CaseReference is its file number.
	Judicial      bool   `json:"judicial,omitempty"`
	CaseReference string `json:"case_reference,omitempty"`
	// Reason is the requester's reason for a recovery.
	Reason string `json:"reason,omitempty"`
	// LinkIssuedAt and LinkIssuedTo record the one-time download link made
	// for the key; one per request.
	LinkIssuedAt time.Time `json:"link_issued_at,omitzero"`
	LinkIssuedTo string    `json:"link_issued_to,omitempty"`
}

// InsertEscrowedKey writes a new escrowed key; ErrExists if its serial has one.
func (tx *Tx) InsertEscrowedKey(k *EscrowedKey) error {
	return tx.insertRA(pEscrow, string(k.Serial), k, "escrowed key")
}

// PutEscrowedKey overwrites an escrowed key record.
func (tx *Tx) PutEscrowedKey(k *EscrowedKey) error {
	b, err := encode(k)
	if err != nil {
		return fmt.Errorf("encoding escrowed key %x: %w", k.Serial, err)
	}
	if err := tx.set(cat(pEscrow, k.Serial), b); err != nil {
		return fmt.Errorf("writing escrowed key %x: %w", k.Serial, err)
	}
	return nil
}

// EscrowedKey reads the escrowed key of a certificate serial; ErrNotFound
// if none is escrowed.
func (tx *Tx) EscrowedKey(serial []byte) (*EscrowedKey, error) {
	var k EscrowedKey
	if err := tx.readRA(pEscrow, string(serial), &k, "escrowed key"); err != nil {
		return nil, fmt.Errorf("serial %s: %w", hex.EncodeToString(serial), err)
	}
	return &k, nil
}
