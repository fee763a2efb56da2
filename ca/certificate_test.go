package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	mathrand "math/rand/v2"
	"net"
	"testing"
	"time"
)

func testIssuer(t testing.TB, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA", Organization: []string{"certcenter"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(100 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId: []byte{1, 2, 3, 4},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// leafOf is createLeaf with the subject key encoded as sign encodes it.
func leafOf(tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) ([]byte, error) {
	spki, err := marshalPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return createLeaf(rand.Reader, tmpl, parent, pub, spki, key)
}

// TestCreateLeafMatchesX509 holds createLeaf to crypto/x509's encoding: the
// to-be-signed part of every certificate is the same bytes either way.
func TestCreateLeafMatchesX509(t *testing.T) {
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	subjectKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	subjectRSA, _ := rsa.GenerateKey(rand.Reader, 2048)
	fresh, err := freshestCRL("http://crl.example/delta.crl", "ldap://ldap.example/cn=x?deltaRevocationList;binary")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	base := func() *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: new(big.Int).SetBytes([]byte{0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19}),
			Subject:      pkix.Name{CommonName: "seed-0000001", Organization: []string{"Org"}, OrganizationalUnit: []string{"unit-01"}},
			NotBefore:    now.Add(-time.Minute), NotAfter: now.Add(2 * year),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageEmailProtection},
			BasicConstraintsValid: true,
			SubjectKeyId:          []byte{9, 9, 9},
			OCSPServer:            []string{"http://ocsp.example"},
			IssuingCertificateURL: []string{"http://ca.example/ca.crt"},
			CRLDistributionPoints: []string{"http://crl.example/full.crl", "ldap://ldap.example/cn=x?certificateRevocationList;binary"},
			ExtraExtensions:       []pkix.Extension{fresh},
		}
	}
	variants := map[string]func(*x509.Certificate){
		"personal": func(*x509.Certificate) {},
		"email":    func(c *x509.Certificate) { c.EmailAddresses = []string{"a@example.org", "b@example.org"} },
		"server-tls": func(c *x509.Certificate) {
			c.DNSNames = []string{"a.example", "b.example"}
			c.IPAddresses = []net.IP{net.ParseIP("192.0.2.1"), net.ParseIP("2001:db8::1")}
		},
		"empty subject": func(c *x509.Certificate) {
			c.Subject = pkix.Name{}
			c.DNSNames = []string{"only.example"}
		},
		"utf8 subject": func(c *x509.Certificate) {
			c.Subject = pkix.Name{CommonName: "张三", Organization: []string{"某市人民医院"}, Country: []string{"CN"}}
		},
		"raw subject": func(c *x509.Certificate) {
			c.RawSubject, _ = asn1.Marshal(pkix.Name{CommonName: "raw"}.ToRDNSequence())
		},
		"after 2049":    func(c *x509.Certificate) { c.NotAfter = time.Date(2051, 3, 4, 5, 6, 7, 0, time.UTC) },
		"key agreement": func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement; c.ExtKeyUsage = c.ExtKeyUsage[1:] },
		"decipher only": func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyAgreement | x509.KeyUsageDecipherOnly },
		"ocsp nocheck": func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidOCSPNoCheck, Value: asn1.NullBytes})
		},
		"own key usage": func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: []byte{3, 2, 7, 0x80}})
		},
		"path len -1": func(c *x509.Certificate) { c.MaxPathLen = -1 },
		"no extensions": func(c *x509.Certificate) {
			*c = x509.Certificate{SerialNumber: big.NewInt(5), Subject: c.Subject, NotBefore: c.NotBefore, NotAfter: c.NotAfter}
		},
		"rsa subject":  func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment },
		"small serial": func(c *x509.Certificate) { c.SerialNumber = big.NewInt(0x80) },
	}
	for _, issuerKey := range []crypto.Signer{p256, p384, rsaKey} {
		parent := testIssuer(t, issuerKey)
		for name, change := range variants {
			tmpl := base()
			change(tmpl)
			var pub crypto.PublicKey = subjectKey.Public()
			if name == "rsa subject" {
				pub = subjectRSA.Public()
			}
			ours, err := leafOf(tmpl, parent, pub, issuerKey)
			if err != nil {
				t.Fatalf("%T %s: %v", issuerKey, name, err)
			}
			theirs, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, issuerKey)
			if err != nil {
				t.Fatalf("%T %s: x509: %v", issuerKey, name, err)
			}
			a, err := x509.ParseCertificate(ours)
			if err != nil {
				t.Fatalf("%T %s: parsing ours: %v", issuerKey, name, err)
			}
			b, _ := x509.ParseCertificate(theirs)
			if !bytes.Equal(a.RawTBSCertificate, b.RawTBSCertificate) {
				t.Errorf("%T %s: to-be-signed bytes differ\nours   %x\ntheirs %x", issuerKey, name, a.RawTBSCertificate, b.RawTBSCertificate)
			}
			if a.SignatureAlgorithm != b.SignatureAlgorithm {
				t.Errorf("%T %s: signature algorithm %v, x509 %v", issuerKey, name, a.SignatureAlgorithm, b.SignatureAlgorithm)
			}
			if err := a.CheckSignatureFrom(parent); err != nil {
				t.Errorf("%T %s: %v", issuerKey, name, err)
			}
			if len(ours) != len(theirs) && a.SignatureAlgorithm == x509.SHA256WithRSA {
				t.Errorf("%T %s: %d bytes, x509 %d", issuerKey, name, len(ours), len(theirs))
			}
		}
	}
}

// tokenSigner stands for a signer outside the process (a PKCS#11 token):
// createLeaf checks what it returns.
type tokenSigner struct {
	crypto.Signer
	corrupt bool
}

func (s tokenSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.Signer.Sign(r, digest, opts)
	if s.corrupt {
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		sig, err = other.Sign(r, digest, opts)
	}
	return sig, err
}

func TestCreateLeafChecksTokenSignatures(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parent := testIssuer(t, key)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	if _, err := leafOf(tmpl, parent, key.Public(), tokenSigner{Signer: key}); err != nil {
		t.Fatalf("a token's good signature: %v", err)
	}
	if _, err := leafOf(tmpl, parent, key.Public(), tokenSigner{Signer: key, corrupt: true}); err == nil {
		t.Fatal("a token's bad signature was accepted")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := leafOf(tmpl, parent, key.Public(), other); err == nil {
		t.Fatal("a signer whose key is not the issuer's was accepted")
	}
	tmpl.DNSNames = []string{"bücher.example"}
	if _, err := leafOf(tmpl, parent, key.Public(), key); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("a DNS name that is not IA5: %v, want ErrBadRequest", err)
	}
}

func BenchmarkCreateLeaf(b *testing.B) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parent := testIssuer(b, key)
	sub, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "x"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, OCSPServer: []string{"http://ocsp.example"}}
	for _, bc := range []struct {
		name   string
		create func() ([]byte, error)
	}{
		{"createLeaf", func() ([]byte, error) { return leafOf(tmpl, parent, sub.Public(), key) }},
		{"x509", func() ([]byte, error) { return x509.CreateCertificate(rand.Reader, tmpl, parent, sub.Public(), key) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bc.create(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCreateLeafMatchesX509Random draws templates of the kinds sign makes,
// with every key-usage bit pattern, extended key usages, SAN lists and
// dates crypto/x509 encodes either way, and holds createLeaf to its bytes.
func TestCreateLeafMatchesX509Random(t *testing.T) {
	issuerKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	parent := testIssuer(t, issuerKey)
	subjectKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rng := mathrand.New(mathrand.NewPCG(1, 2))
	ekus := []x509.ExtKeyUsage{x509.ExtKeyUsageAny, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth,
		x509.ExtKeyUsageCodeSigning, x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageTimeStamping, x509.ExtKeyUsageOCSPSigning}
	words := []string{"a", "Zhang San", "张三", "O'Brien", "x,y+z", "  padded ", "#hash", "医院", "ütf"}
	pick := func(n int) []string {
		var out []string
		for range rng.IntN(n) {
			out = append(out, words[rng.IntN(len(words))])
		}
		return out
	}
	compared := 0
	for i := range 300 {
		serial := make([]byte, 1+rng.IntN(20))
		for j := range serial {
			serial[j] = byte(rng.Uint32())
		}
		serial[0] = serial[0]&0x7f | 1
		notBefore := time.Date(1950+rng.IntN(150), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), 0, time.UTC)
		tmpl := &x509.Certificate{
			SerialNumber: new(big.Int).SetBytes(serial),
			Subject: pkix.Name{CommonName: words[rng.IntN(len(words))], Organization: pick(3), OrganizationalUnit: pick(3),
				Country: []string{"CN", "DE"}[:rng.IntN(3)], Province: pick(2), Locality: pick(2)},
			NotBefore:             notBefore,
			NotAfter:              notBefore.Add(time.Duration(rng.IntN(100*365*24)) * time.Hour),
			KeyUsage:              x509.KeyUsage(rng.IntN(1 << 9)),
			BasicConstraintsValid: rng.IntN(2) == 0,
		}
		for _, u := range ekus {
			if rng.IntN(3) == 0 {
				tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, u)
			}
		}
		for range rng.IntN(3) {
			tmpl.DNSNames = append(tmpl.DNSNames, fmt.Sprintf("h%d.example", rng.IntN(1000)))
		}
		for range rng.IntN(3) {
			tmpl.EmailAddresses = append(tmpl.EmailAddresses, fmt.Sprintf("u%d@example.org", rng.IntN(1000)))
		}
		for range rng.IntN(3) {
			ip := make(net.IP, []int{4, 16}[rng.IntN(2)])
			for j := range ip {
				ip[j] = byte(rng.Uint32())
			}
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		}
		if rng.IntN(2) == 0 {
			tmpl.SubjectKeyId = []byte{byte(i), 1, 2}
		}
		if rng.IntN(2) == 0 {
			tmpl.OCSPServer = []string{"http://ocsp.example/" + fmt.Sprint(i)}
		}
		if rng.IntN(2) == 0 {
			tmpl.IssuingCertificateURL = []string{"http://ca.example/ca.crt"}
		}
		for range rng.IntN(3) {
			tmpl.CRLDistributionPoints = append(tmpl.CRLDistributionPoints, fmt.Sprintf("http://crl.example/%d.crl", rng.IntN(9)))
		}
		if rng.IntN(4) == 0 {
			tmpl.ExtraExtensions = []pkix.Extension{{Id: oidOCSPNoCheck, Value: asn1.NullBytes}}
		}
		ours, err := leafOf(tmpl, parent, subjectKey.Public(), issuerKey)
		theirs, xerr := x509.CreateCertificate(rand.Reader, tmpl, parent, subjectKey.Public(), issuerKey)
		if (err == nil) != (xerr == nil) {
			t.Fatalf("template %d: createLeaf error %v, x509 error %v", i, err, xerr)
		}
		if err != nil {
			continue
		}
		a, err := x509.ParseCertificate(ours)
		if err != nil {
			t.Fatalf("template %d: parsing ours: %v", i, err)
		}
		b, _ := x509.ParseCertificate(theirs)
		if !bytes.Equal(a.RawTBSCertificate, b.RawTBSCertificate) {
			t.Fatalf("template %d: to-be-signed bytes differ\nours   %x\ntheirs %x", i, a.RawTBSCertificate, b.RawTBSCertificate)
		}
		compared++
	}
	if compared < 250 {
		t.Errorf("only %d of 300 templates were encodable by both", compared)
	}
}
