package httpapi

import (
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"testing"

	"crypto/x509"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// TestAPIErrorMapsCAErrors: the one mapping of CA and store errors to API
// errors, through any wrapping.
func TestAPIErrorMapsCAErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"ok/api error kept", fmt.Errorf("deep: %w", Forbidden("no")), 403, "forbidden"},
		{"ok/ca not found", fmt.Errorf("serial 01: %w", ca.ErrNotFound), 404, "not_found"},
		{"ok/already revoked", fmt.Errorf("revoking: %w", store.ErrAlreadyRevoked), 409, "conflict"},
		{"ok/refused before bad request", fmt.Errorf("%w: %w", ca.ErrRefused, ca.ErrBadRequest), 409, "conflict"},
		{"ok/bad request", fmt.Errorf("%w: weak key", ca.ErrBadRequest), 400, "bad_request"},
		{"ok/exists", fmt.Errorf("org x: %w", store.ErrExists), 409, "conflict"},
		{"ok/body too large", &http.MaxBytesError{Limit: 10}, 413, "too_large"},
		{"fail/anything else is internal", errors.New("disk on fire"), 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ae := APIError(tc.err)
			if ae.Status != tc.status || ae.Code != tc.code {
				t.Fatalf("APIError(%v) = %d %s, want %d %s", tc.err, ae.Status, ae.Code, tc.status, tc.code)
			}
			if tc.status == 500 && ae.Message != "internal error" {
				t.Fatalf("a 500 says %q; its details belong in the log only", ae.Message)
			}
		})
	}
}

// TestAccessAllows: staff by role (admin always), certificate
// administrators only where a route admits them.
func TestAccessAllows(t *testing.T) {
	cert := &x509.Certificate{SerialNumber: big.NewInt(7)}
	officer := &Principal{Staff: &store.Staff{ID: "o", Role: RoleRAOfficer}, Cert: cert}
	root := &Principal{Staff: &store.Staff{ID: "r", Role: RoleAdmin}, Cert: cert}
	orgAdmin := &Principal{Admin: &store.CertAdmin{ID: "a", OrgID: "org"}, Cert: cert}
	for _, tc := range []struct {
		name string
		acc  Access
		p    *Principal
		ok   bool
	}{
		{"ok/role held", Access{Roles: []string{RoleRAOfficer}}, officer, true},
		{"ok/admin always", Access{Roles: []string{RoleAuditor}}, root, true},
		{"ok/admin on admin-only", Access{}, root, true},
		{"ok/org admin admitted", Access{Admins: true}, orgAdmin, true},
		{"fail/role not held", Access{Roles: []string{RoleAuditor}}, officer, false},
		{"fail/staff on admin-only", Access{}, officer, false},
		{"fail/org admin on staff route", Access{Roles: []string{RoleRAOfficer}}, orgAdmin, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.acc.Allows(tc.p)
			var ae *Error
			if tc.ok != (err == nil) || (!tc.ok && (!errors.As(err, &ae) || ae.Status != http.StatusForbidden)) {
				t.Fatalf("Allows = %v, want ok=%v (else a 403)", err, tc.ok)
			}
		})
	}
}
