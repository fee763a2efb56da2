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
	// The service desk's (SPEC Art. 15-24): hotline engineers, the
	// technical centre escalations go to, and the supervisors of the desk.
	RoleEngineer        = "engineer"
	RoleTechnicalCentre = "technical_centre"
	RoleSupervisor      = "supervisor"
)

// StaffRoles are the roles a staff member may hold.
var StaffRoles = []string{RoleAdmin, RoleRAOfficer, RoleCAOperator, RoleServiceAgent, RoleAuditor, RoleMetrics, RoleEngineer, RoleTechnicalCentre, RoleSupervisor}

// Principal is the authenticated caller of an API request: a staff member
// or an organisation's certificate administrator, never both.
type Principal struct {
	Staff *store.Staff
	Admin *store.CertAdmin
	Cert  *x509.Certificate
}

// ID names the caller in the audit log and in request histories.
func (p *Principal) ID() string {
	if p.Staff != nil {
		return "staff:" + p.Staff.ID
	}
	return "admin:" + p.Admin.ID
}

// HasRole says whether the caller is staff holding one of roles; an
// administrator always has.
func (p *Principal) HasRole(roles ...string) bool {
	return p.Staff != nil && (p.Staff.Role == RoleAdmin || slices.Contains(roles, p.Staff.Role))
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, as Register puts it there.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller put in the context by Register or
// Require.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// Access says who may call a route: staff holding one of Roles (admin
// always may), and organisations' certificate administrators if Admins is
// set. A Public route needs no credential (a one-time download, whose token
// is the credential).
type Access struct {
	Roles  []string
	Admins bool
	Public bool
}

// Allows checks that p may call a route with this access.
func (a Access) Allows(p *Principal) error {
	if p.Admin != nil {
		if a.Admins {
			return nil
		}
		// The certificate proves who the caller is: it is the role that is
		// missing, which is a 403, not a credential to retry with (401).
		return Forbidden("client certificate %x belongs to a certificate administrator, not to CA staff", p.Cert.SerialNumber.Bytes())
	}
	if p.HasRole(a.Roles...) {
		return nil
	}
	return Forbidden("role %s may not do this", p.Staff.Role)
}

// Authenticator maps the verified TLS client certificate of a request to a
// staff member or an organisation's certificate administrator. The TLS
// layer has already checked the chain to our CA; here the certificate must
// also be known to the store, unrevoked and unexpired, so a revoked
// credential stops working at once, before any CRL reaches the TLS layer.
type Authenticator struct {
	Store *store.Store
	Now   func() time.Time
	Log   *slog.Logger
}

func (a *Authenticator) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

func (a *Authenticator) log() *slog.Logger {
	if a.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Log
}

// Require wraps h so only staff holding one of roles reach it (admin
// always may). It is for handlers that are not Routes (/metrics).
func (a *Authenticator) Require(h http.Handler, roles ...string) http.Handler {
	acc := Access{Roles: roles}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Authenticate(r)
		if err == nil {
			err = acc.Allows(p)
		}
		if err != nil {
			WriteError(w, r, a.log(), err)
			return
		}
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

// Authenticate returns the caller of r. Errors are 401s.
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return nil, Errorf(http.StatusUnauthorized, "unauthenticated", "a client certificate issued by this CA is required")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	p := &Principal{Cert: leaf}
	err := a.Store.View(r.Context(), func(tx *store.Tx) error {
		c, err := tx.Cert(leaf.SerialNumber.Bytes())
		if errors.Is(err, store.ErrNotFound) {
			return Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %x is not known to this CA", leaf.SerialNumber.Bytes())
		} else if err != nil {
			return err
		}
		if c.Status == store.StatusRevoked {
			return Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s is revoked", c.SerialHex())
		}
		if a.now().After(c.NotAfter) {
			return Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s has expired", c.SerialHex())
		}
		if p.Staff, err = tx.StaffByCert(c.Serial); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if p.Admin, err = tx.CertAdminByCert(c.Serial); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s belongs to no staff member or certificate administrator", c.SerialHex())
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}
