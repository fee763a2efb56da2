package crl

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// env is the shared test environment (internal/testenv: a real store,
// signer, authority and clock in a temp dir) with a CRL builder on it.
type env struct {
	t     testing.TB
	te    *testenv.Env
	dir   string
	store *store.Store
	ca    *ca.Authority
	iss   *ca.Issuer
	b     *Builder
	clock *testclock.Clock
	log   *slog.Logger
}

type envOpts struct {
	log    *slog.Logger // default: discard
	shards int
	alg    signer.Algorithm
	dir    string // reuse a data directory (restart)
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	// The clock starts an hour back so that tests can move it forward and the
	// CRLs are still valid for openssl, which checks them at the real time.
	te := testenv.New(t, testenv.Options{Dir: o.dir, Algorithm: o.alg, CRLShards: o.shards,
		Start: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)})
	e := &env{t: t, te: te, dir: te.Dir, clock: te.Clock, log: o.log}
	e.build()
	return e
}

// build makes the builder on the environment's current store and authority.
func (e *env) build() {
	e.t.Helper()
	e.store, e.ca, e.iss = e.te.Store, e.te.CA, e.te.Issuer
	b, err := New(Options{Store: e.store, CA: e.ca, Now: e.clock.Now, Logger: e.log, Interval: 24 * time.Hour,
		Validity: 7 * 24 * time.Hour, DeltaValidity: time.Hour, DeltaDelay: 50 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	e.b = b
	e.te.Defer(b.Close)
}

// restart closes and reopens the store, authority and builder.
func (e *env) restart() {
	e.t.Helper()
	e.te.Restart()
	e.build()
}

// issue issues n personal certificates and returns them.
func (e *env) issue(n int) []*x509.Certificate {
	e.t.Helper()
	var out []*x509.Certificate
	for i := range n {
		key, err := signer.GenerateKey(signer.ECDSAP256)
		if err != nil {
			e.t.Fatal(err)
		}
		c, err := e.ca.Issue(context.Background(), ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
			Subject: &pkix.Name{CommonName: "user " + string(rune('a'+i%26)), Organization: []string{"certcenter"}}})
		if err != nil {
			e.t.Fatal(err)
		}
		x, err := x509.ParseCertificate(c.DER)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func (e *env) revoke(c *x509.Certificate, r ca.Reason) {
	e.t.Helper()
	if _, err := e.ca.Revoke(context.Background(), c.SerialNumber.Bytes(), r); err != nil {
		e.t.Fatal(err)
	}
}

// marks lists the CRL dirty marks of the demo CA ("crl", "crl-delta").
func (e *env) marks() []string {
	e.t.Helper()
	var out []string
	err := e.store.View(context.Background(), func(tx *store.Tx) error {
		for _, kind := range []string{store.DirtyCRL, store.DirtyCRLDelta} {
			m, err := tx.Dirty(kind, "demo")
			if err != nil {
				return err
			}
			if m != nil {
				out = append(out, kind)
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// blob reads a stored CRL.
func (e *env) blob(file string) []byte {
	e.t.Helper()
	var der []byte
	err := e.store.View(context.Background(), func(tx *store.Tx) error {
		var err error
		der, err = tx.Blob(nsCRL, file)
		return err
	})
	if err != nil {
		e.t.Fatalf("reading %s: %v", file, err)
	}
	return der
}

// parse parses a CRL with the standard library and checks its signature.
func (e *env) parse(der []byte) *x509.RevocationList {
	e.t.Helper()
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		e.t.Fatalf("parsing CRL: %v", err)
	}
	if err := rl.CheckSignatureFrom(e.iss.Cert); err != nil {
		e.t.Fatalf("CRL signature: %v", err)
	}
	return rl
}

// openssl runs openssl with args, failing the test with its output.
func openssl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found: install the Debian package openssl")
	}
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// opensslFails runs openssl and expects it to fail; it returns the output.
func opensslFails(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("openssl", args...).CombinedOutput()
	if err == nil {
		t.Fatalf("openssl %s succeeded, want failure:\n%s", strings.Join(args, " "), out)
	}
	return string(out)
}

func writePEM(t *testing.T, path, typ string, ders ...[]byte) string {
	t.Helper()
	var buf bytes.Buffer
	for _, d := range ders {
		pem.Encode(&buf, &pem.Block{Type: typ, Bytes: d})
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
