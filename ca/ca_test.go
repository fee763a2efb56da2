package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

func newTestAuthority(t *testing.T, alg signer.Algorithm) (*Authority, *store.Store) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs, err := signer.NewFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := New(Options{Store: st, Signers: fs, PublicURL: "http://pki.example:8080", LDAPURL: "ldap://pki.example:1389"})
	if _, err := a.Init(context.Background(), InitOptions{Name: "demo", CommonName: "Test Root CA", Organization: "Test Org", Country: "CN", Algorithm: alg, Validity: 10 * year}); err != nil {
		t.Fatalf("Init(%s): %v", alg, err)
	}
	return a, st
}

func TestInitAlgorithms(t *testing.T) {
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.ECDSAP384, signer.RSA2048} {
		t.Run("ok/"+string(alg), func(t *testing.T) {
			a, st := newTestAuthority(t, alg)
			iss, _ := a.Issuer("demo")
			if got, _ := signer.AlgorithmOf(iss.Cert.PublicKey); got != alg {
				t.Errorf("CA key algorithm = %s", got)
			}
			if !iss.Cert.IsCA || iss.Cert.KeyUsage&x509.KeyUsageCertSign == 0 || iss.Cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
				t.Error("root is not a CA with certSign and cRLSign")
			}
			if err := iss.OCSPCert.CheckSignatureFrom(iss.Cert); err != nil {
				t.Errorf("OCSP cert not signed by the CA: %v", err)
			}
			if !hasEKU(iss.OCSPCert, x509.ExtKeyUsageOCSPSigning) || !hasExt(iss.OCSPCert, oidOCSPNoCheck) {
				t.Error("OCSP cert lacks id-kp-OCSPSigning or id-pkix-ocsp-nocheck")
			}
			// A second Authority over the same store and keys loads the same CA.
			b := New(Options{Store: st, Signers: a.opts.Signers})
			if err := b.Load(context.Background()); err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got, _ := b.Issuer("demo"); !got.Cert.Equal(iss.Cert) || !got.OCSPCert.Equal(iss.OCSPCert) {
				t.Error("reloaded CA differs")
			}
		})
	}
}

func hasEKU(c *x509.Certificate, eku x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == eku {
			return true
		}
	}
	return false
}

func hasExt(c *x509.Certificate, oid []int) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(oid) {
			return true
		}
	}
	return false
}

func csrFor(t *testing.T, key any, tmpl *x509.CertificateRequest) *x509.CertificateRequest {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

func TestIssueEveryProfile(t *testing.T) {
	a, _ := newTestAuthority(t, signer.ECDSAP256)
	ctx := context.Background()
	var events []Event
	var mu sync.Mutex
	a.Subscribe(func(_ context.Context, ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() })
	iss, _ := a.Issuer("demo")
	roots := x509.NewCertPool()
	roots.AddCert(iss.Cert)
	for _, name := range ProfileNames() {
		t.Run("ok/"+name, func(t *testing.T) {
			key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csr := csrFor(t, key, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "host.example"}, DNSNames: []string{"host.example"}})
			c, err := a.Issue(ctx, IssueRequest{Profile: name, CSR: csr, SubscriberID: "s1"})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(c.DER)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Serial) != 20 || cert.SerialNumber.Sign() <= 0 || len(cert.SerialNumber.Bytes()) != 20 {
				t.Errorf("serial %x is not 20 positive bytes", c.Serial)
			}
			if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Errorf("chain: %v", err)
			}
			if len(cert.OCSPServer) != 1 || cert.OCSPServer[0] != "http://pki.example:8080/ocsp" ||
				len(cert.IssuingCertificateURL) != 1 || cert.IssuingCertificateURL[0] != "http://pki.example:8080/ca/demo.crt" {
				t.Errorf("AIA = %v %v", cert.OCSPServer, cert.IssuingCertificateURL)
			}
			var http, ldap bool
			for _, u := range cert.CRLDistributionPoints {
				http = http || u == "http://pki.example:8080/crl/demo.crl"
				ldap = ldap || strings.HasPrefix(u, "ldap://pki.example:1389/cn=Test%20Root%20CA,o=Test%20Org,c=CN?certificateRevocationList;binary")
			}
			if !http || !ldap {
				t.Errorf("CRL DPs = %v", cert.CRLDistributionPoints)
			}
			if !equalBytes(cert.AuthorityKeyId, iss.Cert.SubjectKeyId) {
				t.Error("AKI does not match the CA's SKI")
			}
		})
	}
	if len(events) != len(ProfileNames()) || events[0].Kind != EventIssued {
		t.Errorf("events = %d, want %d issued", len(events), len(ProfileNames()))
	}
}

func equalBytes(a, b []byte) bool { return string(a) == string(b) }

func TestIssueRefusesBadInput(t *testing.T) {
	a, st := newTestAuthority(t, signer.ECDSAP256)
	ctx := context.Background()
	good, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	tamper := csrFor(t, good, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a"}})
	tamper.Signature[len(tamper.Signature)-1] ^= 0xff
	tests := []struct {
		name string
		req  IssueRequest
		want string
	}{
		{"fail/weak RSA", IssueRequest{Profile: ProfilePersonalSigning, CSR: csrFor(t, weak, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a"}})}, "RSA key of 1024 bits"},
		{"fail/P-224", IssueRequest{Profile: ProfilePersonalSigning, CSR: csrFor(t, p224, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "a"}})}, "P-224"},
		{"fail/bad CSR signature", IssueRequest{Profile: ProfilePersonalSigning, CSR: tamper}, "signature"},
		{"fail/unknown profile", IssueRequest{Profile: "nope", PublicKey: good.Public(), Subject: &pkix.Name{CommonName: "a"}}, "unknown profile"},
		{"fail/server without SAN", IssueRequest{Profile: ProfileServerTLS, PublicKey: good.Public(), Subject: &pkix.Name{CommonName: "a"}}, "DNS name"},
		{"fail/no subject", IssueRequest{Profile: ProfilePersonalSigning, PublicKey: good.Public()}, "common name"},
		{"fail/unknown CA", IssueRequest{CA: "other", Profile: ProfilePersonalSigning, PublicKey: good.Public(), Subject: &pkix.Name{CommonName: "a"}}, "unknown CA"},
	}
	var before store.Counts
	_ = st.View(ctx, func(tx *store.Tx) error { before, _ = tx.Counts(); return nil })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Issue(ctx, tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	var after store.Counts
	_ = st.View(ctx, func(tx *store.Tx) error { after, _ = tx.Counts(); return nil })
	if before != after {
		t.Errorf("refused requests changed the store: %+v → %+v", before, after)
	}
}

func TestRevoke(t *testing.T) {
	a, _ := newTestAuthority(t, signer.ECDSAP256)
	ctx := context.Background()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c, err := a.Issue(ctx, IssueRequest{Profile: ProfilePersonalSigning, PublicKey: key.Public(), Subject: &pkix.Name{CommonName: "u"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []Event
	a.Subscribe(func(_ context.Context, ev Event) { got = append(got, ev) })
	r, err := a.Revoke(ctx, c.Serial, ReasonKeyCompromise)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.StatusRevoked || r.Reason != 1 || r.RevokedAt.IsZero() {
		t.Errorf("revoked cert = %+v", r)
	}
	if len(got) != 1 || got[0].Kind != EventRevoked {
		t.Errorf("events = %+v", got)
	}
	if _, err := a.Revoke(ctx, c.Serial, ReasonSuperseded); !errors.Is(err, store.ErrAlreadyRevoked) {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := a.Revoke(ctx, []byte{1, 2, 3}, ReasonSuperseded); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown serial: %v", err)
	}
	if _, err := a.Revoke(ctx, c.Serial, ReasonRemoveFromCRL); !errors.Is(err, ErrBadRequest) {
		t.Errorf("removeFromCRL: %v", err)
	}
}

func TestParseReason(t *testing.T) {
	for in, want := range map[string]Reason{"keyCompromise": 1, "KEYCOMPROMISE": 1, "4": 4, "certificateHold": 6, "aACompromise": 10} {
		if got, err := ParseReason(in); err != nil || got != want {
			t.Errorf("ParseReason(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"removeFromCRL", "8", "7", "lost", "-1"} {
		if _, err := ParseReason(in); err == nil {
			t.Errorf("ParseReason(%q) accepted", in)
		}
	}
}

func TestRenewOCSPResponder(t *testing.T) {
	now := time.Now()
	a, _ := newTestAuthority(t, signer.ECDSAP256)
	a.now = func() time.Time { return now.Add(time.Hour) }
	old, _ := a.Issuer("demo")
	iss, err := a.RenewOCSPResponder(context.Background(), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if iss.OCSPCert.Equal(old.OCSPCert) || !iss.OCSPCert.NotAfter.After(old.OCSPCert.NotAfter) {
		t.Error("responder certificate not renewed")
	}
}

func FuzzParseCSR(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}, key)
	f.Add(der)
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		csr, err := ParseCSR(b)
		if err == nil && CheckCSR(csr) != nil {
			t.Fatal("ParseCSR accepted a CSR that CheckCSR refuses")
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("error %v is not ErrBadRequest", err)
		}
	})
}

func TestIssueRefusesPastNotAfter(t *testing.T) {
	a, _ := newTestAuthority(t, signer.ECDSAP256)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, err := a.Issue(context.Background(), IssueRequest{Profile: ProfilePersonalSigning, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: "late"}, NotAfter: time.Now().Add(-24 * time.Hour)})
	if !errors.Is(err, ErrBadRequest) {
		t.Fatalf("notAfter in the past: %v, want ErrBadRequest", err)
	}
	c, err := a.Issue(context.Background(), IssueRequest{Profile: ProfilePersonalSigning, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: "soon"}, NotAfter: time.Now().Add(36*time.Hour + 123456789)})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(c.DER)
	if !cert.NotAfter.Equal(c.NotAfter) {
		t.Errorf("stored notAfter %v differs from the certificate's %v", c.NotAfter, cert.NotAfter)
	}
}

func TestInitReusesKeyOfInterruptedInit(t *testing.T) {
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fs, _ := signer.NewFile(t.TempDir())
	// An init that crashed after generating the key but before storing the CA.
	if _, err := fs.Generate(context.Background(), "demo-ca", signer.ECDSAP256); err != nil {
		t.Fatal(err)
	}
	a := New(Options{Store: st, Signers: fs, PublicURL: "http://x", LDAPURL: "ldap://x"})
	if _, err := a.Init(context.Background(), InitOptions{Name: "demo", CommonName: "CA", Algorithm: signer.ECDSAP256, Validity: year}); err != nil {
		t.Fatalf("Init after an interrupted init: %v", err)
	}
	if _, err := New(Options{Store: st, Signers: fs}).Init(context.Background(), InitOptions{Name: "demo", CommonName: "CA", Algorithm: signer.ECDSAP256, Validity: year}); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("a second Init over a stored CA: %v", err)
	}
}

// A CA's entry DN is written with the one RFC 4514 escaper, which escapes
// NUL (a backslash before a raw NUL would leave the NUL in the DN).
func TestEntryDNEscapes(t *testing.T) {
	a := &Authority{opts: Options{Suffix: "o=certcenter,c=CN"}}
	for _, tc := range []struct{ cn, want string }{
		{"Demo CA", "cn=Demo CA,o=certcenter,c=CN"},
		{"a,b", `cn=a\,b,o=certcenter,c=CN`},
		{"a\x00b", `cn=a\00b,o=certcenter,c=CN`},
		{" lead", `cn=\ lead,o=certcenter,c=CN`},
	} {
		iss := &Issuer{Cert: &x509.Certificate{Subject: pkix.Name{CommonName: tc.cn}}}
		if got := a.EntryDN(iss); got != tc.want {
			t.Errorf("EntryDN(%q) = %q, want %q", tc.cn, got, tc.want)
		}
	}
}
