package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// env is the shared test environment (internal/testenv: a real store in a
// temp dir, a file signer, a CA and a clock) with a responder served over
// HTTP on an ephemeral port.
type env struct {
	t     testing.TB
	ctx   context.Context
	dir   string
	clock *testclock.Clock
	st    *store.Store
	keys  signer.Provider
	auth  *ca.Authority
	r     *Responder
	srv   *httptest.Server
	url   string
}

type envOpt func(*Options)

func newEnv(t testing.TB, opts ...envOpt) *env {
	t.Helper()
	te := testenv.New(t, testenv.Options{})
	e := &env{t: t, ctx: te.Ctx, dir: te.Dir, clock: te.Clock, st: te.Store, keys: te.Keys, auth: te.CA}
	e.r = e.newResponder(opts...)
	e.auth.Subscribe(e.r.HandleEvent)
	e.srv = httptest.NewServer(e.r)
	t.Cleanup(e.srv.Close)
	e.url = e.srv.URL + "/ocsp"
	return e
}

func (e *env) newAuthority() *ca.Authority {
	return ca.New(ca.Options{Store: e.st, Signers: e.keys, Now: e.clock.Now, PublicURL: "http://127.0.0.1:8080", LDAPURL: "ldap://127.0.0.1:1389"})
}

func (e *env) newResponder(opts ...envOpt) *Responder {
	e.t.Helper()
	o := Options{Store: e.st, Authority: e.auth, Now: e.clock.Now, CacheEntries: 1000}
	for _, f := range opts {
		f(&o)
	}
	r, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *env) issuer(name string) *ca.Issuer {
	e.t.Helper()
	iss, err := e.auth.Issuer(name)
	if err != nil {
		e.t.Fatal(err)
	}
	return iss
}

// issue makes a certificate of CA caName (empty: default).
func (e *env) issue(caName string) (*store.Cert, *x509.Certificate) {
	e.t.Helper()
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.auth.Issue(e.ctx, ca.IssueRequest{CA: caName, Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(), Subject: &pkix.Name{CommonName: "test person"}})
	if err != nil {
		e.t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, x
}

func (e *env) request(cert *x509.Certificate, issuer *x509.Certificate, h crypto.Hash) []byte {
	e.t.Helper()
	der, err := xocsp.CreateRequest(cert, issuer, &xocsp.RequestOptions{Hash: h})
	if err != nil {
		e.t.Fatal(err)
	}
	return der
}

// do sends an HTTP request and returns status, headers and body.
func (e *env) do(req *http.Request) (int, http.Header, []byte) {
	e.t.Helper()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, res.Header, b
}

func (e *env) post(der []byte) []byte {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(der))
	req.Header.Set("Content-Type", "application/ocsp-request")
	code, _, body := e.do(req)
	if code != http.StatusOK {
		e.t.Fatalf("POST: HTTP %d", code)
	}
	return body
}

// getRaw sends GET with a raw request-target (not re-encoded by net/url).
func (e *env) getRaw(target string, hdr http.Header) (int, http.Header, []byte) {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.URL.Opaque = target
	for k, v := range hdr {
		req.Header[k] = v
	}
	return e.do(req)
}

// parse checks a successful response for cert with the Go client.
func parse(t *testing.T, der []byte, cert, issuer *x509.Certificate) *xocsp.Response {
	t.Helper()
	resp, err := xocsp.ParseResponseForCert(der, cert, issuer)
	if err != nil {
		t.Fatalf("parsing response: %v (%x)", err, der)
	}
	return resp
}

// statusOf returns the OCSPResponseStatus of a response.
func statusOf(t *testing.T, der []byte) ResponseStatus {
	t.Helper()
	if bytes.HasPrefix(der, []byte{0x30, 0x03, 0x0a, 0x01}) && len(der) == 5 {
		return ResponseStatus(der[4])
	}
	if _, err := xocsp.ParseResponse(der, nil); err != nil {
		var re xocsp.ResponseError
		if errors.As(err, &re) {
			return ResponseStatus(re.Status)
		}
	}
	return StatusSuccessful
}

func writePEM(t *testing.T, path string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// openssl runs the openssl command; it fails the test if openssl is missing.
func openssl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (Debian package: openssl)")
	}
	// openssl ocsp exits 1 on an unsuccessful response; callers check the output.
	out, _ := exec.Command("openssl", args...).CombinedOutput()
	return string(out)
}

func hexSerial(c *store.Cert) string { return fmt.Sprintf("0x%X", c.Serial) }

type x509Cert = x509.Certificate

func ecKey() (crypto.Signer, error) { return signer.GenerateKey(signer.ECDSAP256) }

func subject(cn string) *pkix.Name { return &pkix.Name{CommonName: cn} }

func mustParseCert(t *testing.T, der []byte) *x509.Certificate {
	t.Helper()
	x, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
