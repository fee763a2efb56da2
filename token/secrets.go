package token

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/emmansun/gmsm/sm4"

	"github.com/certcenter/certcenter/signer"
)

// Unlock forms (tokens.models[].unlock).
const (
	FormSOPIN   = "so_pin"
	FormSM4ECB  = "sm4-ecb"
	Form3DESECB = "3des-ecb"
	FormAESECB  = "aes-ecb"
)

// SOPINLength is the length of a derived SO PIN in hex digits: 64 bits,
// within every PKCS#11 token's maximum PIN length we know of (SoftHSM2
// 255, most vendors 16 or more).
const SOPINLength = 16

// MaxChallenge bounds a challenge read from a token: SKF device
// authentication uses 8 or 16 bytes.
const MaxChallenge = 64

// ErrChallenge is returned for a challenge that is empty or too long.
var ErrChallenge = errors.New("bad challenge")

// Secrets derives each token's SO PIN and admin key inside the signer from
// the master secret and the token serial, so none is stored: the same
// serial always gives the same value, and the master secret never leaves
// the signer (an HMAC key file or an HSM key).
type Secrets struct {
	Deriver signer.Deriver
	// Name is the master secret's name (tokens.derive_secret).
	Name string
}

// derive is HMAC(master, purpose NUL serial): a different purpose gives an
// unrelated value, so a token's SO PIN says nothing of its admin key.
func (s Secrets) derive(ctx context.Context, purpose, serial string) ([]byte, error) {
	if s.Deriver == nil {
		return nil, errors.New("no deriver: the signer cannot derive token secrets")
	}
	b, err := s.Deriver.Derive(ctx, s.Name, []byte("certcenter/token/"+purpose+"\x00"+serial))
	if err != nil {
		return nil, fmt.Errorf("deriving the %s of token %s: %w", purpose, serial, err)
	}
	return b, nil
}

// SOPIN is the SO PIN of a PKCS#11 token: SOPINLength hex digits.
func (s Secrets) SOPIN(ctx context.Context, serial string) (string, error) {
	b, err := s.derive(ctx, "so-pin", serial)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b)[:SOPINLength], nil
}

// AdminKey is the admin (device authentication) key of a challenge-response
// token whose model uses form: 16 bytes for SM4 and AES-128, 24 for 3DES.
func (s Secrets) AdminKey(ctx context.Context, form, serial string) ([]byte, error) {
	n, err := keySize(form)
	if err != nil {
		return nil, err
	}
	b, err := s.derive(ctx, "admin-key/"+form, serial)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

// Respond encrypts challenge under the token's admin key as the token
// expects its answer: challenge zero-padded to whole blocks, each block
// encrypted alone (ECB), as GM/T 0016 device authentication does.
func (s Secrets) Respond(ctx context.Context, form, serial string, challenge []byte) ([]byte, error) {
	key, err := s.AdminKey(ctx, form, serial)
	if err != nil {
		return nil, err
	}
	return EncryptECB(form, key, challenge)
}

func keySize(form string) (int, error) {
	switch form {
	case FormSM4ECB, FormAESECB:
		return 16, nil
	case Form3DESECB:
		return 24, nil
	}
	return 0, fmt.Errorf("unlock form %q has no admin key", form)
}

// EncryptECB zero-pads challenge to whole blocks of the form's cipher and
// encrypts each block under key.
func EncryptECB(form string, key, challenge []byte) ([]byte, error) {
	if len(challenge) == 0 || len(challenge) > MaxChallenge {
		return nil, fmt.Errorf("%w: %d bytes (1 to %d)", ErrChallenge, len(challenge), MaxChallenge)
	}
	var b cipher.Block
	var err error
	switch form {
	case FormSM4ECB:
		b, err = sm4.NewCipher(key)
	case FormAESECB:
		b, err = aes.NewCipher(key)
	case Form3DESECB:
		b, err = des.NewTripleDESCipher(key)
	default:
		return nil, fmt.Errorf("unlock form %q is not a challenge-response cipher", form)
	}
	if err != nil {
		return nil, fmt.Errorf("%s key: %w", form, err)
	}
	bs := b.BlockSize()
	out := make([]byte, (len(challenge)+bs-1)/bs*bs)
	copy(out, challenge)
	for i := 0; i < len(out); i += bs {
		b.Encrypt(out[i:i+bs], out[i:i+bs])
	}
	return out, nil
}

// ParseChallenge reads a challenge as the API receives it: hex, 1 to
// MaxChallenge bytes.
func ParseChallenge(s string) ([]byte, error) {
	if len(s) > 2*MaxChallenge+2 {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrChallenge, MaxChallenge)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex: %v", ErrChallenge, err)
	}
	if len(b) == 0 || len(b) > MaxChallenge {
		return nil, fmt.Errorf("%w: %d bytes (1 to %d)", ErrChallenge, len(b), MaxChallenge)
	}
	return b, nil
}
