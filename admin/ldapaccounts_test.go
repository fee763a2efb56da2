package admin_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// TestLDAPAccounts: CA operators create, list and revoke directory
// accounts; each change is audited; bad requests change nothing; a
// generated password is returned once and matches the stored hash.
func TestLDAPAccounts(t *testing.T) {
	w := newWorld(t)
	if err := w.Store.Update(w.Ctx, func(tx *store.Tx) error {
		return tx.InsertOrg(&store.Org{ID: "hosp-a", Name: "Hospital A"})
	}); err != nil {
		t.Fatal(err)
	}
	op := w.creds[httpapi.RoleCAOperator]
	before := w.auditCount()
	for _, bad := range []struct{ body, want string }{
		{`{"id":"his-a","dn":"not a dn","orgs":["hosp-a"],"valid_days":30}`, "dn"},
		{`{"id":"his-a","dn":"cn=his-a,o=x","orgs":[],"valid_days":30}`, "orgs"},
		{`{"id":"his-a","dn":"cn=his-a,o=x","orgs":["nowhere"],"valid_days":30}`, "no organisation nowhere"},
		{`{"id":"his-a","dn":"cn=his-a,o=x","orgs":["hosp-a"]}`, "valid_days"},
		{`{"id":"His A","dn":"cn=his-a,o=x","orgs":["hosp-a"],"valid_days":30}`, "id"},
		{`{"id":"his-a","dn":"cn=his-a,o=x","orgs":["hosp-a"],"valid_days":30,"password":"short"}`, "password"},
	} {
		if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", bad.body, nil); st != 400 || !strings.Contains(raw, bad.want) {
			t.Errorf("%s: %d %s, want 400 naming %s", bad.body, st, raw, bad.want)
		}
	}
	if st, raw := w.call(w.creds[httpapi.RoleRAOfficer], "POST", "/api/v1/ldap/accounts", `{"id":"his-a","dn":"cn=his-a,o=x","orgs":["hosp-a"],"valid_days":30}`, nil); st != 403 {
		t.Errorf("an RA officer creates: %d %s", st, raw)
	}
	var v admin.LDAPAccountView
	if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", `{"id":"his-a","dn":"cn=his-a,ou=systems,o=certcenter,c=CN","orgs":["hosp-a"],"valid_days":30}`, &v); st != 201 {
		t.Fatalf("create: %d %s", st, raw)
	}
	if v.Password == "" || v.Status != "active" || v.ApprovedBy == "" || v.ExpiresAt.Sub(w.Clock.Now()) < 29*24*time.Hour {
		t.Errorf("created: %+v", v)
	}
	var rec *store.DirAccount
	_ = w.Store.View(w.Ctx, func(tx *store.Tx) (err error) { rec, err = tx.DirAccount("his-a"); return })
	if bcrypt.CompareHashAndPassword([]byte(rec.PasswordHash), []byte(v.Password)) != nil {
		t.Error("the returned password does not match the stored hash")
	}
	// the same DN again, spelt differently, is refused
	if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", `{"id":"his-a2","dn":"CN=his-a, OU=systems,o=certcenter,c=CN","orgs":["hosp-a"],"valid_days":30}`, nil); st != 409 {
		t.Errorf("duplicate DN: %d %s", st, raw)
	}
	var list struct{ Accounts []admin.LDAPAccountView }
	if st, raw := w.call(op, "GET", "/api/v1/ldap/accounts", "", &list); st != 200 || len(list.Accounts) != 1 || list.Accounts[0].Password != "" || strings.Contains(raw, "$2a$") {
		t.Errorf("list: %d %s", st, raw)
	}
	if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts/his-a/revoke", "", &v); st != 200 || v.Status != "revoked" {
		t.Errorf("revoke: %d %s", st, raw)
	}
	if st, _ := w.call(op, "POST", "/api/v1/ldap/accounts/his-a/revoke", "", nil); st != 409 {
		t.Errorf("second revoke: %d, want 409", st)
	}
	if st, _ := w.call(op, "POST", "/api/v1/ldap/accounts/nobody/revoke", "", nil); st != 404 {
		t.Errorf("unknown revoke: %d, want 404", st)
	}
	if got := w.auditCount() - before; got != 2 {
		t.Errorf("%d audit entries, want 2 (create, revoke)", got)
	}
}
