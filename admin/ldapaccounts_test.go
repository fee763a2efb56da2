package admin_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
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

func testCertPEM(t *testing.T, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), store.ClientCertKey(c.RawSubjectPublicKeyInfo)
}

// TestLDAPAccountClientCert: an account made with a client certificate
// keeps its key and has no password unless one is given; the certificate
// can be set again (audited); a bad certificate or key, or one another
// live account has, is refused and changes nothing.
func TestLDAPAccountClientCert(t *testing.T) {
	w := newWorld(t)
	if err := w.Store.Update(w.Ctx, func(tx *store.Tx) error {
		return tx.InsertOrg(&store.Org{ID: "hosp-a", Name: "Hospital A"})
	}); err != nil {
		t.Fatal(err)
	}
	op := w.creds[httpapi.RoleCAOperator]
	certA, keyA := testCertPEM(t, "HIS A")
	_, keyB := testCertPEM(t, "HIS B")
	body := func(id string, extra map[string]any) string {
		m := map[string]any{"id": id, "dn": "cn=" + id + ",ou=systems,o=certcenter,c=CN", "orgs": []string{"hosp-a"}, "valid_days": 30}
		for k, v := range extra {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	before := w.auditCount()
	for _, bad := range []struct{ body, want string }{
		{body("his-x", map[string]any{"client_cert": "not pem"}), "client_cert"},
		{body("his-x", map[string]any{"client_cert_key": "abcd"}), "client_cert_key"},
		{body("his-x", map[string]any{"client_cert": certA, "client_cert_key": keyB}), "not the key of client_cert"},
	} {
		if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", bad.body, nil); st != 400 || !strings.Contains(raw, bad.want) {
			t.Errorf("%s: %d %s, want 400 naming %s", bad.body, st, raw, bad.want)
		}
	}
	var v admin.LDAPAccountView
	if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", body("his-a", map[string]any{"client_cert": certA}), &v); st != 201 {
		t.Fatalf("create with a certificate: %d %s", st, raw)
	}
	if v.Password != "" || v.ClientCertKey != keyA || v.ClientCertSubject != "CN=HIS A" || strings.Join(v.Auth, ",") != "client_cert" {
		t.Errorf("created: %+v", v)
	}
	var rec *store.DirAccount
	_ = w.Store.View(w.Ctx, func(tx *store.Tx) (err error) { rec, err = tx.DirAccount("his-a"); return })
	if rec.PasswordHash != "" || rec.ClientCertKey != keyA {
		t.Errorf("stored: %+v", rec)
	}
	// the same key for a second account is refused
	if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", body("his-a2", map[string]any{"client_cert_key": strings.ToUpper(keyA)}), nil); st != 409 {
		t.Errorf("a second account with the same key: %d %s", st, raw)
	}
	// both: a password and a certificate
	if st, raw := w.call(op, "POST", "/api/v1/ldap/accounts", body("his-b", map[string]any{"client_cert_key": keyB, "password": "a password of sixteen"}), &v); st != 201 || strings.Join(v.Auth, ",") != "password,client_cert" {
		t.Errorf("create with both: %d %s", st, raw)
	}
	// set again: the new certificate replaces the old
	certC, keyC := testCertPEM(t, "HIS A renewed")
	cb, _ := json.Marshal(map[string]string{"client_cert": certC})
	if st, raw := w.call(op, "PUT", "/api/v1/ldap/accounts/his-a/client-cert", string(cb), &v); st != 200 || v.ClientCertKey != keyC {
		t.Errorf("set the certificate: %d %s", st, raw)
	}
	for _, bad := range []struct {
		path, body string
		code       int
	}{
		{"/api/v1/ldap/accounts/his-a/client-cert", `{}`, 400},
		{"/api/v1/ldap/accounts/his-a/client-cert", `{"client_cert_key":"` + keyB + `"}`, 409},
		{"/api/v1/ldap/accounts/nobody/client-cert", string(cb), 404},
	} {
		if st, raw := w.call(op, "PUT", bad.path, bad.body, nil); st != bad.code {
			t.Errorf("PUT %s %s: %d %s, want %d", bad.path, bad.body, st, raw, bad.code)
		}
	}
	_ = w.Store.View(w.Ctx, func(tx *store.Tx) (err error) { rec, err = tx.DirAccount("his-a"); return })
	if rec.ClientCertKey != keyC {
		t.Errorf("after the refused changes the key is %s, want %s", rec.ClientCertKey, keyC)
	}
	if got := w.auditCount() - before; got != 3 {
		t.Errorf("%d audit entries, want 3 (two creations, one change)", got)
	}
}
