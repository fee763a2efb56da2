package publish

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

const (
	testSuffix = "o=test"
	testBase   = "ou=pki,o=test"
	testRootDN = "cn=admin,o=test"
	testRootPW = "secret"
)

// slapd is a throwaway OpenLDAP server: its own config and back-mdb
// database in a temp dir, on a loopback port that stays the same across
// stop and start (the way bench/ldap starts one).
type slapd struct {
	t    testing.TB
	dir  string
	addr string
	// tlsAddr is the ldaps:// listener ("" without TLS).
	tlsAddr string
	cmd     *exec.Cmd
}

func startSlapd(t testing.TB) *slapd { return startSlapdTLS(t, nil) }

// slapdTLS are the PEM files of a TLS slapd: it then also listens with
// ldaps:// and offers StartTLS on ldap://.
type slapdTLS struct{ cert, key string }

func startSlapdTLS(t testing.TB, tl *slapdTLS) *slapd {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/slapd"); err != nil {
		t.Fatalf("/usr/sbin/slapd missing (install the Debian package slapd): %v", err)
	}
	s := &slapd{t: t, dir: t.TempDir(), addr: freePort(t)}
	if err := os.MkdirAll(filepath.Join(s.dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	// core.schema carries RFC 4523's pkiUser, pkiCA, cRLDistributionPoint
	// and deltaCRL classes and the certificate and CRL attributes.
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
loglevel 0
database mdb
suffix "%[2]s"
rootdn "%[3]s"
rootpw %[4]s
directory %[1]s/db
maxsize 1073741824
index objectClass eq
index cn eq
`, s.dir, testSuffix, testRootDN, testRootPW)
	if tl != nil {
		s.tlsAddr = freePort(t)
		conf = fmt.Sprintf("TLSCertificateFile %s\nTLSCertificateKeyFile %s\n", tl.cert, tl.key) + conf
	}
	if err := os.WriteFile(filepath.Join(s.dir, "slapd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	t.Cleanup(s.stop)
	c := s.dial()
	defer c.Close()
	for _, a := range []*ldap.AddRequest{
		addReq(testSuffix, "organization", "o", "test"),
		addReq(testBase, "organizationalUnit", "ou", "pki"),
	} {
		if err := c.Add(a); err != nil {
			t.Fatalf("adding %s: %v", a.DN, err)
		}
	}
	return s
}

func addReq(dn, class, attr, val string) *ldap.AddRequest {
	a := ldap.NewAddRequest(dn, nil)
	a.Attribute("objectClass", []string{class})
	a.Attribute(attr, []string{val})
	return a
}

func freePort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (s *slapd) url() string { return "ldap://" + s.addr }

func (s *slapd) start() {
	s.t.Helper()
	listen := s.url() + "/"
	if s.tlsAddr != "" {
		listen += " ldaps://" + s.tlsAddr + "/"
	}
	s.cmd = exec.Command("/usr/sbin/slapd", "-d", "0", "-f", filepath.Join(s.dir, "slapd.conf"), "-h", listen)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("starting slapd: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := ldap.DialURL(s.url()); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("slapd on %s did not answer", s.addr)
}

// stop ends slapd (SIGTERM, so back-mdb closes cleanly) and waits for it.
func (s *slapd) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *slapd) dial() *ldap.Conn {
	s.t.Helper()
	c, err := ldap.DialURL(s.url())
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Bind(testRootDN, testRootPW); err != nil {
		c.Close()
		s.t.Fatal(err)
	}
	return c
}

// values reads one attribute of one entry (nil if the entry is missing).
func (s *slapd) values(dn, attr string) [][]byte {
	s.t.Helper()
	c := s.dial()
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{attr}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	if len(res.Entries) == 0 {
		return nil
	}
	return res.Entries[0].GetRawAttributeValues(attr)
}

func ldapNewReplace(dn, attr string, v []byte) *ldap.ModifyRequest {
	m := ldap.NewModifyRequest(dn, nil)
	m.Replace(attr, []string{string(v)})
	return m
}
