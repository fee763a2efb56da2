package directory

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// clientCert is a client certificate and its key, in memory and as PEM
// files for ldapsearch and python-ldap.
type clientCert struct {
	cert              *x509.Certificate
	key               crypto.Signer
	certFile, keyFile string
}

func (c clientCert) tls() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.cert.Raw}, PrivateKey: c.key, Leaf: c.cert}
}

func writeClientCert(t *testing.T, name string, cert *x509.Certificate, key crypto.Signer) clientCert {
	t.Helper()
	dir := t.TempDir()
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := clientCert{cert: cert, key: key, certFile: filepath.Join(dir, name+".crt"), keyFile: filepath.Join(dir, name+".key")}
	if err := os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// issueClient issues a client certificate of the organization profile
// (clientAuth) from the test CA.
func (f *accessFixture) issueClient(t *testing.T, cn string) clientCert {
	t.Helper()
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.auth.Issue(context.Background(), ca.IssueRequest{CA: "demo", Profile: ca.ProfileOrganization, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: cn, Organization: []string{"Hospital"}}})
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	return writeClientCert(t, cn, x, key)
}

// foreignPKI is a root outside this server's CAs (ldap.client_ca_file).
type foreignPKI struct {
	root *x509.Certificate
	key  crypto.Signer
	file string
}

func newForeignPKI(t *testing.T) *foreignPKI {
	t.Helper()
	key, _ := signer.GenerateKey(signer.ECDSAP256)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Provincial Health Root"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	file := filepath.Join(t.TempDir(), "roots.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &foreignPKI{root: root, key: key, file: file}
}

func (p *foreignPKI) issue(t *testing.T, cn string, notAfter time.Time) clientCert {
	t.Helper()
	key, _ := signer.GenerateKey(signer.ECDSAP256)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.root, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return writeClientCert(t, cn, c, key)
}

// addCertAccount stores a directory account that binds only with cert.
func (f *accessFixture) addCertAccount(t *testing.T, id string, orgs []string, cert *x509.Certificate) {
	t.Helper()
	if err := f.st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.InsertDirAccount(&store.DirAccount{ID: id, DN: accountDN(id), Orgs: orgs, ExpiresAt: time.Now().Add(time.Hour),
			ClientCertKey: store.ClientCertKey(cert.RawSubjectPublicKeyInfo), ClientCertSubject: cert.Subject.String(),
			ApprovedBy: "staff:test", CreatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
}

// ldapsearchExternal runs ldapsearch -Y EXTERNAL with the client
// certificate in LDAPTLS_CERT/LDAPTLS_KEY.
func (f *accessFixture) ldapsearchExternal(t *testing.T, c clientCert, args ...string) (string, int) {
	t.Helper()
	requireTool(t, "ldapsearch", "ldap-utils")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ldapsearch", append([]string{"-Y", "EXTERNAL", "-Q", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10"}, args...)...)
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+f.caFile, "LDAPTLS_CERT="+c.certFile, "LDAPTLS_KEY="+c.keyFile, "LDAPRC=/dev/null", "LDAPCONF=/dev/null")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// externalFixture: the access fixture with anonymous people off, and
// systems that bind with certificates: his-ext-a (Hospital A) and
// his-ext-b (Hospital B) with certificates of this CA, his-ext-rev whose
// certificate is revoked, his-foreign with a certificate of a root in
// ldap.client_ca_file, his-foreign-old whose certificate of that root
// has expired; and a certificate of this CA that no account names.
type externalFixture struct {
	*accessFixture
	a, b, revoked, foreign, expired, unmapped clientCert
}

func newExternalEnv(t *testing.T) *externalFixture {
	t.Helper()
	pki := newForeignPKI(t)
	f := newAccessEnv(t, func(l *config.LDAP) {
		l.AnonymousPeople = config.AnonymousPeopleNone
		l.ClientCAFile = pki.file
	})
	x := &externalFixture{accessFixture: f}
	x.a, x.b = f.issueClient(t, "HIS A"), f.issueClient(t, "HIS B")
	x.revoked, x.unmapped = f.issueClient(t, "HIS revoked"), f.issueClient(t, "HIS unknown")
	x.foreign, x.expired = pki.issue(t, "HIS foreign", time.Now().Add(time.Hour)), pki.issue(t, "HIS foreign old", time.Now().Add(-time.Hour))
	f.addCertAccount(t, "his-ext-a", []string{"hosp-a"}, x.a.cert)
	f.addCertAccount(t, "his-ext-b", []string{"hosp-b"}, x.b.cert)
	f.addCertAccount(t, "his-ext-rev", []string{"hosp-a"}, x.revoked.cert)
	f.addCertAccount(t, "his-foreign", []string{"hosp-b"}, x.foreign.cert)
	f.addCertAccount(t, "his-foreign-old", []string{"hosp-b"}, x.expired.cert)
	if _, err := f.auth.Revoke(context.Background(), x.revoked.cert.SerialNumber.Bytes(), ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	return x
}

// dialCert connects over ldaps (or ldap + StartTLS) presenting cert, if any.
func (f *accessFixture) dialCert(t *testing.T, cert *clientCert, startTLS bool) *ldap.Conn {
	t.Helper()
	conf := f.clientTLS(t)
	if cert != nil {
		conf.Certificates = []tls.Certificate{cert.tls()}
	}
	var c *ldap.Conn
	var err error
	if startTLS {
		c = dialGuarded(t, f.ldap)
		err = c.StartTLS(conf)
	} else {
		c, err = ldap.DialURL("ldaps://"+f.ldaps, ldap.DialWithTLSConfig(conf))
		if err == nil {
			t.Cleanup(func() { c.Close() })
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestExternalBind: SASL EXTERNAL with a client certificate over ldaps
// and StartTLS maps the certificate to its directory account, which then
// reads its organisation's people; a revoked, expired, unknown or absent
// certificate is refused as RFC 4513 says.
func TestExternalBind(t *testing.T) {
	x := newExternalEnv(t)
	for _, tc := range []struct {
		name     string
		cert     *clientCert
		startTLS bool
		code     uint16 // 0: success
		whoami   string
		org      string
	}{
		{"ok/ldaps, this CA's certificate", &x.a, false, 0, "dn:" + accountDN("his-ext-a"), "Hospital A"},
		{"ok/StartTLS, this CA's certificate", &x.b, true, 0, "dn:" + accountDN("his-ext-b"), "Hospital B"},
		{"ok/a root of ldap.client_ca_file", &x.foreign, false, 0, "dn:" + accountDN("his-foreign"), "Hospital B"},
		{"fail/revoked certificate", &x.revoked, false, ldap.LDAPResultInvalidCredentials, "", ""},
		{"fail/expired certificate", &x.expired, true, ldap.LDAPResultInvalidCredentials, "", ""},
		{"fail/certificate of no account", &x.unmapped, false, ldap.LDAPResultInvalidCredentials, "", ""},
		{"fail/no certificate", nil, false, ldap.LDAPResultInappropriateAuthentication, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := x.dialCert(t, tc.cert, tc.startTLS)
			err := c.ExternalBind()
			if tc.code == 0 && err != nil || tc.code != 0 && !ldap.IsErrorWithCode(err, tc.code) {
				t.Fatalf("EXTERNAL bind: %v, want result %d", err, tc.code)
			}
			who, err := c.WhoAmI(nil)
			if err != nil || who.AuthzID != tc.whoami {
				t.Errorf("whoami: %v %q, want %q", err, who.AuthzID, tc.whoami)
			}
			got := people(t, c)
			if tc.org == "" && len(got) != 0 || tc.org != "" && (len(got) != 2 || !strings.Contains(got[0], tc.org) || !strings.Contains(got[1], tc.org)) {
				t.Errorf("sees %v, want the people of %q", got, tc.org)
			}
			x.seesCRL(t, c)
		})
	}
	// in clear there is no certificate to bind with (RFC 4513 5.2.3)
	if err := x.dial(t).ExternalBind(); !ldap.IsErrorWithCode(err, ldap.LDAPResultInappropriateAuthentication) {
		t.Errorf("EXTERNAL in clear: %v", err)
	}
	// a password bind of an account that has only a certificate fails
	if err := x.dial(t).Bind(accountDN("his-ext-a"), "anything"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("password bind of a certificate-only account: %v", err)
	}
	if got := counter(t, x.d.metrics.binds.WithLabelValues("his-ext-a", "success")); got != 1 {
		t.Errorf("his-ext-a EXTERNAL binds counted %v, want 1", got)
	}
}

// saslBindPDU is a BindRequest with SASL credentials; authz nil sends
// none.
func saslBindPDU(id int64, mech string, authz []byte) []byte {
	sasl := appendString(nil, 0x04, mech)
	if authz != nil {
		sasl = appendTLV(sasl, 0x04, authz)
	}
	body := appendInt(nil, 0x02, 3)
	body = appendString(body, 0x04, "")
	body = appendTLV(body, 0xa3, sasl)
	return ldapMessage(id, appendTLV(nil, opBindRequest, body))
}

// TestExternalAuthzID: an authorization identity in the EXTERNAL bind must
// name the certificate's account, as "dn:" or "u:" (RFC 4513 5.2.1.8);
// another identity gets invalidCredentials; other mechanisms are not
// supported.
func TestExternalAuthzID(t *testing.T) {
	x := newExternalEnv(t)
	conf := x.clientTLS(t)
	conf.Certificates = []tls.Certificate{x.a.tls()}
	for _, tc := range []struct {
		name  string
		mech  string
		authz []byte
		code  resultCode
	}{
		{"ok/no authzId", "EXTERNAL", nil, resultSuccess},
		{"ok/empty authzId", "EXTERNAL", []byte{}, resultSuccess},
		{"ok/dn: the account's DN", "EXTERNAL", []byte("dn:" + strings.ToUpper(accountDN("his-ext-a"))), resultSuccess},
		{"ok/u: the account's ID", "EXTERNAL", []byte("u:his-ext-a"), resultSuccess},
		{"fail/dn: another account", "EXTERNAL", []byte("dn:" + accountDN("his-ext-b")), resultInvalidCredentials},
		{"fail/u: another account", "EXTERNAL", []byte("u:his-a"), resultInvalidCredentials},
		{"fail/not an authzId", "EXTERNAL", []byte("his-ext-a"), resultInvalidCredentials},
		{"fail/PLAIN", "PLAIN", []byte("\x00his-a\x00his-a"), resultAuthMethodNotSupported},
		{"fail/GSSAPI", "GSSAPI", nil, resultAuthMethodNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := dialMsg(t, x.ldap)
			m.send(t, startTLSPDU(1))
			if r := m.next(t); r.code != resultSuccess {
				t.Fatalf("StartTLS: %d %s", r.code, r.diag)
			}
			m.upgrade(t, conf)
			m.send(t, saslBindPDU(2, tc.mech, tc.authz))
			if r := m.next(t); r.code != tc.code {
				t.Fatalf("bind: %d %s, want %d", r.code, r.diag, tc.code)
			}
		})
	}
}

// TestExternalClients: ldapsearch -Y EXTERNAL (StartTLS with -ZZ, and
// ldaps://) and python-ldap's sasl_external_bind_s, with their client
// certificates, read as their accounts; a revoked certificate is refused.
func TestExternalClients(t *testing.T) {
	x := newExternalEnv(t)
	filter := "(|(objectClass=pkiUser)(objectClass=pkiCA))"
	for _, tc := range []struct {
		name      string
		cert      clientCert
		url       []string
		mine, not string
	}{
		{"ok/ldapsearch -ZZ", x.a, []string{"-ZZ", "-H", "ldap://" + x.ldap}, "Hospital A", "Hospital B"},
		{"ok/ldapsearch ldaps", x.b, []string{"-H", "ldaps://" + x.ldaps}, "Hospital B", "Hospital A"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := x.ldapsearchExternal(t, tc.cert, append(tc.url, "-b", suffix, filter, "cn", "certificateRevocationList;binary")...)
			if got := dns(out); code != 0 || len(got) != 3 || strings.Count(out, "o="+tc.mine) != 2 || strings.Contains(out, tc.not) || !strings.Contains(out, "certificateRevocationList;binary::") {
				t.Errorf("exit %d, %v:\n%s", code, got, out)
			}
		})
	}
	t.Run("fail/ldapsearch with a revoked certificate", func(t *testing.T) {
		out, code := x.ldapsearchExternal(t, x.revoked, "-H", "ldaps://"+x.ldaps, "-b", suffix, filter, "cn")
		if code != 49 || len(dns(out)) != 0 {
			t.Errorf("exit %d (want 49, invalidCredentials):\n%s", code, out)
		}
	})

	if exec.Command(python3, "-c", "import ldap").Run() != nil {
		t.Fatal("python3 with the ldap module not found: install the Debian package python3-ldap")
	}
	script := `
import ldap, sys
url, starttls, cacert, cert, key, base = sys.argv[1:7]
c = ldap.initialize(url)
c.set_option(ldap.OPT_X_TLS_CACERTFILE, cacert)
c.set_option(ldap.OPT_X_TLS_CERTFILE, cert)
c.set_option(ldap.OPT_X_TLS_KEYFILE, key)
c.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
if starttls == "1":
    c.start_tls_s()
try:
    c.sasl_external_bind_s()
except ldap.INVALID_CREDENTIALS:
    print("refused")
    sys.exit(0)
print("whoami", c.whoami_s())
for dn, _ in c.search_s(base, ldap.SCOPE_SUBTREE, "(objectClass=pkiUser)", ["cn"]):
    print(dn)
for dn, a in c.search_s(base, ldap.SCOPE_SUBTREE, "(objectClass=pkiCA)", ["certificateRevocationList;binary"]):
    print("crl", len(a.get("certificateRevocationList;binary", [b""])[0]))
`
	for _, tc := range []struct {
		name, url, starttls string
		cert                clientCert
		want                []string
		not                 string
	}{
		{"ok/python-ldap StartTLS", "ldap://" + x.ldap, "1", x.a, []string{"whoami dn:" + accountDN("his-ext-a"), "o=Hospital A", "crl "}, "Hospital B"},
		{"ok/python-ldap ldaps", "ldaps://" + x.ldaps, "0", x.b, []string{"whoami dn:" + accountDN("his-ext-b"), "o=Hospital B", "crl "}, "Hospital A"},
		{"fail/python-ldap revoked", "ldaps://" + x.ldaps, "0", x.revoked, []string{"refused"}, "whoami"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := exec.Command(python3, "-c", script, tc.url, tc.starttls, x.caFile, tc.cert.certFile, tc.cert.keyFile, suffix).CombinedOutput()
			s := string(out)
			if err != nil || strings.Contains(s, tc.not) || strings.Contains(s, "crl 0") {
				t.Fatalf("python-ldap: %v:\n%s", err, s)
			}
			for _, w := range tc.want {
				if !strings.Contains(s, w) {
					t.Errorf("python-ldap output lacks %q:\n%s", w, s)
				}
			}
		})
	}
}

// TestExternalCertRevokedWhileBound: a connection bound with a client
// certificate loses its account at its next operation once the
// certificate is revoked.
func TestExternalCertRevokedWhileBound(t *testing.T) {
	x := newExternalEnv(t)
	c := x.dialCert(t, &x.a, false)
	if err := c.ExternalBind(); err != nil {
		t.Fatal(err)
	}
	other := x.dialCert(t, &x.b, true)
	if err := other.ExternalBind(); err != nil {
		t.Fatal(err)
	}
	if got := people(t, c); len(got) != 2 {
		t.Fatalf("before the revocation: %v", got)
	}
	if _, err := x.auth.Revoke(context.Background(), x.a.cert.SerialNumber.Bytes(), ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if got := people(t, c); len(got) != 0 {
		t.Errorf("after its certificate's revocation: %v", got)
	}
	if got := people(t, other); len(got) != 2 {
		t.Errorf("another certificate's connection after the revocation: %v", got)
	}
	// and a new bind with it is refused
	if err := x.dialCert(t, &x.a, false).ExternalBind(); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind with the revoked certificate: %v", err)
	}
	x.d.acctIdx.certMu.Lock()
	n := len(x.d.acctIdx.bound)
	x.d.acctIdx.certMu.Unlock()
	if n != 1 {
		t.Errorf("%d certificates counted as bound, want 1 (his-ext-b's)", n)
	}
}

// FuzzBindRequest: the BindRequest parser and its SASL credentials,
// outside input, never panic; what they accept re-encodes to itself.
func FuzzBindRequest(f *testing.F) {
	body := func(name string, auth []byte) []byte {
		return append(appendString(appendInt(nil, 0x02, 3), 0x04, name), auth...)
	}
	sasl := func(mech string, creds ...string) []byte {
		b := appendString(nil, 0x04, mech)
		for _, c := range creds {
			b = appendString(b, 0x04, c)
		}
		return appendTLV(nil, 0xa3, b)
	}
	f.Add(body("cn=a,o=b", appendString(nil, 0x80, "secret")))
	f.Add(body("", sasl("EXTERNAL")))
	f.Add(body("", sasl("EXTERNAL", "dn:cn=his,o=b")))
	f.Add(body("", sasl("PLAIN", "\x00u\x00p")))
	f.Add(body("", sasl("EXTERNAL", "a", "b")))
	f.Add([]byte{0x02, 0x01, 0x03, 0x04, 0x00, 0xa3, 0x02, 0x04, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseBind(b)
		if err != nil || r.auth.tag != 0xa3 {
			return
		}
		s, err := parseSASL(r.auth.body)
		if err != nil {
			return
		}
		enc := appendString(nil, 0x04, s.mechanism)
		if s.hasCreds {
			enc = appendTLV(enc, 0x04, s.creds)
		}
		if s2, err := parseSASL(enc); err != nil || s2.mechanism != s.mechanism || string(s2.creds) != string(s.creds) || s2.hasCreds != s.hasCreds {
			t.Fatalf("SASL %q re-encoded as %x parses as %+v, %v", b, enc, s2, err)
		}
	})
}
