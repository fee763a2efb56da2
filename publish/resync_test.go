package publish

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/ca"
)

// A resync reads the target back (a paged search, pages of 2 here) and
// repairs it: a value changed by hand is replaced, an entry deleted by
// hand is re-added, a revoked certificate put back by hand is removed,
// values someone else put on an entry are left alone; the counts say so,
// and the certificates found missing say "absent at check".
func TestResyncComparesAndRepairs(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	e := newEnvWith(t, t.TempDir(), func(o *Options) { o.ResyncPageSize = 2 }, target("his", ldapd.url()))
	alice, bob, carl := e.issue("alice", "Hospital A"), e.issue("bob", "Hospital B"), e.issue("carl", "Hospital C")
	for i := range 4 { // more entries than one page
		e.issue("extra"+string(rune('a'+i)), "Hospital Z")
	}
	eventually(t, "carl delivered", func() bool {
		return has(ldapd.values(subDN("carl", "Hospital C"), "userCertificate;binary"), carl.DER) == 1
	})
	if _, err := e.ca.Revoke(context.Background(), carl.Serial, ca.ReasonSuperseded); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivered", func() bool {
		return has(ldapd.values(subDN("alice", "Hospital A"), "userCertificate;binary"), alice.DER) == 1 &&
			has(ldapd.values(subDN("bob", "Hospital B"), "userCertificate;binary"), bob.DER) == 1 &&
			len(ldapd.values(subDN("carl", "Hospital C"), "userCertificate;binary")) == 0 && e.state("his").Pending == 0 &&
			// the full CRL re-issued after carl's revocation, and delivered:
			// a resync before that would (rightly) repair the CA entry too
			listsSerial(e.storedCRL("demo.crl"), carl.Serial) &&
			has(ldapd.values(caDN, "certificateRevocationList;binary"), e.storedCRL("demo.crl")) == 1 &&
			has(ldapd.values(caDN, "deltaRevocationList;binary"), e.storedCRL("demo-delta.crl")) == 1
	})
	iss, _ := e.ca.Issuer("demo")
	conn := ldapd.dial()
	// alice's value replaced by hand; bob's entry deleted; carl's revoked
	// certificate put back, beside a certificate that is not ours.
	if err := conn.Modify(ldapNewReplace(subDN("alice", "Hospital A"), "userCertificate;binary", iss.Cert.Raw)); err != nil {
		t.Fatal(err)
	}
	if err := conn.Del(ldap.NewDelRequest(subDN("bob", "Hospital B"), nil)); err != nil {
		t.Fatal(err)
	}
	foreign := foreignCert(t)
	m := ldap.NewModifyRequest(subDN("carl", "Hospital C"), nil)
	m.Replace("userCertificate;binary", []string{string(carl.DER), string(foreign)})
	if err := conn.Modify(m); err != nil {
		t.Fatal(err)
	}
	conn.Close()

	if err := e.pub.Resync(context.Background(), "his", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "resync finished", func() bool { s := e.state("his"); return !s.Resyncing && s.LastResync != nil })
	r := e.state("his").LastResync
	t.Logf("resync report: %+v", *r)
	if r.Replaced != 1 || r.Added != 1 || r.Removed != 1 || r.AbsentCerts != 2 || r.Failed != 0 || r.Entries < 7 || r.Unchanged != r.Entries-2 {
		t.Errorf("resync report = %+v", *r)
	}
	if v := ldapd.values(subDN("alice", "Hospital A"), "userCertificate;binary"); len(v) != 1 || !bytes.Equal(v[0], alice.DER) {
		t.Errorf("alice's entry after resync has %d values", len(v))
	}
	if has(ldapd.values(subDN("bob", "Hospital B"), "userCertificate;binary"), bob.DER) != 1 {
		t.Error("bob's certificate not re-added")
	}
	if v := ldapd.values(subDN("carl", "Hospital C"), "userCertificate;binary"); len(v) != 1 || !bytes.Equal(v[0], foreign) {
		t.Errorf("carl's entry after resync has %d values (want only the foreign one)", len(v))
	}
	for _, c := range [][]byte{alice.Serial, bob.Serial} {
		s := e.certState("his", c)
		if s.AbsentAtCheck.IsZero() || s.State != "published" || s.PublishedAt.Before(s.AbsentAtCheck) {
			t.Errorf("CertStatus after the repair = %+v", s)
		}
	}
	late := e.issue("late", "Hospital L")
	eventually(t, "late delivered", func() bool { return e.certState("his", late.Serial).State == "published" })
	if s := e.certState("his", late.Serial); !s.AbsentAtCheck.IsZero() {
		t.Errorf("a certificate the check did not miss: %+v", s)
	}

	// A second resync finds nothing to do and clears the absent marks.
	if err := e.pub.Resync(context.Background(), "his", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "second resync finished", func() bool {
		s := e.state("his")
		return !s.Resyncing && s.LastResync != nil && s.LastResync.Started.After(r.Started)
	})
	if r2 := e.state("his").LastResync; r2.Replaced != 0 || r2.Added != 0 || r2.Removed != 0 || r2.AbsentCerts != 0 {
		t.Errorf("second resync report = %+v", *r2)
	}
	if s := e.certState("his", bob.Serial); !s.AbsentAtCheck.IsZero() {
		t.Errorf("bob still absent at check after a clean resync: %+v", s)
	}
}

// foreignCert is a certificate certcenter did not issue.
func foreignCert(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "someone else"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// listsSerial says whether the CRL der lists serial.
func listsSerial(der, serial []byte) bool {
	rl, err := x509.ParseRevocationList(der)
	if err != nil {
		return false
	}
	want := new(big.Int).SetBytes(serial)
	for _, r := range rl.RevokedCertificateEntries {
		if r.SerialNumber.Cmp(want) == 0 {
			return true
		}
	}
	return false
}
