package server

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/certcenter/certcenter/bootstrap"
	xocsp "golang.org/x/crypto/ocsp"
)

// handshake opens a new TLS connection to addr and returns the leaf the
// server presents, verified against the CA.
func handshake(t *testing.T, addr string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// Revoking the server TLS certificate through the API replaces it at once:
// new handshakes on the API and LDAPS listeners present a new, valid
// certificate, without a restart.
func TestRevokedServerCertIsReplaced(t *testing.T) {
	cfg := testConfig(t)
	cfg.LDAP.LDAPSAddr = "127.0.0.1:0"
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api")
	iss, _ := s.c.core.ca.Default()
	roots := x509.NewCertPool()
	roots.AddCert(iss.Cert)

	old := handshake(t, s.Addr("api"), roots)
	if l := handshake(t, s.Addr("ldaps"), roots); !l.Equal(old) {
		t.Fatal("LDAPS and the API present different certificates")
	}
	serial := hex.EncodeToString(old.SerialNumber.Bytes())
	if code, body := post(t, adminClient(t, cfg.DataDir), api+"/api/v1/certs/"+serial+"/revoke", `{"reason":"keyCompromise"}`); code != 200 {
		t.Fatalf("revoke = %d %s", code, body)
	}
	for _, name := range []string{"api", "ldaps"} {
		got := handshake(t, s.Addr(name), roots)
		if got.Equal(old) {
			t.Errorf("%s still presents the revoked certificate %s", name, serial)
		}
		if _, err := got.Verify(x509.VerifyOptions{Roots: roots, DNSName: "localhost"}); err != nil {
			t.Errorf("%s: new certificate: %v", name, err)
		}
	}
	// The files on disk are the new certificate too, so a restart keeps it.
	kp, err := tls.LoadX509KeyPair(filepath.Join(cfg.DataDir, bootstrap.TLSDir, "server.crt"), filepath.Join(cfg.DataDir, bootstrap.TLSDir, "server.key"))
	if err != nil || kp.Leaf.Equal(old) {
		t.Errorf("server.crt on disk: %v, still the revoked one: %v", err, err == nil && kp.Leaf.Equal(old))
	}
}

// Revoking the OCSP responder certificate replaces it: responses are then
// signed by a new responder certificate that verifies, with x/crypto/ocsp
// and with `openssl ocsp`.
func TestRevokedResponderIsReplaced(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	public := "http://" + s.Addr("http")
	api := "https://" + s.Addr("api")
	waitReady(t, public)
	iss, _ := s.c.core.ca.Default()
	oldResp := iss.OCSPCert
	admin := adminClient(t, cfg.DataDir)
	leaf, err := tlsLeaf(filepath.Join(cfg.DataDir, bootstrap.AdminCert))
	if err != nil {
		t.Fatal(err)
	}
	query := func() *xocsp.Response {
		t.Helper()
		req, err := xocsp.CreateRequest(leaf, iss.Cert, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(public+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		r, err := xocsp.ParseResponseForCert(body, leaf, iss.Cert)
		if err != nil {
			t.Fatalf("OCSP response: %v", err)
		}
		return r
	}
	if r := query(); r.Certificate == nil || !r.Certificate.Equal(oldResp) {
		t.Fatal("before: response not signed by the first responder")
	}
	serial := hex.EncodeToString(oldResp.SerialNumber.Bytes())
	if code, body := post(t, admin, api+"/api/v1/certs/"+serial+"/revoke", `{"reason":"keyCompromise"}`); code != 200 {
		t.Fatalf("revoke responder = %d %s", code, body)
	}
	r := query()
	if r.Certificate == nil || r.Certificate.Equal(oldResp) {
		t.Fatal("after revocation the response is still signed by the revoked responder")
	}
	if r.Status != xocsp.Good {
		t.Errorf("status %d, want good", r.Status)
	}
	now, _ := s.c.core.ca.Default()
	if !now.OCSPCert.Equal(r.Certificate) {
		t.Error("the CA's current responder is not the one signing")
	}

	// openssl ocsp verifies the new response against the CA.
	dir := t.TempDir()
	write := func(name string, der []byte) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
		return p
	}
	out, err := exec.Command("openssl", "ocsp", "-issuer", write("ca.pem", iss.Cert.Raw), "-cert", write("leaf.pem", leaf.Raw),
		"-CAfile", filepath.Join(dir, "ca.pem"), "-url", public+"/ocsp").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Response verify OK")) || !bytes.Contains(out, []byte(": good")) {
		t.Errorf("openssl ocsp: %v\n%s", err, out)
	}
}
