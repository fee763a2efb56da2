package ra_test

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
)

// TestLDAPAccessFlow: an organisation's certificate administrator requests
// directory access for its system; the superior organisation's
// administrator approves it (an RA officer for an organisation without a
// superior); the account is created and binds to the running directory.
// Nobody else may request or approve, and nothing binds before approval.
func TestLDAPAccessFlow(t *testing.T) {
	w := newWorld(t, func(c *config.Config) {
		c.LDAP.Addr, c.LDAP.AllowCleartextBind = "127.0.0.1:0", true
		c.LDAP.AnonymousPeople = config.AnonymousPeopleNone
	})
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "province", "name": "Province Health Commission"}, nil)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "hospital", "name": "City Hospital", "parent": "province", "multi_level": true}, nil)
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "clinic", "name": "Clinic"}, nil)
	hadm := w.enrol("/api/v1/ra/orgs/hospital/admins", "hadm", "", "")
	padm := w.enrol("/api/v1/ra/orgs/province/admins", "padm", "", "")
	cadm := w.enrol("/api/v1/ra/orgs/clinic/admins", "cadm", "", "")
	officer := w.enrol("/api/v1/ra/staff", "officer", "ra_officer", "")

	const pw = "a long enough password"
	req := func(org, account string) map[string]any {
		return map[string]any{"org": org, "account": account, "dn": "cn=" + account + ",ou=systems,o=certcenter", "password": pw, "valid_days": 30}
	}
	bind := func(account string) error {
		c, err := ldap.DialURL("ldap://" + w.srv.Addr("ldap"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.Bind("cn="+account+",ou=systems,o=certcenter", pw)
	}

	// refusals change nothing
	before := w.countRequests()
	w.must(cadm.http, 403, "POST", "/api/v1/ra/ldap-access", req("hospital", "his"), nil)
	w.must(officer.http, 403, "POST", "/api/v1/ra/ldap-access", req("hospital", "his"), nil)
	bad := req("hospital", "his")
	bad["password"] = "short"
	w.must(hadm.http, 400, "POST", "/api/v1/ra/ldap-access", bad, nil)
	if got := w.countRequests(); got != before {
		t.Fatalf("refused requests stored: %d -> %d", before, got)
	}

	var got map[string]any
	w.must(hadm.http, 201, "POST", "/api/v1/ra/ldap-access", req("hospital", "his"), &got)
	id, _ := got["id"].(string)
	if got["state"] != "superior_review" || got["ldap_account"] != "his" {
		t.Fatalf("submitted: %v", got)
	}
	w.must(hadm.http, 409, "POST", "/api/v1/ra/ldap-access", req("hospital", "his"), nil) // pending already
	if err := bind("his"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bind before approval: %v", err)
	}
	w.must(officer.http, 403, "POST", "/api/v1/requests/"+id+"/approve", nil, nil) // the superior decides
	w.must(hadm.http, 403, "POST", "/api/v1/requests/"+id+"/approve", nil, nil)
	w.must(padm.http, 200, "POST", "/api/v1/requests/"+id+"/approve", map[string]any{"comment": "HIS of City Hospital"}, &got)
	if got["state"] != "granted" {
		t.Fatalf("after the superior's approval: %v", got)
	}
	if err := bind("his"); err != nil {
		t.Fatalf("bind after approval: %v", err)
	}

	// an organisation without a superior: an RA officer approves
	w.must(cadm.http, 201, "POST", "/api/v1/ra/ldap-access", req("clinic", "clinic-his"), &got)
	cid, _ := got["id"].(string)
	if got["state"] != "ca_review" {
		t.Fatalf("clinic request: %v", got)
	}
	w.must(padm.http, 403, "POST", "/api/v1/requests/"+cid+"/approve", nil, nil)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+cid+"/approve", nil, &got)
	if got["state"] != "granted" || bind("clinic-his") != nil {
		t.Fatalf("clinic request after the officer's approval: %v", got)
	}
	raw := w.must(w.admin, 200, "GET", "/api/v1/ldap/accounts", nil, nil)
	if !strings.Contains(raw, `"approved_by":"admin:padm"`) || !strings.Contains(raw, `"request":"`+id+`"`) {
		t.Errorf("accounts: %s", raw)
	}
}

// TestLDAPAccessWithClientCert: a request may carry the system's client
// certificate instead of a password; once approved, the system binds with
// SASL EXTERNAL over StartTLS, and a password bind of the account fails.
func TestLDAPAccessWithClientCert(t *testing.T) {
	w := newWorld(t, func(c *config.Config) {
		c.LDAP.Addr = "127.0.0.1:0"
		c.LDAP.AnonymousPeople = config.AnonymousPeopleNone
	})
	w.must(w.admin, 201, "POST", "/api/v1/ra/orgs", map[string]any{"id": "clinic", "name": "Clinic"}, nil)
	cadm := w.enrol("/api/v1/ra/orgs/clinic/admins", "cadm", "", "")
	officer := w.enrol("/api/v1/ra/staff", "officer", "ra_officer", "")
	// the system's certificate: any certificate of this CA allowing
	// clientAuth; here one of the organisation's credentials
	sys := w.enrol("/api/v1/ra/orgs/clinic/admins", "his-sys", "", "")
	certPEM, err := os.ReadFile(sys.certFile)
	if err != nil {
		t.Fatal(err)
	}
	w.must(cadm.http, 400, "POST", "/api/v1/ra/ldap-access", map[string]any{"org": "clinic", "account": "his", "dn": "cn=his,ou=systems,o=certcenter", "valid_days": 30}, nil)
	w.must(cadm.http, 400, "POST", "/api/v1/ra/ldap-access", map[string]any{"org": "clinic", "account": "his", "dn": "cn=his,ou=systems,o=certcenter", "valid_days": 30, "client_cert": "junk"}, nil)
	var got map[string]any
	w.must(cadm.http, 201, "POST", "/api/v1/ra/ldap-access", map[string]any{"org": "clinic", "account": "his", "dn": "cn=his,ou=systems,o=certcenter", "valid_days": 30, "client_cert": string(certPEM)}, &got)
	id, _ := got["id"].(string)
	w.must(officer.http, 200, "POST", "/api/v1/requests/"+id+"/approve", nil, &got)
	if got["state"] != "granted" {
		t.Fatalf("after approval: %v", got)
	}
	pair, err := tls.LoadX509KeyPair(sys.certFile, sys.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ldap.DialURL("ldap://" + w.srv.Addr("ldap"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// the test trusts the server by its address only; what is checked
	// here is the client's certificate
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{pair}}); err != nil {
		t.Fatal(err)
	}
	if err := c.ExternalBind(); err != nil {
		t.Fatalf("EXTERNAL bind with the approved certificate: %v", err)
	}
	if who, err := c.WhoAmI(nil); err != nil || who.AuthzID != "dn:cn=his,ou=systems,o=certcenter" {
		t.Errorf("whoami: %v %v", who, err)
	}
	if err := c.Bind("cn=his,ou=systems,o=certcenter", "a long enough password"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("password bind of a certificate-only account: %v", err)
	}
	raw := w.must(w.admin, 200, "GET", "/api/v1/ldap/accounts", nil, nil)
	if !strings.Contains(raw, `"auth":["client_cert"]`) {
		t.Errorf("accounts: %s", raw)
	}
}
