// Package testenv is the one test environment of certcenter's packages: a
// real Badger store in t.TempDir(), a file signer, a CA made through ca, and
// a settable clock, laid out as a data directory (db/, keys/) like the
// server's, with helpers to issue from a fresh key, revoke, enrol staff with
// client credentials, serve a handler behind mutual TLS, and restart (close
// and reopen the store, reload the CA). Everything it opens is closed by
// t.Cleanup.
//
// It is imported only by _test.go files; no production package may import
// it (it imports testing). It does not build feature components (CRL
// builder, OCSP responder, RA): a package's own test file builds those on
// Env.Store and Env.CA, registers their Close with Env.Defer, and rebuilds
// them after Env.Restart.
package testenv

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Directory names inside Env.Dir; the same as a server's data directory,
// so a backup of Env.Dir is a backup of a data directory.
const (
	DBDir   = "db"
	KeysDir = "keys"
)

// CAName is the name of the CA every Env creates.
const CAName = "demo"

// Options shape an Env; the zero value is an ECDSA P-256 CA at the present
// second.
type Options struct {
	// Dir reuses a data directory (another Env's, a restored backup); default
	// a new t.TempDir().
	Dir string
	// Algorithm of the CA key; default signer.ECDSAP256.
	Algorithm signer.Algorithm
	// Start is where the clock stands; default time.Now truncated to the
	// second (CRL and OCSP times have second precision).
	Start time.Time
	// Clock, when set, is used instead of a new one at Start: a test that
	// needs the clock before New (for a RevokeCheck) makes it first.
	Clock *testclock.Clock
	// CRLShards, RevokeCheck, Suffix are passed to ca.Options.
	CRLShards   int
	RevokeCheck func(tx *store.Tx, c *store.Cert) error
	Suffix      string
	// Logger for the store and the CA; default discard.
	Logger *slog.Logger
	// NoCA opens the store and the signer only: for a store that a test
	// fills itself (a restore) before calling LoadCA.
	NoCA bool
}

// Env is an open store, signer and authority. Fields are replaced by
// Restart; read them after it, do not keep copies across it.
type Env struct {
	T     testing.TB
	Ctx   context.Context
	Dir   string
	Clock *testclock.Clock
	Store *store.Store
	Keys  *signer.File
	CA    *ca.Authority
	// Issuer is the CA created (or loaded) by New; nil with Options.NoCA
	// until LoadCA.
	Issuer *ca.Issuer

	opts   Options
	defers []func()
	seq    atomic.Int64
}

// New opens an Env; with an existing Options.Dir it loads the CA found
// there instead of creating one.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if o.Algorithm == "" {
		o.Algorithm = signer.ECDSAP256
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Start.IsZero() {
		o.Start = time.Now().UTC().Truncate(time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = testclock.New(o.Start)
	}
	e := &Env{T: t, Ctx: context.Background(), Dir: o.Dir, Clock: o.Clock, opts: o}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *Env) open() {
	t := e.T
	t.Helper()
	st, err := store.Open(store.Options{Dir: filepath.Join(e.Dir, DBDir), Logger: e.opts.Logger})
	if err != nil {
		t.Fatalf("testenv: opening store: %v", err)
	}
	keys, err := signer.NewFile(filepath.Join(e.Dir, KeysDir))
	if err != nil {
		st.Close()
		t.Fatalf("testenv: opening file signer: %v", err)
	}
	e.Store, e.Keys = st, keys
	e.CA = ca.New(ca.Options{Store: st, Signers: keys, Logger: e.opts.Logger, Now: e.Clock.Now,
		PublicURL: "http://127.0.0.1:8080", LDAPURL: "ldap://127.0.0.1:1389", Suffix: e.opts.Suffix,
		CRLShards: e.opts.CRLShards, RevokeCheck: e.opts.RevokeCheck})
	e.Issuer = nil
	if !e.opts.NoCA {
		e.LoadCA()
	}
}

// Logger is the logger the Env gives the store and the CA.
func (e *Env) Logger() *slog.Logger { return e.opts.Logger }

// LoadCA loads the CA of the store, creating it if the store has none.
func (e *Env) LoadCA() *ca.Issuer {
	e.T.Helper()
	err := e.CA.Load(e.Ctx)
	switch {
	case err == nil:
		e.Issuer, err = e.CA.Issuer(CAName)
	case errors.Is(err, ca.ErrNotInitialised):
		e.Issuer, err = e.CA.Init(e.Ctx, ca.InitOptions{Name: CAName, CommonName: "Test Root CA",
			Organization: "certcenter", Country: "CN", Algorithm: e.opts.Algorithm, Validity: 10 * 365 * 24 * time.Hour})
	}
	if err != nil {
		e.T.Fatalf("testenv: loading CA: %v", err)
	}
	return e.Issuer
}

// Defer registers fn to run before the store closes, at Restart or at the
// end of the test, latest first: components built on the store (a CRL
// builder, an OCSP responder) stop before it. After a Restart the list is
// empty; register the rebuilt components again.
func (e *Env) Defer(fn func()) { e.defers = append(e.defers, fn) }

func (e *Env) close() {
	for i := len(e.defers) - 1; i >= 0; i-- {
		e.defers[i]()
	}
	e.defers = nil
	if e.Store == nil {
		return
	}
	if err := e.Keys.Close(); err != nil {
		e.T.Errorf("testenv: closing signer: %v", err)
	}
	if err := e.Store.Close(); err != nil {
		e.T.Errorf("testenv: closing store: %v", err)
	}
	e.Store = nil
}

// Restart closes everything and opens the same directory again, as a
// server restart does: what was committed must be there, what was only in
// memory is gone (including CA event subscribers).
func (e *Env) Restart() {
	e.T.Helper()
	e.close()
	e.open()
}

// Cert is an issued certificate with its private key.
type Cert struct {
	*store.Cert
	X509 *x509.Certificate
	Key  crypto.Signer
}

// IssueOptions say what to issue; the zero value is a personal signing
// certificate for "user N".
type IssueOptions struct {
	CA           string // default the authority's default CA
	CN           string
	Profile      string // default ca.ProfilePersonalSigning
	SubscriberID string
	DNSNames     []string
	Algorithm    signer.Algorithm // of the subscriber key; default ECDSA P-256
	// NotAfter shortens the profile's validity when set.
	NotAfter time.Time
}

// Issue issues a certificate for a fresh key through the CA.
func (e *Env) Issue(o IssueOptions) *Cert {
	e.T.Helper()
	if o.CN == "" {
		o.CN = fmt.Sprintf("user %d", e.seq.Add(1))
	}
	if o.Profile == "" {
		o.Profile = ca.ProfilePersonalSigning
	}
	if o.Algorithm == "" {
		o.Algorithm = signer.ECDSAP256
	}
	key, err := signer.GenerateKey(o.Algorithm)
	if err != nil {
		e.T.Fatalf("testenv: generating key: %v", err)
	}
	c, err := e.CA.Issue(e.Ctx, ca.IssueRequest{CA: o.CA, Profile: o.Profile, PublicKey: key.Public(), SubscriberID: o.SubscriberID,
		DNSNames: o.DNSNames, NotAfter: o.NotAfter, Subject: &pkix.Name{CommonName: o.CN, Organization: []string{"certcenter"}}})
	if err != nil {
		e.T.Fatalf("testenv: issuing %s: %v", o.CN, err)
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		e.T.Fatalf("testenv: parsing issued certificate: %v", err)
	}
	return &Cert{Cert: c, X509: x, Key: key}
}

// IssueN issues n personal certificates.
func (e *Env) IssueN(n int) []*Cert {
	e.T.Helper()
	out := make([]*Cert, n)
	for i := range out {
		out[i] = e.Issue(IssueOptions{})
	}
	return out
}

// Revoke revokes serial through the CA (so RevokeCheck and the events run)
// and returns the revoked record.
func (e *Env) Revoke(serial []byte, reason ca.Reason) *store.Cert {
	e.T.Helper()
	c, err := e.CA.Revoke(e.Ctx, serial, reason)
	if err != nil {
		e.T.Fatalf("testenv: revoking %x: %v", serial, err)
	}
	return c
}

// Cert reads a certificate record from the store.
func (e *Env) Cert(serial []byte) *store.Cert {
	e.T.Helper()
	var c *store.Cert
	if err := e.Store.View(e.Ctx, func(tx *store.Tx) error {
		var err error
		c, err = tx.Cert(serial)
		return err
	}); err != nil {
		e.T.Fatalf("testenv: reading certificate %x: %v", serial, err)
	}
	return c
}

// Counts reads the store's record counts.
func (e *Env) Counts() store.Counts {
	e.T.Helper()
	var n store.Counts
	if err := e.Store.View(e.Ctx, func(tx *store.Tx) error {
		var err error
		n, err = tx.Counts()
		return err
	}); err != nil {
		e.T.Fatalf("testenv: counting: %v", err)
	}
	return n
}

// Credential is a staff member's API client certificate.
type Credential struct {
	Staff *store.Staff
	Cert  *Cert
	TLS   tls.Certificate
}

// Staff enrols a staff member with role and one client certificate (profile
// cert-admin, as the server's enrolment issues), or adds a certificate to
// an existing member of that id.
func (e *Env) Staff(id, role string) *Credential {
	e.T.Helper()
	return e.StaffWith(id, role, IssueOptions{})
}

// StaffWith is Staff with the credential's issue options (its NotAfter);
// CN and Profile are set by it.
func (e *Env) StaffWith(id, role string, o IssueOptions) *Credential {
	e.T.Helper()
	o.CN, o.Profile = id, ca.ProfileCertAdmin
	c := e.Issue(o)
	var s *store.Staff
	err := e.Store.Update(e.Ctx, func(tx *store.Tx) error {
		s = &store.Staff{ID: id, Name: "Name of " + id, Role: role, CreatedAt: e.Clock.Now()}
		if err := tx.EachStaff(func(o *store.Staff) error {
			if o.ID == id {
				s = o
			}
			return nil
		}); err != nil {
			return err
		}
		s.CertSerials = append(s.CertSerials, c.Serial)
		return tx.PutStaff(s)
	})
	if err != nil {
		e.T.Fatalf("testenv: enrolling staff %s: %v", id, err)
	}
	return &Credential{Staff: s, Cert: c, TLS: e.TLSCert(c)}
}

// TLSCert is c as a TLS client certificate with its chain.
func (e *Env) TLSCert(c *Cert) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.DER, e.Issuer.Cert.Raw}, PrivateKey: c.Key, Leaf: c.X509}
}

// Roots is a pool holding the CA certificate.
func (e *Env) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(e.Issuer.Cert)
	return p
}

// TLSServer serves h over HTTPS on a loopback port, asking for client
// certificates and verifying any given against the CA, as the API listener
// does; the handler sees r.TLS.VerifiedChains. Closed at the end of the test.
func (e *Env) TLSServer(h http.Handler) *httptest.Server {
	e.T.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: e.Roots(), MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	e.T.Cleanup(srv.Close)
	return srv
}

// Client is an HTTPS client of srv presenting cred (none if nil).
func (e *Env) Client(srv *httptest.Server, cred *Credential) *http.Client {
	e.T.Helper()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cred != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{cred.TLS}
	}
	e.T.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
