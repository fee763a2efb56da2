package directory

import (
	"context"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/store"
)

// Publication says which entry carries a certificate and whether the
// policy wants it there: a valid one is published; a revoked one is not,
// unless ldap.include_revoked; hidden userCertificate is never expected.
func TestPublication(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name              string
		mod               func(*config.LDAP)
		revoke            bool
		published, expect bool
	}{
		{"ok/valid", nil, false, true, true},
		{"ok/revoked", nil, true, false, false},
		{"ok/revoked, include_revoked", func(c *config.LDAP) { c.IncludeRevoked = true }, true, true, true},
		{"ok/hidden", func(c *config.LDAP) { c.HiddenAttributes = []string{"userCertificate"} }, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1, tc.mod)
			var c *store.Cert
			_ = e.st.View(ctx, func(tx *store.Tx) error {
				return tx.CertsBySubscriber(seed.Name(0), func(x *store.Cert) error { c = x; return nil })
			})
			if tc.revoke {
				var err error
				if c, err = e.auth.Revoke(ctx, c.Serial, ca.ReasonKeyCompromise); err != nil {
					t.Fatal(err)
				}
			}
			p, err := e.d.Publication(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if p.DN != sub(0) || p.Published != tc.published || p.Expected != tc.expect || p.Expected == (p.Why != "") {
				t.Errorf("%+v", p)
			}
		})
	}
}
