package ca

import (
	"bytes"
	"context"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// RevokeCheck is consulted in the revocation's transaction on every path
// (Revoke, RevokeWith, RevokeBatch); a refusal is ErrRefused and
// ErrBadRequest, leaves the certificate valid and emits nothing.
func TestRevokeCheckRefuses(t *testing.T) {
	a, _ := newTestAuthority(t, signer.ECDSAP256)
	ctx := context.Background()
	key, _ := signer.GenerateKey(signer.ECDSAP256)
	var protected, other []byte
	for i, p := range []*[]byte{&protected, &other} {
		c, err := a.Issue(ctx, IssueRequest{Profile: ProfilePersonalSigning, PublicKey: key.Public(), Subject: &pkix.Name{CommonName: string(rune('a' + i))}})
		if err != nil {
			t.Fatal(err)
		}
		*p = c.Serial
	}
	a.opts.RevokeCheck = func(tx *store.Tx, c *store.Cert) error {
		if bytes.Equal(c.Serial, protected) {
			return errors.New("protected")
		}
		return nil
	}
	events := 0
	a.Subscribe(func(context.Context, Event) { events++ })
	for name, revoke := range map[string]func() error{
		"fail/Revoke": func() error { _, err := a.Revoke(ctx, protected, ReasonSuperseded); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := revoke()
			if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrRefused and ErrBadRequest", err)
			}
			for _, s := range [][]byte{protected, other} {
				if c, _ := a.Cert(ctx, s); c.Status == store.StatusRevoked {
					t.Errorf("%x revoked by a refused revocation", s)
				}
			}
		})
	}
	if events != 0 {
		t.Errorf("%d events after refused revocations", events)
	}
	if _, err := a.Revoke(ctx, other, ReasonSuperseded); err != nil {
		t.Errorf("an allowed revocation: %v", err)
	}
}
