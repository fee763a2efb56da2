package httpapi

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// apiError is the body WriteError renders.
type apiError struct {
	Error struct{ Code, Message string } `json:"error"`
}

// get sends GET to srv with client and returns the status and the decoded
// body: the principal's staff ID on success, the error otherwise.
func get(t *testing.T, c *http.Client, url string) (int, apiError, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var ae apiError
	if res.StatusCode >= 400 {
		if ct := res.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("error Content-Type %q, want application/json", ct)
		}
		if err := json.Unmarshal(b, &ae); err != nil {
			t.Fatalf("error body %q is not JSON: %v", b, err)
		}
	}
	return res.StatusCode, ae, string(b)
}

// unstoredCert is signed by the CA's key but was never issued through it:
// the chain verifies, the store does not know it.
func unstoredCert(t *testing.T, e *testenv.Env) tls.Certificate {
	t.Helper()
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	now := e.Clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x7e57), Subject: pkix.Name{CommonName: "forged op"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, e.Issuer.Cert, key.Public(), e.Issuer.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestAuthenticatorRequire(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	auth := &Authenticator{Store: e.Store, Now: e.Clock.Now, Log: discard()}
	mux := http.NewServeMux()
	who := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal", 500)
			return
		}
		io.WriteString(w, p.Staff.ID+"/"+p.Cert.Subject.CommonName)
	})
	mux.Handle("/operators", auth.Require(who, RoleCAOperator))
	mux.Handle("/readers", auth.Require(who, RoleCAOperator, RoleAuditor, RoleRAOfficer))
	mux.Handle("/admins", auth.Require(who))
	srv := e.TLSServer(mux)

	adm := e.Staff("adm", RoleAdmin)
	op := e.Staff("op", RoleCAOperator)
	aud := e.Staff("aud", RoleAuditor)
	revoked := e.Staff("gone", RoleCAOperator)
	e.Revoke(revoked.Cert.Serial, ca.ReasonAffiliationChanged)
	// A second credential of the same person stays good when the first is revoked.
	revoked2 := e.Staff("gone", RoleCAOperator)
	// Issued by the CA and stored, but nobody's credential.
	plain := e.Issue(testenv.IssueOptions{CN: "plain", Profile: ca.ProfileCertAdmin})
	// An organisation's certificate administrator is known, but not staff.
	orgAdm := e.Issue(testenv.IssueOptions{CN: "org admin", Profile: ca.ProfileCertAdmin})
	if err := e.Store.Update(e.Ctx, func(tx *store.Tx) error {
		if err := tx.InsertOrg(&store.Org{ID: "org1", Name: "Org 1"}); err != nil {
			return err
		}
		return tx.InsertCertAdmin(&store.CertAdmin{ID: "oa1", OrgID: "org1", Name: "OA", CertSerials: [][]byte{orgAdm.Serial}})
	}); err != nil {
		t.Fatal(err)
	}
	withCert := func(c tls.Certificate) *http.Client {
		cl := e.Client(srv, nil)
		cl.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{c}
		return cl
	}

	for _, tc := range []struct {
		name   string
		client *http.Client
		path   string
		status int
		code   string
		msg    string // in the error message, or the body on success
	}{
		{"ok/operator on an operator route", e.Client(srv, op), "/operators", 200, "", "op/op"},
		{"ok/auditor on a readers route", e.Client(srv, aud), "/readers", 200, "", "aud/aud"},
		{"ok/admin may do everything", e.Client(srv, adm), "/operators", 200, "", "adm/adm"},
		{"ok/admin on an admin-only route", e.Client(srv, adm), "/admins", 200, "", "adm/adm"},
		{"ok/second credential of a person whose first is revoked", e.Client(srv, revoked2), "/operators", 200, "", "gone/gone"},
		{"fail/no client certificate", e.Client(srv, nil), "/operators", 401, "unauthenticated", "client certificate issued by this CA is required"},
		{"fail/wrong role", e.Client(srv, aud), "/operators", 403, "forbidden", "role auditor may not do this"},
		{"fail/operator on an admin-only route", e.Client(srv, op), "/admins", 403, "forbidden", "role ca_operator"},
		{"fail/revoked credential", e.Client(srv, revoked), "/operators", 401, "unauthenticated", "is revoked"},
		{"fail/certificate of nobody", withCert(e.TLSCert(plain)), "/readers", 401, "unauthenticated", "belongs to no staff member"},
		{"fail/certificate unknown to the store", withCert(unstoredCert(t, e)), "/readers", 401, "unauthenticated", "7e57 is not known to this CA"},
		{"fail/organisation's certificate administrator", withCert(e.TLSCert(orgAdm)), "/readers", 403, "forbidden", "certificate administrator, not to CA staff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, ae, body := get(t, tc.client, srv.URL+tc.path)
			if st != tc.status {
				t.Fatalf("status %d %s, want %d", st, body, tc.status)
			}
			if tc.code == "" {
				if body != tc.msg {
					t.Errorf("body %q, want %q", body, tc.msg)
				}
				return
			}
			if ae.Error.Code != tc.code || !strings.Contains(ae.Error.Message, tc.msg) {
				t.Errorf("error %+v, want code %s and a message with %q", ae.Error, tc.code, tc.msg)
			}
		})
	}

	// Expiry is judged by the authenticator's clock, not only by the TLS
	// handshake (which uses the real time and still accepts the certificate).
	t.Run("fail/expired credential", func(t *testing.T) {
		e.Clock.Set(op.Cert.NotAfter.Add(time.Second))
		defer e.Clock.Set(time.Now())
		st, ae, body := get(t, e.Client(srv, op), srv.URL+"/operators")
		if st != 401 || !strings.Contains(ae.Error.Message, "has expired") {
			t.Fatalf("status %d %s, want 401 has expired", st, body)
		}
	})
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
