package directory

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// accessFixture: two RA organisations with two people each, a CRL, and
// directory accounts approved for one organisation each, plus an expired
// and a revoked one. Every account's password is its ID.
type accessFixture struct {
	*env
	caDN string
}

func hospitalDN(org, person string) string {
	return fmt.Sprintf("cn=%s,ou=ward,o=%s,%s", person, org, suffix)
}

func newAccessEnv(t *testing.T, mod func(*config.LDAP), opts ...func(*Options)) *accessFixture {
	t.Helper()
	e := newEnv(t, 3, func(l *config.LDAP) {
		l.AllowCleartextBind = true
		l.HiddenAttributes = []string{} // the allow-list alone keeps serialNumber out
		if mod != nil {
			mod(l)
		}
	}, opts...)
	ctx := context.Background()
	iss, _ := e.auth.Issuer("demo")
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(), NextUpdate: time.Now().Add(time.Hour)}, iss.Cert, iss.Signer)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var reqs []ca.IssueRequest
	var subs []*store.Subscriber
	for _, org := range []string{"Hospital A", "Hospital B"} {
		for i, profile := range []string{ca.ProfilePersonalSigning, ca.ProfileOrganization} {
			id := fmt.Sprintf("%s-%d", strings.ReplaceAll(org, " ", ""), i)
			key, err := signer.GenerateKey(signer.ECDSAP256)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, &store.Subscriber{ID: id, CommonName: id, UID: id, Email: id + "@example.org",
				Organization: org, OrgUnit: "ward", SerialNumber: "ID-" + id, CreatedAt: now})
			reqs = append(reqs, ca.IssueRequest{CA: "demo", Profile: profile, PublicKey: key.Public(), SubscriberID: id,
				Subject: &pkix.Name{CommonName: id, Organization: []string{org}}})
		}
	}
	if _, err := e.auth.IssueBatchWith(ctx, reqs, func(tx *store.Tx, certs []*store.Cert) error {
		for i, s := range subs {
			if err := tx.PutSubscriber(s); err != nil {
				return err
			}
			// the RA records which organisation a certificate is for;
			// access rules decide on that ID, not on the name
			if err := tx.PutOrgCert(map[string]string{"Hospital A": "hosp-a", "Hospital B": "hosp-b"}[s.Organization], certs[i].Serial); err != nil {
				return err
			}
		}
		for _, o := range []*store.Org{{ID: "hosp-a", Name: "Hospital A"}, {ID: "hosp-b", Name: "Hospital B"}} {
			if err := tx.InsertOrg(o); err != nil {
				return err
			}
		}
		for _, a := range []store.DirAccount{
			{ID: "his-a", Orgs: []string{"hosp-a"}, ExpiresAt: now.Add(time.Hour)},
			{ID: "his-b", Orgs: []string{"hosp-b"}, ExpiresAt: now.Add(time.Hour), SizeLimit: 1},
			{ID: "his-b2", Orgs: []string{"hosp-b"}, ExpiresAt: now.Add(time.Hour)},
			{ID: "his-full", Orgs: []string{"hosp-a"}, ExpiresAt: now.Add(time.Hour), AllAttributes: true},
			{ID: "his-expired", Orgs: []string{"hosp-a"}, ExpiresAt: now.Add(-time.Minute)},
			{ID: "his-revoked", Orgs: []string{"hosp-a"}, ExpiresAt: now.Add(time.Hour), Revoked: true},
		} {
			h, err := bcrypt.GenerateFromPassword([]byte(a.ID), bcrypt.MinCost)
			if err != nil {
				return err
			}
			a.DN, a.PasswordHash, a.CreatedAt, a.ApprovedBy = "cn="+a.ID+",ou=systems,"+suffix, string(h), now, "staff:test"
			if err := tx.InsertDirAccount(&a); err != nil {
				return err
			}
		}
		return tx.PutBlob("crl", "demo.crl", crl)
	}); err != nil {
		t.Fatal(err)
	}
	return &accessFixture{env: e, caDN: iss.Cert.Subject.String()}
}

func accountDN(id string) string { return "cn=" + id + ",ou=systems," + suffix }

// people returns the DNs of the pkiUser entries c finds under the suffix.
func people(t *testing.T, c *ldap.Conn) []string {
	t.Helper()
	r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=pkiUser)", []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range r.Entries {
		out = append(out, e.DN)
	}
	return out
}

func (f *accessFixture) seesCRL(t *testing.T, c *ldap.Conn) {
	t.Helper()
	r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=cRLDistributionPoint)", []string{"certificateRevocationList;binary"}, nil))
	if err != nil || len(r.Entries) != 1 || len(r.Entries[0].GetRawAttributeValue("certificateRevocationList;binary")) == 0 {
		t.Fatalf("the CA entry with its CRL: %v %v", err, r)
	}
}

func (f *accessFixture) bound(t *testing.T, id string) *ldap.Conn {
	t.Helper()
	c := f.dial(t)
	if err := c.Bind(accountDN(id), id); err != nil {
		t.Fatalf("bind %s: %v", id, err)
	}
	return c
}

// TestAccessAccountsSeeTheirOrganisation: two systems approved for
// different organisations each see only their own people; both see the CA
// entry and its CRL; anonymous clients see no people with
// anonymous_people none; whatever is out of scope is answered as absent.
func TestAccessAccountsSeeTheirOrganisation(t *testing.T) {
	f := newAccessEnv(t, func(l *config.LDAP) { l.AnonymousPeople = config.AnonymousPeopleNone })

	anon := f.dial(t)
	if got := people(t, anon); len(got) != 0 {
		t.Errorf("anonymous sees people: %v", got)
	}
	f.seesCRL(t, anon)

	a := f.bound(t, "his-a")
	if got := people(t, a); len(got) != 2 || !strings.Contains(got[0], "o=Hospital A") || !strings.Contains(got[1], "o=Hospital A") {
		t.Errorf("his-a sees %v, want Hospital A's two people", got)
	}
	f.seesCRL(t, a)
	// his-b has a size limit of 1 of its own
	b := f.bound(t, "his-b")
	r, err := b.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=pkiUser)", []string{"1.1"}, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || len(r.Entries) != 1 || !strings.Contains(r.Entries[0].DN, "o=Hospital B") {
		t.Errorf("his-b with size limit 1: %v %v", err, r)
	}
	f.seesCRL(t, b)

	// out of scope is absent: a base search, a one-level search under it,
	// a search by its uid, a compare — all as for a DN that does not exist
	other := hospitalDN("Hospital B", "HospitalB-0")
	for _, scope := range []int{ldap.ScopeBaseObject, ldap.ScopeSingleLevel} {
		_, err := a.Search(ldap.NewSearchRequest(other, scope, 0, 0, 0, false, "(objectClass=*)", nil, nil))
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			t.Errorf("his-a reads %s (scope %d): %v, want noSuchObject", other, scope, err)
		}
		var le *ldap.Error
		if ok := asLDAPError(err, &le); ok && strings.Contains(le.MatchedDN, "Hospital B") {
			t.Errorf("matchedDN leaks the organisation: %q", le.MatchedDN)
		}
	}
	r, err = a.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=HospitalB-0)", nil, nil))
	if err != nil || len(r.Entries) != 0 {
		t.Errorf("his-a finds Hospital B's person by uid: %v %v", err, r)
	}
	if _, err := a.Compare(other, "uid", "HospitalB-0"); !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("compare out of scope: %v, want noSuchObject", err)
	}
	if ok, err := a.Compare(hospitalDN("Hospital A", "HospitalA-0"), "uid", "HospitalA-0"); err != nil || !ok {
		t.Errorf("compare in scope: %v %v", ok, err)
	}
	if _, err := anon.Compare(hospitalDN("Hospital A", "HospitalA-0"), "uid", "HospitalA-0"); !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("anonymous compare: %v, want noSuchObject", err)
	}

	// attributes outside ldap.public_attributes are not returned, nor
	// matched, unless the account is allowed all attributes
	mine := hospitalDN("Hospital A", "HospitalA-0")
	r, err = a.Search(ldap.NewSearchRequest(mine, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"*", "serialNumber"}, nil))
	if err != nil || len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("serialNumber") != "" || r.Entries[0].GetAttributeValue("mail") == "" {
		t.Errorf("his-a reads %s: %v %v", mine, err, r)
	}
	r, _ = a.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(serialNumber=ID-HospitalA-0)", nil, nil))
	if len(r.Entries) != 0 {
		t.Errorf("a filter on serialNumber matches for his-a")
	}
	full := f.bound(t, "his-full")
	r, err = full.Search(ldap.NewSearchRequest(mine, ldap.ScopeBaseObject, 0, 0, 0, false, "(serialNumber=ID-HospitalA-0)", []string{"serialNumber"}, nil))
	if err != nil || len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("serialNumber") != "ID-HospitalA-0" {
		t.Errorf("his-full reads serialNumber: %v %v", err, r)
	}

	// the same with ldapsearch over ldaps
	out, code := f.ldapsearch(t, "-H", "ldaps://"+f.ldaps, "-D", accountDN("his-a"), "-w", "his-a", "-b", suffix, "(|(objectClass=pkiUser)(objectClass=pkiCA))", "cn")
	if got := dns(out); code != 0 || len(got) != 3 || strings.Count(out, "cn: HospitalA-") != 2 || !strings.Contains(out, "cn: certcenter Demo Root CA") {
		t.Errorf("ldapsearch as his-a: exit %d, %v: %s", code, got, out)
	}
	out, code = f.ldapsearch(t, "-H", "ldap://"+f.ldap, "-b", suffix, "(objectClass=inetOrgPerson)", "cn")
	if code != 0 || len(dns(out)) != 0 {
		t.Errorf("anonymous ldapsearch: exit %d: %s", code, out)
	}
}

func asLDAPError(err error, le **ldap.Error) bool {
	e, ok := err.(*ldap.Error)
	*le = e
	return ok
}

// TestAccessRefusedAccounts: an expired or a revoked account is refused
// as a wrong password is, and a refused bind leaves the connection anonymous.
func TestAccessRefusedAccounts(t *testing.T) {
	f := newAccessEnv(t, func(l *config.LDAP) { l.AnonymousPeople = config.AnonymousPeopleNone })
	for _, id := range []string{"his-expired", "his-revoked"} {
		c := f.dial(t)
		if err := c.Bind(accountDN(id), id); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Errorf("bind %s: %v, want invalidCredentials", id, err)
		}
		if got := people(t, c); len(got) != 0 {
			t.Errorf("after the refused bind of %s: %v", id, got)
		}
	}
	if err := f.dial(t).Bind(accountDN("his-a"), "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("wrong password: %v", err)
	}
}

// TestAccessAnonymousModes: anonymous_people all (the default) shows
// everyone with the public attributes; profiles shows only the people
// holding a certificate of a listed profile, with only those certificates.
func TestAccessAnonymousModes(t *testing.T) {
	t.Run("all", func(t *testing.T) {
		f := newAccessEnv(t, func(l *config.LDAP) { l.PublicAttributes = []string{"objectClass", "cn", "userCertificate"} })
		c := f.dial(t)
		if got := people(t, c); len(got) != 4+3 {
			t.Errorf("anonymous sees %d people, want 7", len(got))
		}
		r, err := c.Search(ldap.NewSearchRequest(hospitalDN("Hospital A", "HospitalA-0"), ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
		if err != nil || len(r.Entries) != 1 || r.Entries[0].GetAttributeValue("mail") != "" || r.Entries[0].GetAttributeValue("uid") != "" {
			t.Errorf("anonymous read of a person: %v %v", err, r)
		}
		// a filter on an attribute outside the allow-list matches nothing
		r, _ = c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(mail=HospitalA-0@example.org)", nil, nil))
		if len(r.Entries) != 0 {
			t.Errorf("anonymous filter on mail matched %d", len(r.Entries))
		}
	})
	t.Run("profiles", func(t *testing.T) {
		f := newAccessEnv(t, func(l *config.LDAP) {
			l.AnonymousPeople, l.AnonymousProfiles = config.AnonymousPeopleProfiles, []string{ca.ProfileOrganization}
		})
		got := people(t, f.dial(t))
		if len(got) != 2 || !strings.Contains(got[0], "-1,") || !strings.Contains(got[1], "-1,") {
			t.Errorf("anonymous with profiles sees %v, want the two organization certificates' holders", got)
		}
		// an account still sees its organisation's people whatever their profile
		if got := people(t, f.bound(t, "his-a")); len(got) != 3 {
			t.Errorf("his-a sees %v: its 2 people and Hospital B's organization certificate holder", got)
		}
	})
}

// python3 is Debian's, which python3-ldap installs the module for.
const python3 = "/usr/bin/python3"

// TestAccessPythonLDAP: python-ldap and ldapsearch, bound as two systems
// approved for different organisations (each client as each), see only
// their organisation's people, and both the CA's CRL.
func TestAccessPythonLDAP(t *testing.T) {
	if exec.Command(python3, "-c", "import ldap").Run() != nil {
		t.Fatal("python3 with the ldap module not found: install the Debian package python3-ldap")
	}
	f := newAccessEnv(t, func(l *config.LDAP) { l.AnonymousPeople = config.AnonymousPeopleNone })
	script := `
import ldap, sys
c = ldap.initialize(sys.argv[1])
c.simple_bind_s(sys.argv[2], sys.argv[3])
for dn, _ in c.search_s(sys.argv[4], ldap.SCOPE_SUBTREE, "(objectClass=pkiUser)", ["cn"]):
    print(dn)
for dn, a in c.search_s(sys.argv[4], ldap.SCOPE_SUBTREE, "(objectClass=pkiCA)", ["certificateRevocationList;binary"]):
    print("crl", dn, len(a.get("certificateRevocationList;binary", [b""])[0]))
`
	for _, sys := range []struct{ id, mine, other string }{{"his-a", "Hospital A", "Hospital B"}, {"his-b2", "Hospital B", "Hospital A"}} {
		out, err := exec.Command(python3, "-c", script, "ldap://"+f.ldap, accountDN(sys.id), sys.id, suffix).CombinedOutput()
		if err != nil {
			t.Fatalf("python-ldap: %v %s", err, out)
		}
		s := string(out)
		if strings.Count(s, sys.mine) != 2 || strings.Contains(s, sys.other) || strings.Contains(s, "seed-") || !strings.Contains(s, "crl ") || strings.Contains(s, "crl cn=certcenter Demo Root CA,o=certcenter,c=CN 0") {
			t.Errorf("python-ldap as %s:\n%s", sys.id, s)
		}
		// ldapsearch as the other system
		o := map[string]string{"his-a": "his-b2", "his-b2": "his-a"}[sys.id]
		ls, code := f.ldapsearch(t, "-H", "ldaps://"+f.ldaps, "-D", accountDN(o), "-w", o, "-b", suffix, "(|(objectClass=pkiUser)(objectClass=pkiCA))", "cn", "certificateRevocationList;binary")
		if got := dns(ls); code != 0 || len(got) != 3 || strings.Count(ls, "o="+sys.other) != 2 || strings.Contains(ls, "o="+sys.mine) || !strings.Contains(ls, "certificateRevocationList;binary::") {
			t.Errorf("ldapsearch as %s: exit %d, %v:\n%s", o, code, got, ls)
		}
	}
}

// TestFailedBindsSlowed: after ldap.bind_failures_burst failed binds from
// one address its binds are refused at once with busy and the wait, even
// with the right password, while another account's binds and anonymous
// reads go on; binds, failures and searches are counted per account.
func TestFailedBindsSlowed(t *testing.T) {
	f := newAccessEnv(t, func(l *config.LDAP) {
		l.AnonymousPeople = config.AnonymousPeopleNone
		l.BindFailuresBurst, l.BindFailureRefill = 3, config.Duration(time.Hour)
	})
	a := f.bound(t, "his-a")
	people(t, a)
	people(t, a)
	c := f.dial(t)
	for i := range 3 {
		if err := c.Bind(accountDN("his-b"), "guess"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	start := time.Now()
	err := c.Bind(accountDN("his-b"), "his-b")
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) || !strings.Contains(err.Error(), "retry in") {
		t.Fatalf("bind after 3 failures: %v, want busy with the wait", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refusal took %v: it must not hang", d)
	}
	// another connection from the same address is refused too
	if err := f.dial(t).Bind(accountDN("his-a"), "his-a"); !ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) {
		t.Errorf("bind from the same address on a new connection: %v", err)
	}
	f.seesCRL(t, c) // anonymous reads go on

	m := f.d.metrics
	for _, want := range []struct {
		c    prometheus.Counter
		n    float64
		name string
	}{
		{m.binds.WithLabelValues("his-a", "success"), 1, "his-a binds"},
		{m.binds.WithLabelValues("his-b", "invalid"), 3, "his-b failed binds"},
		{m.binds.WithLabelValues("unknown", "throttled"), 2, "throttled binds"},
		{m.searches.WithLabelValues("his-a"), 2, "his-a searches"},
		{m.searches.WithLabelValues("anonymous"), 1, "anonymous searches"},
	} {
		// The server counts a search after it has written the answer the
		// client already holds: wait for the count, not for a time.
		got := counter(t, want.c)
		for deadline := time.Now().Add(10 * time.Second); got != want.n && time.Now().Before(deadline); got = counter(t, want.c) {
			time.Sleep(10 * time.Millisecond)
		}
		if got != want.n {
			t.Errorf("%s: %v, want %v", want.name, got, want.n)
		}
	}
}

// productionProfile is the ldap section the commented production profile
// of certcenter.example.yaml makes, applied to the defaults.
func productionProfile(t *testing.T) config.LDAP {
	t.Helper()
	b, err := os.ReadFile("../certcenter.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(b), "# Production profile")
	if !ok {
		t.Fatal("certcenter.example.yaml has no production profile")
	}
	y := "ldap:\n"
	// the "#   key: value" lines that follow the heading's sentence
	for _, l := range strings.Split(block, "\n") {
		kv, ok := strings.CutPrefix(strings.TrimSpace(l), "#   ")
		if ok {
			y += "  " + kv + "\n"
		} else if y != "ldap:\n" {
			break
		}
	}
	c, err := config.Parse([]byte(y))
	if err != nil {
		t.Fatalf("the production profile %q: %v", y, err)
	}
	if c.LDAP.AnonymousPeople != config.AnonymousPeopleNone {
		t.Fatalf("the production profile %q leaves anonymous_people %q", y, c.LDAP.AnonymousPeople)
	}
	return c.LDAP
}

// TestProductionProfile: with the production profile of
// certcenter.example.yaml, anonymous clients (ldapsearch -x, go-ldap) see
// the CA entry and its CRL and no person; an approved account over TLS
// sees its organisation's people, and a password bind in clear is refused.
func TestProductionProfile(t *testing.T) {
	prod := productionProfile(t)
	f := newAccessEnv(t, func(l *config.LDAP) {
		l.AnonymousPeople, l.AllowCleartextBind = prod.AnonymousPeople, prod.AllowCleartextBind
		l.HiddenAttributes, l.PublicAttributes = prod.HiddenAttributes, prod.PublicAttributes
	})
	anon := f.dial(t)
	if got := people(t, anon); len(got) != 0 {
		t.Errorf("anonymous sees people: %v", got)
	}
	f.seesCRL(t, anon)
	out, code := f.ldapsearch(t, "-H", "ldap://"+f.ldap, "-b", suffix, "(|(objectClass=inetOrgPerson)(objectClass=pkiCA))", "cn")
	if got := dns(out); code != 0 || len(got) != 1 || !strings.Contains(out, "cn: certcenter Demo Root CA") {
		t.Errorf("anonymous ldapsearch: exit %d, %v: %s", code, got, out)
	}
	if err := f.dial(t).Bind(accountDN("his-a"), "his-a"); !ldap.IsErrorWithCode(err, ldap.LDAPResultConfidentialityRequired) {
		t.Errorf("password bind in clear: %v, want confidentialityRequired", err)
	}
	c := f.dialCert(t, nil, true)
	if err := c.Bind(accountDN("his-a"), "his-a"); err != nil {
		t.Fatal(err)
	}
	if got := people(t, c); len(got) != 2 {
		t.Errorf("his-a over StartTLS sees %v", got)
	}
}
