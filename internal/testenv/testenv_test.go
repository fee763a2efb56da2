package testenv

import (
	"bytes"
	"crypto/x509"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

func TestEnv(t *testing.T) {
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		t.Run(string(alg), func(t *testing.T) {
			e := New(t, Options{Algorithm: alg})
			if got, _ := signer.AlgorithmOf(e.Issuer.Cert.PublicKey); got != alg {
				t.Fatalf("CA key is %s, want %s", got, alg)
			}
			c := e.Issue(IssueOptions{CN: "alice"})
			if err := c.X509.CheckSignatureFrom(e.Issuer.Cert); err != nil {
				t.Fatalf("issued certificate does not verify: %v", err)
			}
			if _, err := c.X509.Verify(x509Opts(e)); err != nil {
				t.Fatalf("issued certificate does not chain at the clock's time: %v", err)
			}
			r := e.Revoke(c.Serial, ca.ReasonKeyCompromise)
			if r.Status != store.StatusRevoked || !r.RevokedAt.Equal(e.Clock.Now()) {
				t.Fatalf("revoked record %+v: want revoked at the clock's %v", r, e.Clock.Now())
			}
			caSerial := e.Issuer.Cert.SerialNumber
			closed := false
			e.Defer(func() { closed = true })
			e.Restart()
			if !closed {
				t.Error("Restart did not run the deferred close")
			}
			if e.Issuer.Cert.SerialNumber.Cmp(caSerial) != 0 {
				t.Error("Restart made a new CA instead of loading the stored one")
			}
			if got := e.Cert(c.Serial); got.Status != store.StatusRevoked {
				t.Errorf("after restart the certificate is %s, want revoked", got.Status)
			}
			if n := e.Counts(); n.Certs < 2 {
				t.Errorf("counts after restart %+v: the issued certificate is missing", n)
			}
		})
	}
}

func TestEnvReusesDir(t *testing.T) {
	a := New(t, Options{})
	c := a.Issue(IssueOptions{})
	dir := a.Dir
	a.close()
	b := New(t, Options{Dir: dir})
	if !bytes.Equal(b.Cert(c.Serial).DER, c.DER) {
		t.Fatal("a second Env on the same directory does not see the first one's certificate")
	}
}

func TestTLSServer(t *testing.T) {
	e := New(t, Options{})
	srv := e.TLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			io.WriteString(w, "anonymous")
			return
		}
		io.WriteString(w, r.TLS.VerifiedChains[0][0].Subject.CommonName)
	}))
	cred := e.Staff("op1", "ca_operator")
	for _, tc := range []struct {
		name string
		cred *Credential
		want string
	}{
		{"ok/no credential", nil, "anonymous"},
		{"ok/staff credential", cred, "op1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Client(srv, tc.cred).Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			if string(b) != tc.want {
				t.Errorf("server saw %q, want %q", b, tc.want)
			}
		})
	}
	e.Clock.Advance(time.Hour)
	if e.Clock.Now().Sub(e.opts.Start) != time.Hour {
		t.Error("clock did not advance")
	}
}

func x509Opts(e *Env) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: e.Roots(), CurrentTime: e.Clock.Now(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
}
