package server

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/bootstrap"
)

func serverCert(t *testing.T, dataDir string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, bootstrap.TLSDir, "server.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("server.crt holds no PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sans is the certificate's DNS names and IP addresses as strings.
func sans(c *x509.Certificate) []string {
	s := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		s = append(s, ip.String())
	}
	return s
}

// TestLDAPSCertificateNames: OpenLDAP's client checks the server's name
// even for ldaps://localhost (it may check the machine's own name there), so
// the default server certificate carries the host name, the loopback names,
// api.hosts and the hosts of the configured URLs; a data directory whose
// certificate lacks a name configured since gets a new one at start.
func TestLDAPSCertificateNames(t *testing.T) {
	if _, err := exec.LookPath("ldapsearch"); err != nil {
		t.Fatal("ldapsearch not found: install the Debian package ldap-utils")
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.LDAP.LDAPSAddr = "127.0.0.1:0"
	cfg.CA.LDAPURL = "ldap://ldap.example.test:1389"
	s := startTest(t, cfg)
	got := sans(serverCert(t, cfg.DataDir))
	for _, want := range []string{strings.ToLower(host), "localhost", "127.0.0.1", "::1", "ldap.example.test"} {
		if !slices.Contains(got, want) {
			t.Errorf("server certificate names %q lack %q", got, want)
		}
	}
	_, port, _ := net.SplitHostPort(s.Addr("ldaps"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ldapsearch", "-x", "-LLL", "-o", "nettimeout=10", "-H", "ldaps://localhost:"+port, "-b", "", "-s", "base", "namingContexts")
	// the CA, and nothing that would relax the name check
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LDAPTLS_CACERT=" + filepath.Join(cfg.DataDir, bootstrap.CACert), "LDAPRC=/dev/null", "LDAPCONF=/dev/null"}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "namingContexts:") {
		t.Errorf("ldapsearch -H ldaps://localhost:%s: %v: %s", port, err, out)
	}
	first := serverCert(t, cfg.DataDir)
	s.Stop(context.Background())

	// a name configured since: the certificate is issued again at start
	cfg.API.Hosts = append(cfg.API.Hosts, "directory.example.test")
	startTest(t, cfg)
	second := serverCert(t, cfg.DataDir)
	if !slices.Contains(sans(second), "directory.example.test") || second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Errorf("after adding a name: serial %x (was %x), names %q", second.SerialNumber, first.SerialNumber, sans(second))
	}
}
