package pkcs11

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

// Wrapper is the token's signer.KeyWrapper: an AES-256 key-encryption key
// (KEK) made inside the token (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, not
// CKA_EXTRACTABLE, usable only to wrap and unwrap) seals escrowed secrets
// with CKM_AES_KEY_WRAP (RFC 3394).
//
// The secret enters the token as a short-lived session object (a generic
// secret key holding a frame of the associated data, the secret's length,
// the secret and zero padding to the 8-byte multiple RFC 3394 needs), is
// wrapped with C_WrapKey and destroyed; Unwrap reverses it with
// C_UnwrapKey into a non-sensitive session object whose CKA_VALUE is read
// and destroyed. RFC 3394's integrity check refuses an altered blob; the
// associated data inside the frame binds a blob to its record.
//
// Why not CKM_AES_KEY_WRAP_PAD (RFC 5649): SoftHSM2 2.6.1, the test token,
// does not offer it (pkcs11-tool -M lists AES-KEY-WRAP only), while RFC
// 3394 is on every HSM; the frame's own padding does what RFC 5649's would.
type Wrapper struct {
	p     *Provider
	label string
}

// kekTemplate makes the KEK: AES-256, inside the token, wrap/unwrap only.
func kekTemplate(label string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
		pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}
}

// KeyWrapper returns the KEK labelled label as a signer.KeyWrapper, making
// it in the token if there is none yet. The KEK never leaves the token.
func (p *Provider) KeyWrapper(ctx context.Context, label string) (signer.KeyWrapper, error) {
	if err := checkName(label); err != nil {
		return nil, fmt.Errorf("%s: key-encryption key %q: %w", p.desc, label, err)
	}
	p.genMu.Lock()
	defer p.genMu.Unlock()
	err := p.do(ctx, func(s *session) error {
		_, err := p.findKEK(s, label)
		if !errors.Is(err, signer.ErrKeyNotFound) {
			return err
		}
		return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
			_, err := c.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)}, kekTemplate(label))
			if err != nil {
				return fmt.Errorf("C_GenerateKey: %w", err)
			}
			p.log.Info("key-encryption key generated", "key", label)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: key-encryption key %q: %w", p.desc, label, err)
	}
	return &Wrapper{p: p, label: label}, nil
}

func (p *Provider) findKEK(s *session, label string) (pkcs11.ObjectHandle, error) {
	return p.findOne(s, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	})
}

// Mechanism names the KEK.
func (w *Wrapper) Mechanism() string { return "pkcs11:aes-key-wrap:" + w.label }

var wrapMech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP, nil)}

// frame lays out aad and secret for RFC 3394: 2-byte aad length, aad,
// 4-byte secret length, secret, zeros to a multiple of 8 (at least 16).
func frame(secret, aad []byte) ([]byte, error) {
	if len(aad) > 0xffff {
		return nil, errors.New("associated data longer than 65535 bytes")
	}
	n := 2 + len(aad) + 4 + len(secret)
	n = max(16, (n+7)/8*8)
	b := make([]byte, 0, n)
	b = binary.BigEndian.AppendUint16(b, uint16(len(aad)))
	b = append(b, aad...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(secret)))
	b = append(b, secret...)
	return b[:n], nil
}

// unframe checks a frame's aad and returns its secret.
func unframe(b, aad []byte) ([]byte, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: frame too short", signer.ErrUnwrap)
	}
	an := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+an+4 || string(b[2:2+an]) != string(aad) {
		return nil, fmt.Errorf("%w: it belongs to another record", signer.ErrUnwrap)
	}
	rest := b[2+an:]
	sn := int(binary.BigEndian.Uint32(rest))
	if sn > len(rest)-4 {
		return nil, fmt.Errorf("%w: frame length %d beyond its %d bytes", signer.ErrUnwrap, sn, len(rest)-4)
	}
	return append([]byte(nil), rest[4:4+sn]...), nil
}

func zero(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// Wrap seals secret under the KEK.
func (w *Wrapper) Wrap(ctx context.Context, secret, aad []byte) ([]byte, error) {
	f, err := frame(secret, aad)
	if err != nil {
		return nil, err
	}
	defer zero(f)
	var out []byte
	p := w.p
	err = p.do(ctx, func(s *session) error {
		kek, err := p.findKEK(s, w.label)
		if err != nil {
			return err
		}
		return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
			obj, err := c.CreateObject(s.h, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
				pkcs11.NewAttribute(pkcs11.CKA_VALUE, f),
			})
			if err != nil {
				return fmt.Errorf("C_CreateObject (session secret): %w", err)
			}
			defer c.DestroyObject(s.h, obj)
			if out, err = c.WrapKey(s.h, wrapMech, kek, obj); err != nil {
				return fmt.Errorf("C_WrapKey: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: wrapping under %q: %w", p.desc, w.label, err)
	}
	return out, nil
}

// Unwrap opens what Wrap sealed with the same aad; signer.ErrUnwrap if the
// token refuses the blob or the frame names other associated data.
func (w *Wrapper) Unwrap(ctx context.Context, wrapped, aad []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("%w: %d bytes is not an RFC 3394 wrapped key", signer.ErrUnwrap, len(wrapped))
	}
	var f []byte
	p := w.p
	err := p.do(ctx, func(s *session) error {
		kek, err := p.findKEK(s, w.label)
		if err != nil {
			return err
		}
		return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
			obj, err := c.UnwrapKey(s.h, wrapMech, kek, wrapped, []*pkcs11.Attribute{
				pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
				pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
				pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
				pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
				pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, false),
				pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, true),
			})
			if err != nil {
				// Not %w: a refused blob is the caller's bad input, never
				// a reason for the pool to reopen the token.
				return final{fmt.Errorf("%w: C_UnwrapKey: %v", signer.ErrUnwrap, err)}
			}
			defer c.DestroyObject(s.h, obj)
			attrs, err := c.GetAttributeValue(s.h, obj, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_VALUE, nil)})
			if err != nil {
				return fmt.Errorf("reading the unwrapped value: %w", err)
			}
			f = attrs[0].Value
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: unwrapping under %q: %w", p.desc, w.label, err)
	}
	defer zero(f)
	return unframe(f, aad)
}

var _ signer.KeyWrapper = (*Wrapper)(nil)
var _ signer.Wrapping = (*Provider)(nil)
