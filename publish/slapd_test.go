package publish

import (
	"context"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/internal/slapd"
	"github.com/certcenter/certcenter/internal/slapd/slapdtest"
)

const (
	testSuffix = "o=test"
	testBase   = "ou=pki,o=test"
	testRootDN = "cn=admin,o=test"
	testRootPW = "secret"
)

// ldapServer is a throwaway OpenLDAP slapd (internal/slapd) holding
// testBase, on loopback ports that stay the same across stop and start.
type ldapServer struct {
	t testing.TB
	*slapd.Server
	// tlsAddr is the ldaps:// listener ("" without TLS).
	tlsAddr string
}

func startSlapd(t testing.TB) *ldapServer { return startSlapdTLS(t, nil) }

// startSlapdTLS with tl also listens with ldaps:// and offers StartTLS on
// ldap://.
func startSlapdTLS(t testing.TB, tl *slapd.TLS) *ldapServer {
	t.Helper()
	s := slapdtest.Start(t, slapdtest.Options{Suffix: testSuffix, RootDN: testRootDN, RootPW: testRootPW, TLS: tl,
		Entries: []slapd.Entry{
			{DN: testSuffix, Attrs: map[string][]string{"objectClass": {"organization"}, "o": {"test"}}},
			{DN: testBase, Attrs: map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"pki"}}},
		}})
	return &ldapServer{t: t, Server: s, tlsAddr: s.Addr("ldaps")}
}

func addReq(dn, class, attr, val string) *ldap.AddRequest {
	a := ldap.NewAddRequest(dn, nil)
	a.Attribute("objectClass", []string{class})
	a.Attribute(attr, []string{val})
	return a
}

func freePort(t testing.TB) string {
	a, err := slapd.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (s *ldapServer) url() string { return s.URL() }

func (s *ldapServer) start() {
	s.t.Helper()
	if err := s.Start(context.Background()); err != nil {
		s.t.Fatal(err)
	}
}

func (s *ldapServer) stop() { s.Stop() }

func (s *ldapServer) dial() *ldap.Conn {
	s.t.Helper()
	c, err := s.Dial()
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// values reads one attribute of one entry (nil if the entry is missing).
func (s *ldapServer) values(dn, attr string) [][]byte {
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
