package server

import (
	"context"
	"time"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ra"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
	"github.com/certcenter/certcenter/token"
)

// wireToken mounts the USBKey inventory's API and makes sure the master
// secret that token SO PINs are derived from exists in the signer (both
// signers derive: the file signer from an HMAC key file, PKCS#11 with
// CKM_SHA256_HMAC). The RA unlocks and replaces tokens through it
// (raTokens), and the certificate diagnostics show a certificate's token.
func wireToken(c *components) error {
	d, _ := c.core.signers.(signer.Deriver)
	svc, err := token.New(token.Options{
		Store: c.core.store, Audit: c.auditLog, Deriver: d, Config: c.cfg.Tokens, Auth: c.auth,
		Logger: c.log, Registerer: c.reg, MaxBodyBytes: c.cfg.API.MaxBodyBytes,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := svc.Prepare(ctx); err != nil {
		// OCSP, CRLs and the directory must not wait on the token secret:
		// the server starts, says why in /readyz detail, and unlocks fail
		// with the reason until an operator restores the secret.
		c.log.Error("USBKey master secret unavailable: personalisation and unlock will fail", "component", "token", "err", err)
		c.addWarning("tokens", func(context.Context) string { return "USBKey unlock unavailable: " + err.Error() })
	}
	svc.Register(c.api)
	c.tokens = svc
	c.diag.Token = tokenDiagnostics(svc)
	return nil
}

// raTokens is the RA's view of the inventory; nil (unlock answers 501)
// when the signer cannot derive.
func raTokens(c *components) ra.Tokens {
	if c.tokens == nil {
		return nil
	}
	if _, ok := c.core.signers.(signer.Deriver); !ok {
		return nil
	}
	return c.tokens
}

// raRecoverer recovers encryption keys onto a replacing token: nil, so the
// RA recovers them through its key escrow (ra/token_escrow.go, filled with
// token/escrow by wireEscrow) as one-time key links.
func raRecoverer(*components) ra.KeyRecoverer { return nil }

// tokenDiagnostics adapts the inventory to the admin diagnostics' view.
func tokenDiagnostics(svc *token.Service) func(context.Context, *store.Cert) (*admin.TokenState, error) {
	return func(ctx context.Context, c *store.Cert) (*admin.TokenState, error) {
		t, err := svc.OfCert(ctx, c.Serial)
		if err != nil || t == nil {
			return nil, err
		}
		return &admin.TokenState{Serial: t.Serial, Model: t.Model, State: t.State, Holder: t.Holder, Org: t.OrgID}, nil
	}
}
