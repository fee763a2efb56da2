package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// serialOf finds the serial of the only valid certificate of profile
// whose subject contains cn.
func serialOf(t *testing.T, c *http.Client, api, profile, cn string) string {
	t.Helper()
	code, body := get(t, c, api+"/api/v1/certs?status=valid&limit=1000")
	if code != 200 {
		t.Fatalf("list = %d %s", code, body)
	}
	var list struct {
		Items []struct{ Serial, Profile, Subject string }
	}
	json.Unmarshal([]byte(body), &list)
	for _, it := range list.Items {
		if it.Profile == profile && strings.Contains(it.Subject, cn) {
			return it.Serial
		}
	}
	t.Fatalf("no valid %s certificate for %s in %s", profile, cn, body)
	return ""
}

// enrolStaff makes a staff member through the API and returns a client
// holding their new credential.
func enrolStaff(t *testing.T, admin *http.Client, api, dataDir, id, role string) (*http.Client, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: id}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	body, _ := json.Marshal(map[string]string{"id": id, "name": id, "role": role, "csr": csr})
	code, out := post(t, admin, api+"/api/v1/ra/staff", string(body))
	if code != http.StatusCreated {
		t.Fatalf("enrolling %s: %d %s", id, code, out)
	}
	var cred struct{ Serial, Certificate string }
	json.Unmarshal([]byte(out), &cred)
	blk, _ := pem.Decode([]byte(cred.Certificate))
	return tlsClient(t, dataDir, []tls.Certificate{{Certificate: [][]byte{blk.Bytes}, PrivateKey: key}}), cred.Serial
}

// The last active administrator credential cannot be revoked (it would lock
// everybody out for good); once a second administrator exists it can.
func TestLastAdminCredentialIsKept(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api")
	boot := adminClient(t, cfg.DataDir)
	bootSerial := serialOf(t, boot, api, "cert-admin", "bootstrap-admin")

	code, body := post(t, boot, api+"/api/v1/certs/"+bootSerial+"/revoke", `{"reason":"superseded"}`)
	if code != http.StatusConflict || !strings.Contains(body, "last active administrator") {
		t.Fatalf("revoking the last admin credential = %d %s, want 409", code, body)
	}
	if code, body := get(t, boot, api+"/api/v1/certs/"+bootSerial); code != 200 || !strings.Contains(body, `"status":"valid"`) {
		t.Fatalf("refused revocation changed the certificate: %d %s", code, body)
	}
	if _, err := s.c.core.ca.Revoke(context.Background(), mustHex(t, bootSerial), 1); err == nil {
		t.Fatal("ca.Revoke (the path of the RA and the CLI) revoked the last admin credential")
	}

	second, secondSerial := enrolStaff(t, boot, api, cfg.DataDir, "alice", "admin")
	if code, body := post(t, second, api+"/api/v1/certs/"+bootSerial+"/revoke", `{"reason":"superseded"}`); code != 200 {
		t.Fatalf("revoking the bootstrap credential with a second admin = %d %s", code, body)
	}
	if code, body := post(t, second, api+"/api/v1/certs/"+secondSerial+"/revoke", `{"reason":"superseded"}`); code != http.StatusConflict {
		t.Fatalf("revoking the now last admin credential = %d %s, want 409", code, body)
	}
	// A non-admin credential is not affected.
	_, officerSerial := enrolStaff(t, second, api, cfg.DataDir, "bob", "ra_officer")
	if code, body := post(t, second, api+"/api/v1/certs/"+officerSerial+"/revoke", `{"reason":"superseded"}`); code != 200 {
		t.Fatalf("revoking an officer = %d %s", code, body)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Recover refuses a running server's data directory, and on a stopped one
// whose administrators are all locked out issues a working credential and
// audits it.
func TestRecoverAdministrator(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := Recover(ctx, cfg, log, "tester"); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Recover while serving: %v, want ErrInUse", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Lock everybody out as an older version allowed: the bootstrap
	// credential revoked behind the check's back.
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir)})
	if err != nil {
		t.Fatal(err)
	}
	old, err := tlsLeaf(filepath.Join(cfg.DataDir, bootstrap.AdminCert))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.RevokeCert(old.SerialNumber.Bytes(), time.Now(), 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	res, err := Recover(ctx, cfg, log, "tester")
	if err != nil {
		t.Fatal(err)
	}
	if res.ActiveBefore != 0 || res.Serial == "" {
		t.Errorf("Recover = %+v", res)
	}
	s2 := startTest(t, cfg)
	api := "https://" + s2.Addr("api")
	if code, body := get(t, adminClient(t, cfg.DataDir), api+"/api/v1/status"); code != 200 {
		t.Fatalf("recovered credential: %d %s", code, body)
	}
	s2.Stop(ctx)
	st, err = store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var found bool
	st.View(ctx, func(tx *store.Tx) error {
		return tx.EachAudit(func(e *store.AuditEntry) error {
			found = found || e.Action == "admin.recover" && e.Actor == "offline:tester" && e.Details["serial"] == res.Serial
			return nil
		})
	})
	if !found {
		t.Error("no admin.recover entry in the audit log")
	}
}

func tlsLeaf(path string) (*x509.Certificate, error) {
	kp, err := tls.LoadX509KeyPair(path, strings.TrimSuffix(path, ".crt")+".key")
	if err != nil {
		return nil, err
	}
	return kp.Leaf, nil
}

// staffClient stores a staff member of role with a new credential
// directly (the RA's enrolment does not know every role) and returns a
// client holding it.
func staffClient(t *testing.T, s *Server, dataDir, id, role string) *http.Client {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	crt, err := s.c.core.ca.Issue(ctx, ca.IssueRequest{Profile: ca.ProfileCertAdmin, PublicKey: key.Public(), Subject: &pkix.Name{CommonName: id}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.c.core.store.Update(ctx, func(tx *store.Tx) error {
		return tx.PutStaff(&store.Staff{ID: id, Name: id, Role: role, CertSerials: [][]byte{crt.Serial}})
	}); err != nil {
		t.Fatal(err)
	}
	return tlsClient(t, dataDir, []tls.Certificate{{Certificate: [][]byte{crt.DER}, PrivateKey: key}})
}

// /metrics on the API needs a staff credential (role metrics or any staff
// role); metrics.addr serves it unauthenticated on a listener of its own.
func TestMetricsAccess(t *testing.T) {
	cfg := testConfig(t)
	cfg.Metrics.Addr = "127.0.0.1:0"
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api")
	for _, tc := range []struct {
		name string
		c    *http.Client
		want int
	}{
		{"fail/no client certificate", tlsClient(t, cfg.DataDir, nil), http.StatusUnauthorized},
		{"ok/metrics role", staffClient(t, s, cfg.DataDir, "prometheus", httpapi.RoleMetrics), 200},
		{"ok/auditor", staffClient(t, s, cfg.DataDir, "carol", "auditor"), 200},
		{"ok/admin", adminClient(t, cfg.DataDir), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, tc.c, api+"/metrics")
			if code != tc.want {
				t.Errorf("/metrics = %d %s, want %d", code, body, tc.want)
			}
			if code == 200 && !strings.Contains(body, "certcenter_http_requests_total") {
				t.Errorf("/metrics body lacks the HTTP counters")
			}
		})
	}
	t.Run("fail/metrics role reaches nothing else", func(t *testing.T) {
		if code, _ := get(t, staffClient(t, s, cfg.DataDir, "scraper2", httpapi.RoleMetrics), api+"/api/v1/certs"); code != http.StatusForbidden {
			t.Errorf("/api/v1/certs with role metrics = %d, want 403", code)
		}
	})
	t.Run("ok/separate listener", func(t *testing.T) {
		addr := s.Addr("metrics")
		if addr == "" {
			t.Fatal("no metrics listener")
		}
		code, body := get(t, http.DefaultClient, "http://"+addr+"/metrics")
		if code != 200 || !strings.Contains(body, "certcenter_http_requests_total") {
			t.Errorf("metrics listener = %d", code)
		}
		if code, _ := get(t, http.DefaultClient, "http://"+addr+"/api/v1/certs"); code != http.StatusNotFound {
			t.Errorf("metrics listener serves more than /metrics: %d", code)
		}
	})
}
