package seed_test

import (
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// TestAPI: a CA operator's call adds subscribers and one audit record per
// batch; bad counts and fractions are refused with 400 and add nothing;
// other roles get 403.
func TestAPI(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	auditLog := audit.New(audit.Options{Store: e.Store})
	a := &seed.API{Store: e.Store, Authority: e.CA, Audit: auditLog}
	op := &store.Staff{ID: "op", Role: httpapi.RoleCAOperator}
	call := func(staff *store.Staff, body string) (int, string) {
		// The route's own handler behind the principal the authenticator
		// would set: Register's access check is httpapi's, tested there.
		req := httptest.NewRequest("POST", "/api/v1/seed", strings.NewReader(body))
		req = req.WithContext(httpapi.WithPrincipal(req.Context(), &httpapi.Principal{Staff: staff}))
		w := httptest.NewRecorder()
		rt := a.Routes()[0]
		p, _ := httpapi.PrincipalFrom(req.Context())
		if err := rt.Access.Allows(p); err != nil {
			ae := httpapi.WriteError(w, req, slog.New(slog.DiscardHandler), err)
			return ae.Status, w.Body.String()
		}
		if err := rt.Handler(w, req); err != nil {
			ae := httpapi.WriteError(w, req, slog.New(slog.DiscardHandler), err)
			return ae.Status, w.Body.String()
		}
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct{ name, body string }{
		{"fail/zero", `{"count":0}`},
		{"fail/too-many", `{"count":5001}`},
		{"fail/fraction", `{"count":3,"revoked_fraction":1.5}`},
		{"fail/unknown-field", `{"count":3,"x":1}`},
		{"fail/not-json", `count=3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := call(op, tc.body); code != 400 || !strings.Contains(body, `"error"`) {
				t.Fatalf("= %d %s; want 400 with a reason", code, body)
			}
		})
	}
	if code, _ := call(&store.Staff{ID: "o", Role: httpapi.RoleRAOfficer}, `{"count":3}`); code != 403 {
		t.Fatalf("RA officer = %d; want 403", code)
	}
	var counts store.Counts
	e.Store.View(e.Ctx, func(tx *store.Tx) (err error) { counts, err = tx.Counts(); return err })
	if counts.Subscribers != 0 {
		t.Fatalf("refused calls added %d subscribers", counts.Subscribers)
	}
	code, body := call(op, `{"count":7,"revoked_fraction":0.3}`)
	if code != 200 || !strings.Contains(body, `"subscribers":7`) || !strings.Contains(body, `"last":"seed-0000006"`) {
		t.Fatalf("operator call = %d %s", code, body)
	}
	n := 0
	e.Store.View(e.Ctx, func(tx *store.Tx) error {
		return tx.EachAudit(func(en *store.AuditEntry) error {
			if en.Action == "seed.add" && en.Actor == "staff:op" {
				n++
			}
			return nil
		})
	})
	if n != 1 {
		t.Fatalf("%d seed.add audit records; want one per batch (one)", n)
	}
}
