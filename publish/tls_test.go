package publish

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/internal/slapd"
)

// testCA writes a CA certificate (ca.pem) and, if leaf, a server
// certificate for 127.0.0.1 it signed (server.pem, server.key) into dir.
func testCA(t *testing.T, dir, name string, leaf bool) (caFile string, tl *slapd.TLS) {
	t.Helper()
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = write(name+"-ca.pem", "CERTIFICATE", caDER)
	if !leaf {
		return caFile, nil
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return caFile, &slapd.TLS{CertFile: write(name+"-server.pem", "CERTIFICATE", der), KeyFile: write(name+"-server.key", "PRIVATE KEY", p8)}
}

// Delivery works over ldaps:// and over StartTLS with the target's
// ca_file; a ca_file that does not verify the server fails with the TLS
// error in the target state (and delivers nothing).
func TestTLSTargets(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	dir := t.TempDir()
	caFile, tl := testCA(t, dir, "good", true)
	wrongCA, _ := testCA(t, dir, "wrong", false)
	ldapd := startSlapdTLS(t, tl)

	ldaps := target("ldaps", "ldaps://"+ldapd.tlsAddr)
	ldaps.CAFile = caFile
	startTLS := target("starttls", ldapd.url())
	startTLS.StartTLS, startTLS.CAFile = true, caFile
	wrong := target("wrong-ca", "ldaps://"+ldapd.tlsAddr)
	wrong.CAFile = wrongCA
	wrongStartTLS := target("wrong-ca-starttls", ldapd.url())
	wrongStartTLS.StartTLS, wrongStartTLS.CAFile = true, wrongCA

	e := newEnv(t, t.TempDir(), ldaps, startTLS, wrong, wrongStartTLS)
	c := e.issue("tls", "Hospital T")
	eventually(t, "delivered over TLS", func() bool {
		if has(ldapd.values(subDN("tls", "Hospital T"), "userCertificate;binary"), c.DER) != 1 {
			return false
		}
		all, err := e.pub.CertStatuses(t.Context(), [][]byte{c.Serial})
		if err != nil {
			return false
		}
		for _, s := range all[0] {
			if (s.Target == "ldaps" || s.Target == "starttls") && s.State != "published" {
				return false
			}
		}
		return true
	})
	for _, n := range []string{"ldaps", "starttls"} {
		if s := e.state(n); !s.Connected || s.LastError != "" {
			t.Errorf("%s: %+v", n, s)
		}
	}
	for _, n := range []string{"wrong-ca", "wrong-ca-starttls"} {
		eventually(t, n+" fails with the TLS error", func() bool {
			le := e.state(n).LastError
			return strings.Contains(le, "certificate signed by unknown authority") && strings.Contains(le, "does not verify against ca_file "+wrongCA)
		})
		s := e.state(n)
		if s.Connected || s.Initialised || s.Delivered != 0 {
			t.Errorf("%s: %+v", n, s)
		}
		t.Logf("%s: %s", n, s.LastError)
	}
	if !strings.Contains(e.state("wrong-ca-starttls").LastError, "StartTLS") {
		t.Errorf("StartTLS failure does not say so: %s", e.state("wrong-ca-starttls").LastError)
	}
}
