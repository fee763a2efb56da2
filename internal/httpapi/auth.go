package httpapi

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Roles of CA staff (SPEC Art. 2, 15-17).
const (
	RoleAdmin        = "admin"
	RoleRAOfficer    = "ra_officer"
	RoleCAOperator   = "ca_operator"
	RoleServiceAgent = "service_agent"
	RoleAuditor      = "auditor"
	// RoleMetrics is a Prometheus scraper's: it may read /metrics and nothing else.
	RoleMetrics = "metrics"
)

// Principal is the authenticated caller of an API request.
type Principal struct {
	Staff *store.Staff
	Cert  *x509.Certificate
}

type principalKey struct{}

// PrincipalFrom returns the caller put in the context by Authenticator.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Authenticator maps the verified TLS client certificate of a request to a
// staff member. The TLS layer has already checked the chain to our CA; here
// the certificate must also be known to the store, unrevoked and unexpired.
type Authenticator struct {
	Store *store.Store
	Now   func() time.Time
	Log   *slog.Logger
}

// Require wraps h so only callers holding one of roles reach it (admin
// always may).
func (a *Authenticator) Require(h http.Handler, roles ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticate(r)
		if err != nil {
			WriteError(w, r, a.Log, err)
			return
		}
		if p.Staff.Role != RoleAdmin && !slices.Contains(roles, p.Staff.Role) {
			WriteError(w, r, a.Log, Forbidden("role %s may not do this", p.Staff.Role))
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (a *Authenticator) authenticate(r *http.Request) (*Principal, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return nil, Errorf(http.StatusUnauthorized, "unauthenticated", "a client certificate issued by this CA is required")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	var staff *store.Staff
	err := a.Store.View(r.Context(), func(tx *store.Tx) error {
		c, err := tx.Cert(leaf.SerialNumber.Bytes())
		if err != nil {
			return err
		}
		if c.Status == store.StatusRevoked {
			return Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s is revoked", c.SerialHex())
		}
		if a.Now().After(c.NotAfter) {
			return Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s has expired", c.SerialHex())
		}
		staff, err = tx.StaffByCert(c.Serial)
		if errors.Is(err, store.ErrNotFound) {
			// The certificate proves who the caller is (an organisation's
			// certificate administrator): it is the role that is missing,
			// which is a 403, not a credential to retry with (401).
			if _, aerr := tx.CertAdminByCert(c.Serial); aerr == nil {
				return Forbidden("client certificate %s belongs to a certificate administrator, not to CA staff", c.SerialHex())
			}
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %x belongs to no staff member", leaf.SerialNumber.Bytes())
	}
	if err != nil {
		return nil, err
	}
	return &Principal{Staff: staff, Cert: leaf}, nil
}
