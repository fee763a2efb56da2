package pkcs11

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/certcenter/certcenter/signer"
)

var _ signer.Deriver = (*Provider)(nil)

// secretClass finds a master secret: a generic secret key on the token
// under its label.
func secretTemplate(name string) []*pkcs11.Attribute {
	return []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_GENERIC_SECRET),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, name),
	}
}

// GenerateSecret creates a 32-byte CKK_GENERIC_SECRET key labelled name on
// the token, able only to sign (HMAC), sensitive and never extractable, so
// the values derived from it are the HSM's to make.
func (p *Provider) GenerateSecret(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("%s: secret %q: %w", p.desc, name, err)
	}
	p.genMu.Lock()
	defer p.genMu.Unlock()
	err := p.do(ctx, func(s *session) error {
		hs, err := p.find(s, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_LABEL, name)}, 1)
		if err != nil {
			return err
		}
		if len(hs) > 0 {
			return fmt.Errorf("the token has an object labelled %q: %w", name, signer.ErrKeyExists)
		}
		tmpl := append(secretTemplate(name),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_SIGN, true),
			pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_DERIVE, false))
		return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
			_, err := c.GenerateKey(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_GENERIC_SECRET_KEY_GEN, nil)}, tmpl)
			if err != nil {
				// After C_GenerateKey fails nothing exists; a retry on a
				// reopened token is safe, but not after it succeeded.
				return fmt.Errorf("C_GenerateKey: %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%s: generating secret %q: %w", p.desc, name, err)
	}
	p.log.Info("secret generated", "secret", name)
	return nil
}

// Derive signs data with CKM_SHA256_HMAC under the secret labelled name.
func (p *Provider) Derive(ctx context.Context, name string, data []byte) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%s: secret %q: %w", p.desc, name, err)
	}
	var out []byte
	err := p.do(ctx, func(s *session) error {
		h, err := p.findSecret(s, name)
		if err != nil {
			return err
		}
		return p.mod.use(s.gen, func(c *pkcs11.Ctx) error {
			if err := c.SignInit(s.h, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_SHA256_HMAC, nil)}, h); err != nil {
				return fmt.Errorf("C_SignInit(CKM_SHA256_HMAC): %w", err)
			}
			out, err = c.Sign(s.h, data)
			if err != nil {
				return fmt.Errorf("C_Sign(CKM_SHA256_HMAC): %w", err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%s: deriving with secret %q: %w", p.desc, name, err)
	}
	return out, nil
}

func (p *Provider) findSecret(s *session, name string) (pkcs11.ObjectHandle, error) {
	hs, err := p.find(s, secretTemplate(name), 2)
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 0:
		// As for private keys (findOne): an empty answer from a session
		// that lost its login says nothing.
		var info pkcs11.SessionInfo
		if err := p.mod.use(s.gen, func(c *pkcs11.Ctx) (err error) { info, err = c.GetSessionInfo(s.h); return err }); err != nil {
			return 0, err
		}
		if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return 0, fmt.Errorf("searching for the secret: %w", pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN))
		}
		return 0, signer.ErrKeyNotFound
	case 1:
		return hs[0], nil
	}
	return 0, errors.New("more than one secret key has this label")
}
