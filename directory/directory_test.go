package directory

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

const suffix = "o=certcenter,c=CN"

// env is a running directory over a real Badger store and CA.
type env struct {
	st      *store.Store
	auth    *ca.Authority
	d       *Directory
	ldap    string // host:port of ldap://
	ldaps   string
	caFile  string // PEM of the TLS server certificate's issuer
	tlsConf *tls.Config
}

func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install the Debian package %s", name, pkg)
	}
}

// newEnv starts a directory with n seeded subscribers; mod adjusts the
// config, opts (if any) the directory's options.
func newEnv(t *testing.T, n int, mod func(*config.LDAP), opts ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signers, err := signer.NewFile(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	boot := ca.New(ca.Options{Store: st, Signers: signers, PublicURL: "http://127.0.0.1:1", LDAPURL: "ldap://127.0.0.1:1"})
	if _, err := boot.Init(ctx, ca.InitOptions{Name: "demo", CommonName: "certcenter Demo Root CA", Organization: "certcenter",
		Country: "CN", Algorithm: signer.ECDSAP256, Validity: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default().LDAP
	cfg.BindFailuresBurst = 1000 // every test binds from 127.0.0.1; TestFailedBindsSlowed sets its own
	if mod != nil {
		mod(&cfg)
	}
	tlsConf, caFile := testTLS(t)
	o := Options{Store: st, CA: boot, Config: cfg, Registerer: prometheus.NewRegistry(), TLS: tlsConf, VendorVersion: "test"}
	for _, f := range opts {
		f(&o)
	}
	d, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the listeners close before Stop.
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
	})
	l1 := listen(t, d, "ldap", false)
	l2 := listen(t, d, "ldaps", true)
	e := &env{st: st, d: d, ldap: l1.Addr().String(), ldaps: l2.Addr().String(), caFile: caFile, tlsConf: tlsConf}
	// issue through an authority that knows the directory's real address,
	// so the ldap:// CRL URL in the certificates points at this server
	e.auth = ca.New(ca.Options{Store: st, Signers: signers, PublicURL: "http://127.0.0.1:1", LDAPURL: "ldap://" + e.ldap})
	if err := e.auth.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		if _, err := seed.Run(ctx, st, e.auth, seed.Options{Count: n, BatchSize: 1000}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// testTLS makes a self-signed server certificate for 127.0.0.1.
func testTLS(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, f
}

// ldapsearch runs the OpenLDAP client and returns its LDIF output.
func (e *env) ldapsearch(t *testing.T, args ...string) (string, int) {
	t.Helper()
	requireTool(t, "ldapsearch", "ldap-utils")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ldapsearch", append([]string{"-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10"}, args...)...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+e.caFile, "LDAPRC=/dev/null", "LDAPCONF=/dev/null")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

func dns(out string) []string {
	var r []string
	for _, l := range strings.Split(out, "\n") {
		if d, ok := strings.CutPrefix(l, "dn:"); ok {
			r = append(r, strings.TrimSpace(d))
		}
	}
	return r
}

func (e *env) dial(t *testing.T) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL("ldap://" + e.ldap)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func sub(n int) string { return fmt.Sprintf("cn=%s,ou=unit-%02d,%s", seed.Name(n), n%16, suffix) }

func TestFilters(t *testing.T) {
	// serialNumber published, to test its matching
	e := newEnv(t, 40, func(l *config.LDAP) { l.HiddenAttributes, l.PublicAttributes = nil, nil })
	// serial and issuer of seed-0000005's certificate, for certificateExactMatch
	var serial *big.Int
	_ = e.st.View(context.Background(), func(tx *store.Tx) error {
		return tx.CertsBySubscriber(seed.Name(5), func(c *store.Cert) error { serial = new(big.Int).SetBytes(c.Serial); return nil })
	})
	tests := []struct {
		name, filter string
		want         []string
	}{
		{"ok/equality cn", "(cn=seed-0000003)", []string{sub(3)}},
		{"ok/equality case-insensitive", "(CN=SEED-0000003)", []string{sub(3)}},
		{"ok/equality uid", "(uid=seed-0000004)", []string{sub(4)}},
		{"ok/equality mail", "(mail=Seed-0000006@SEED.example)", []string{sub(6)}},
		{"ok/equality serialNumber", "(serialNumber=ID0000000007)", []string{sub(7)}},
		{"ok/substrings", "(cn=seed-000001*)", []string{sub(10), sub(11), sub(12), sub(13), sub(14), sub(15), sub(16), sub(17), sub(18), sub(19)}},
		{"ok/substrings any final", "(mail=*00003*example)", []string{sub(3), sub(30), sub(31), sub(32), sub(33), sub(34), sub(35), sub(36), sub(37), sub(38), sub(39)}},
		{"ok/greater or equal", "(&(objectClass=inetOrgPerson)(cn>=seed-0000038))", []string{sub(38), sub(39)}},
		{"ok/less or equal", "(&(objectClass=inetOrgPerson)(cn<=seed-0000001))", []string{sub(0), sub(1)}},
		{"ok/present", "(&(ou=unit-02)(userCertificate=*))", []string{sub(2), sub(18), sub(34)}},
		{"ok/approx", "(cn~=seed 0000009)", []string{sub(9)}},
		{"ok/or", "(|(cn=seed-0000001)(uid=seed-0000002))", []string{sub(1), sub(2)}},
		{"ok/not", "(&(ou=unit-03)(!(cn=seed-0000003))(objectClass=pkiUser))", []string{sub(19), sub(35)}},
		{"ok/extensible caseExactMatch", "(cn:caseExactMatch:=seed-0000020)", []string{sub(20)}},
		{"ok/extensible dn attributes", "(&(objectClass=organizationalUnit)(ou:dn:=unit-05))", []string{"ou=unit-05," + suffix}},
		{"ok/certificateExactMatch", fmt.Sprintf("(userCertificate:certificateExactMatch:={ serialNumber %s, issuer rdnSequence:\"CN=certcenter Demo Root CA,O=certcenter,C=CN\" })", serial), []string{sub(5)}},
		{"ok/certificateExactMatch short form", fmt.Sprintf("(userCertificate=%s$cn=certcenter Demo Root CA,o=certcenter,c=CN)", serial), []string{sub(5)}},
		{"ok/certificateExactMatch wrong issuer", fmt.Sprintf("(userCertificate=%s$cn=Other CA)", serial), nil},
		{"ok/CA entry", "(objectClass=pkiCA)", []string{"cn=certcenter Demo Root CA," + suffix}},
		{"ok/unknown attribute is undefined", "(nosuchattr=1)", nil},
		{"ok/not of undefined stays undefined", "(&(cn=seed-0000001)(!(nosuchattr=1)))", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := e.ldapsearch(t, "-H", "ldap://"+e.ldap, "-b", suffix, tc.filter, "1.1")
			if code != 0 {
				t.Fatalf("ldapsearch exit %d: %s", code, out)
			}
			got := dns(out)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestScopesAndAttributes(t *testing.T) {
	e := newEnv(t, 20, nil)
	c := e.dial(t)
	search := func(base string, scope int, filter string, attrs ...string) *ldap.SearchResult {
		t.Helper()
		r, err := c.Search(ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, nil))
		if err != nil {
			t.Fatalf("search %s: %v", base, err)
		}
		return r
	}
	if r := search(sub(3), ldap.ScopeBaseObject, "(objectClass=*)"); len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("uid") != seed.Name(3) {
		t.Fatalf("base read: %+v", r.Entries)
	}
	if r := search("ou=unit-03,"+suffix, ldap.ScopeSingleLevel, "(objectClass=*)", "1.1"); len(r.Entries) != 2 {
		t.Errorf("one level under ou=unit-03: %d entries, want 2", len(r.Entries))
	}
	if r := search(suffix, ldap.ScopeWholeSubtree, "(objectClass=*)", "1.1"); len(r.Entries) != 1+1+16+20 {
		t.Errorf("subtree: %d entries, want 38", len(r.Entries))
	}
	// ;binary answered under exactly the name asked for
	r := search(sub(3), ldap.ScopeBaseObject, "(objectClass=*)", "userCertificate", "USERCERTIFICATE;BINARY")
	names := map[string]int{}
	for _, a := range r.Entries[0].Attributes {
		names[a.Name] = len(a.ByteValues)
	}
	if names["userCertificate"] != 1 || names["USERCERTIFICATE;BINARY"] != 1 || len(names) != 2 {
		t.Errorf("attributes %v, want userCertificate and USERCERTIFICATE;BINARY", names)
	}
	r = search(sub(3), ldap.ScopeBaseObject, "(objectClass=*)")
	if v := r.Entries[0].GetRawAttributeValues("userCertificate;binary"); len(v) != 1 {
		t.Errorf("* must return userCertificate;binary")
	} else if _, err := x509.ParseCertificate(v[0]); err != nil {
		t.Errorf("certificate does not parse: %v", err)
	}
	if r.Entries[0].GetAttributeValue("entryDN") != "" {
		t.Errorf("* returned an operational attribute")
	}
	r = search(sub(3), ldap.ScopeBaseObject, "(objectClass=*)", "+")
	if r.Entries[0].GetAttributeValue("entryDN") != sub(3) || r.Entries[0].GetAttributeValue("cn") != "" {
		t.Errorf("+ must return only operational attributes: %v", r.Entries[0].Attributes)
	}
	r = search(sub(3), ldap.ScopeBaseObject, "(objectClass=*)", "1.1")
	if len(r.Entries[0].Attributes) != 0 {
		t.Errorf("1.1 returned attributes")
	}
	r2, err := c.Search(ldap.NewSearchRequest(sub(3), ldap.ScopeBaseObject, 0, 0, 0, true, "(objectClass=*)", []string{"cn"}, nil))
	if err != nil || len(r2.Entries[0].Attributes) != 1 || len(r2.Entries[0].Attributes[0].Values) != 0 {
		t.Errorf("typesOnly: %v %v", err, r2.Entries)
	}
	// rootDSE and subschema
	r = search("", ldap.ScopeBaseObject, "(objectClass=*)", "namingContexts", "supportedControl", "subschemaSubentry", "vendorName")
	if r.Entries[0].GetAttributeValue("namingContexts") != suffix || r.Entries[0].GetAttributeValue("subschemaSubentry") != subschemaDN {
		t.Errorf("rootDSE: %v", r.Entries[0].Attributes)
	}
	r = search(subschemaDN, ldap.ScopeBaseObject, "(objectClass=subschema)", "attributeTypes", "objectClasses")
	ats := strings.Join(r.Entries[0].GetAttributeValues("attributeTypes"), "\n")
	ocs := strings.Join(r.Entries[0].GetAttributeValues("objectClasses"), "\n")
	for _, want := range []string{"'userCertificate'", "'certificateRevocationList'", "'deltaRevocationList'", "'mail'"} {
		if !strings.Contains(ats, want) {
			t.Errorf("subschema lacks attribute %s", want)
		}
	}
	for _, want := range []string{"'inetOrgPerson'", "'pkiUser'", "'pkiCA'", "'cRLDistributionPoint'"} {
		if !strings.Contains(ocs, want) {
			t.Errorf("subschema lacks object class %s", want)
		}
	}
	// missing entry: noSuchObject with the matched DN
	_, err = c.Search(ldap.NewSearchRequest("cn=nobody,ou=unit-01,"+suffix, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) || !strings.Contains(err.Error(), "") {
		t.Errorf("missing entry: %v", err)
	}
}

func TestPagingAndLimits(t *testing.T) {
	e := newEnv(t, 10000, func(l *config.LDAP) { l.SizeLimit = 1000 })
	c := e.dial(t)
	r, err := c.SearchWithPaging(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false,
		"(objectClass=inetOrgPerson)", []string{"uid"}, nil), 500)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, en := range r.Entries {
		seen[en.DN] = true
	}
	if len(r.Entries) != 10000 || len(seen) != 10000 {
		t.Errorf("paged search returned %d entries (%d distinct), want 10000", len(r.Entries), len(seen))
	}
	// without paging the server's size limit applies
	_, err = c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"1.1"}, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Errorf("unpaged search of 10000: %v, want sizeLimitExceeded", err)
	}
	// and the client's
	out, code := e.ldapsearch(t, "-H", "ldap://"+e.ldap, "-b", suffix, "-z", "3", "(uid=seed-00000*)", "1.1")
	if code != 4 || len(dns(out)) != 3 {
		t.Errorf("ldapsearch -z 3: exit %d, %d entries: %s", code, len(dns(out)), out)
	}
	out, code = e.ldapsearch(t, "-H", "ldap://"+e.ldap, "-b", suffix, "-E", "pr=2000/noprompt", "(objectClass=pkiUser)", "1.1")
	if code != 0 || len(dns(out)) != 10000 {
		t.Errorf("ldapsearch paged: exit %d, %d entries", code, len(dns(out)))
	}
}

func TestTLSAndBind(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	e := newEnv(t, 5, func(l *config.LDAP) {
		l.AnonymousRead = false
		l.Accounts = []config.LDAPAccount{{DN: "cn=his,ou=services," + suffix, PasswordHash: string(hash)}}
	})
	base := []string{"-b", suffix, "(uid=seed-0000001)", "1.1"}
	tests := []struct {
		name string
		args []string
		code int
		n    int
	}{
		{"fail/anonymous read off", append([]string{"-H", "ldap://" + e.ldap}, base...), 50, 0},
		{"ok/rootDSE stays readable", []string{"-H", "ldap://" + e.ldap, "-b", "", "-s", "base", "namingContexts"}, 0, 1},
		{"fail/cleartext bind refused", append([]string{"-H", "ldap://" + e.ldap, "-D", "cn=his,ou=services," + suffix, "-w", "s3cret"}, base...), 13, 0},
		{"ok/StartTLS bind", append([]string{"-ZZ", "-H", "ldap://" + e.ldap, "-D", "cn=his,ou=services," + suffix, "-w", "s3cret"}, base...), 0, 1},
		{"ok/LDAPS bind", append([]string{"-H", "ldaps://" + e.ldaps, "-D", "cn=his,ou=services," + suffix, "-w", "s3cret"}, base...), 0, 1},
		{"fail/wrong password", append([]string{"-H", "ldaps://" + e.ldaps, "-D", "cn=his,ou=services," + suffix, "-w", "nope"}, base...), 49, 0},
		{"fail/anonymous bind off over LDAPS", append([]string{"-H", "ldaps://" + e.ldaps}, base...), 50, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := e.ldapsearch(t, tc.args...)
			if code != tc.code || len(dns(out)) != tc.n {
				t.Errorf("exit %d with %d entries, want %d with %d: %s", code, len(dns(out)), tc.code, tc.n, out)
			}
		})
	}
}

func TestUnroutedOperations(t *testing.T) {
	e := newEnv(t, 3, nil)
	c := e.dial(t)
	ok, err := c.Compare(sub(1), "mail", "SEED-0000001@seed.example")
	if err != nil || !ok {
		t.Errorf("compare true: %v %v", ok, err)
	}
	ok, err = c.Compare(sub(1), "mail", "other@seed.example")
	if err != nil || ok {
		t.Errorf("compare false: %v %v", ok, err)
	}
	err = c.ModifyDN(ldap.NewModifyDNRequest(sub(1), "cn=x", true, ""))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Errorf("modifyDN: %v", err)
	}
	err = c.Modify(&ldap.ModifyRequest{DN: sub(1), Changes: []ldap.Change{{Operation: ldap.ReplaceAttribute, Modification: ldap.PartialAttribute{Type: "mail", Vals: []string{"a@b"}}}}})
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Errorf("modify: %v", err)
	}
	err = c.Del(ldap.NewDelRequest(sub(1), nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
		t.Errorf("delete: %v", err)
	}
	err = c.ExternalBind() // in clear there is no client certificate (RFC 4513 5.2.3)
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInappropriateAuthentication) {
		t.Errorf("SASL bind: %v", err)
	}
	// an abandoned search gets no answer and the connection lives on
	raw := rawConn(t, e.ldap)
	raw.send(t, appendTLV(nil, 0x30, append(appendInt(nil, 0x02, 9), appendInt(nil, opAbandonRequest, 3)...)))
	// the connection survived all of that
	if r, err := c.Search(ldap.NewSearchRequest(sub(2), ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil || len(r.Entries) != 1 {
		t.Errorf("search after unrouted operations: %v", err)
	}
	raw.search(t, 10)
}

// rawClient speaks BER directly, to send what real clients never send.
type rawClient struct{ c net.Conn }

func rawConn(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{c}
}

func (r *rawClient) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := r.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

// read returns the next message's protocolOp tag and result code.
func (r *rawClient) read(t *testing.T) (int64, byte, resultCode, error) {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, err := r.c.Read(buf)
	if err != nil {
		return 0, 0, 0, err
	}
	outer, _, err := readElem(buf[:n])
	if err != nil {
		t.Fatalf("bad response: %v", err)
	}
	m, err := parseMessage(outer.body)
	if err != nil {
		t.Fatalf("bad response: %v", err)
	}
	res, _, _ := readElem(m.op.body)
	code, _ := parseInt(res.body)
	return m.id, m.op.tag, resultCode(code), nil
}

// search sends a valid base search of the rootDSE and expects its answer.
func (r *rawClient) search(t *testing.T, id int64) {
	t.Helper()
	p, _ := ldap.CompileFilter("(objectClass=*)")
	body := appendString(nil, 0x04, "")
	body = appendInt(body, 0x0a, 0)
	body = appendInt(body, 0x0a, 0)
	body = appendInt(body, 0x02, 0)
	body = appendInt(body, 0x02, 0)
	body = appendTLV(body, 0x01, []byte{0})
	body = append(body, p.Bytes()...)
	body = appendTLV(body, 0x30, appendString(nil, 0x04, "1.1"))
	r.send(t, appendTLV(nil, 0x30, append(appendInt(nil, 0x02, id), appendTLV(nil, opSearchRequest, body)...)))
	gotID, tag, _, err := r.read(t)
	if err != nil || gotID != id || tag != opSearchEntry {
		t.Fatalf("raw search: id %d tag %#x err %v", gotID, tag, err)
	}
}

func TestMalformedInput(t *testing.T) {
	e := newEnv(t, 1, func(l *config.LDAP) { l.MaxPDUBytes = 4096 })
	good := rawConn(t, e.ldap)
	good.search(t, 1)

	t.Run("fail/bad filter gets protocolError", func(t *testing.T) {
		r := rawConn(t, e.ldap)
		body := appendString(nil, 0x04, suffix)
		body = appendInt(body, 0x0a, 2)
		body = appendInt(body, 0x0a, 0)
		body = appendInt(body, 0x02, 0)
		body = appendInt(body, 0x02, 0)
		body = appendTLV(body, 0x01, []byte{0})
		body = appendTLV(body, 0xbf, []byte{1}) // no such filter choice
		body = appendTLV(body, 0x30, nil)
		r.send(t, appendTLV(nil, 0x30, append(appendInt(nil, 0x02, 4), appendTLV(nil, opSearchRequest, body)...)))
		id, tag, code, err := r.read(t)
		if err != nil || id != 4 || tag != opSearchDone || code != resultProtocolError {
			t.Fatalf("got id %d tag %#x code %d err %v", id, tag, code, err)
		}
		r.search(t, 5) // the connection stays usable
	})
	for _, tc := range []struct {
		name string
		pdu  []byte
	}{
		{"fail/not a sequence", []byte{0x04, 0x03, 'a', 'b', 'c'}},
		{"fail/garbage inside", []byte{0x30, 0x03, 0xff, 0xff, 0xff}},
		{"fail/too large", append([]byte{0x30, 0x83, 0x10, 0x00, 0x00}, make([]byte, 16)...)},
		{"fail/indefinite length", []byte{0x30, 0x80, 0x00, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rawConn(t, e.ldap)
			r.send(t, tc.pdu)
			id, tag, code, err := r.read(t)
			if err != nil || id != 0 || tag != opExtendedResponse || code != resultProtocolError {
				t.Fatalf("want a notice of disconnection, got id %d tag %#x code %d err %v", id, tag, code, err)
			}
			if _, _, _, err := r.read(t); err == nil {
				t.Fatal("connection still open after a malformed message")
			}
		})
	}
	good.search(t, 2) // other connections are untouched
}

func TestCRLFromCertificateURL(t *testing.T) {
	requireTool(t, "curl", "curl")
	e := newEnv(t, 1, nil)
	ctx := context.Background()
	iss, _ := e.auth.Issuer("demo")
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(7), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, iss.Cert, iss.Signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob("crl", "demo.crl", crl) }); err != nil {
		t.Fatal(err)
	}
	var cert *x509.Certificate
	_ = e.st.View(ctx, func(tx *store.Tx) error {
		return tx.CertsBySubscriber(seed.Name(0), func(c *store.Cert) error { cert, err = x509.ParseCertificate(c.DER); return err })
	})
	var url string
	for _, u := range cert.CRLDistributionPoints {
		if strings.HasPrefix(u, "ldap://") {
			url = u
		}
	}
	if !strings.HasPrefix(url, "ldap://"+e.ldap+"/") {
		t.Fatalf("no ldap CRL URL for this server in %v", cert.CRLDistributionPoints)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(cctx, "curl", "-sS", url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v %s", url, err, out)
	}
	if !strings.Contains(string(out), "certificateRevocationList;binary:: ") {
		t.Fatalf("curl output has no CRL: %s", out)
	}
	// the same with ldapsearch -H and the JDK's and Windows' attribute names
	u, _ := neturl.Parse(url)
	out2, code := e.ldapsearch(t, "-H", "ldap://"+u.Host, "-s", "base", "-b", strings.TrimPrefix(u.Path, "/"), "(objectClass=*)", u.RawQuery)
	if code != 0 || !strings.Contains(out2, "certificateRevocationList;binary:: ") {
		t.Fatalf("ldapsearch -H %s: %d %s", url, code, out2)
	}
	c := e.dial(t)
	r, err := c.Search(ldap.NewSearchRequest(iss.Cert.Subject.String(), 0, 0, 0, 0, false, "(objectClass=*)", []string{"certificateRevocationList"}, nil))
	if err != nil || len(r.Entries) != 1 || string(r.Entries[0].GetRawAttributeValue("certificateRevocationList")) != string(crl) {
		t.Fatalf("certificateRevocationList without ;binary: %v", err)
	}
	// a new CRL is served at once
	crl2, _ := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(8), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, iss.Cert, iss.Signer)
	_ = e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob("crl", "demo-delta.crl", crl2) })
	r, err = c.Search(ldap.NewSearchRequest(iss.Cert.Subject.String(), 0, 0, 0, 0, false, "(objectClass=*)", []string{"deltaRevocationList;binary"}, nil))
	if err != nil || string(r.Entries[0].GetRawAttributeValue("deltaRevocationList;binary")) != string(crl2) {
		t.Fatalf("delta CRL not published: %v", err)
	}
}

func TestRevocationVisibleAtOnce(t *testing.T) {
	e := newEnv(t, 2, nil)
	c := e.dial(t)
	count := func() int {
		r, err := c.Search(ldap.NewSearchRequest(sub(1), 0, 0, 0, 0, false, "(objectClass=*)", []string{"userCertificate;binary"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Entries[0].GetRawAttributeValues("userCertificate;binary"))
	}
	if count() != 1 {
		t.Fatal("seeded subscriber has no certificate")
	}
	var serial []byte
	_ = e.st.View(context.Background(), func(tx *store.Tx) error {
		return tx.CertsBySubscriber(seed.Name(1), func(c *store.Cert) error { serial = c.Serial; return nil })
	})
	if _, err := e.auth.Revoke(context.Background(), serial, ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("revoked certificate still published (%d)", n)
	}
}
