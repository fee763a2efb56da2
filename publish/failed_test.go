package publish

import (
	"context"
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

func (e *env) issueSubject(s pkix.Name) *store.Cert {
	e.t.Helper()
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.ca.Issue(context.Background(), ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(), Subject: &s})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) certState(name string, serial []byte) TargetCertState {
	e.t.Helper()
	st, err := e.pub.CertStatus(context.Background(), serial)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range st {
		if s.Target == name {
			return s
		}
	}
	e.t.Fatalf("no target %s in %+v", name, st)
	return TargetCertState{}
}

// A certificate whose DN the mapping cannot build is recorded as failed
// (durably, with its error) while the cursor moves on; a configuration
// that can map it delivers it on the retry after restart.
func TestUnmappableRecordDoesNotBlock(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	dir := t.TempDir()
	tg := target("his", ldapd.url())
	tg.SubscriberDN = "cn={cn},ou={ou},o={o}"
	e := newEnv(t, dir, tg)
	eventually(t, "initial state delivered", func() bool { return e.state("his").Initialised })
	bad := e.issueSubject(pkix.Name{CommonName: "nooou", Organization: []string{"Hospital X"}})
	good := e.issueSubject(pkix.Name{CommonName: "withou", Organization: []string{"Hospital X"}, OrganizationalUnit: []string{"Cardiology"}})
	eventually(t, "the mappable certificate delivered after the unmappable one", func() bool {
		return has(ldapd.values("cn=withou,ou=Cardiology,o=Hospital X,"+testBase, "userCertificate;binary"), good.DER) == 1
	})
	eventually(t, "the unmappable certificate failed in CertStatus", func() bool { return e.certState("his", bad.Serial).State == "failed" })
	cs := e.certState("his", bad.Serial)
	if !strings.Contains(cs.Error, "needs ou") || cs.Tries < 1 || cs.NextRetry.IsZero() {
		t.Errorf("CertStatus of the unmappable certificate = %+v", cs)
	}
	s := e.state("his")
	if s.Failed != 1 || len(s.FailedRecords) != 1 || s.FailedRecords[0].Key != "cert/"+bad.SerialHex() ||
		!strings.Contains(s.LastError, "cert/"+bad.SerialHex()) || s.Pending != 0 || !s.Connected {
		t.Errorf("target state = %+v", s)
	}
	if st := e.certState("his", good.Serial); st.State != "published" {
		t.Errorf("CertStatus of the good certificate = %+v", st)
	}
	// Retries keep failing with backoff; the count of tries grows.
	eventually(t, "retried", func() bool { return e.certState("his", bad.Serial).Tries >= 2 })

	// The operator fixes the mapping; the failed record is durable and
	// delivered by the next run.
	e.close()
	tg.SubscriberDN = "by_org"
	e = newEnv(t, dir, tg)
	eventually(t, "the fixed record delivered on retry", func() bool {
		return has(ldapd.values(subDN("nooou", "Hospital X"), "userCertificate;binary"), bad.DER) == 1
	})
	eventually(t, "the failed set emptied", func() bool {
		return e.state("his").Failed == 0 && e.certState("his", bad.Serial).State == "published"
	})
}

// An entry the target's schema refuses fails alone: later certificates
// are delivered, and once the entry is fixed on the target the retry
// delivers it.
func TestSchemaViolationDoesNotBlock(t *testing.T) {
	t.Setenv("CERTCENTER_TEST_PUBLISH_PW", testRootPW)
	ldapd := startSlapd(t)
	e := newEnv(t, t.TempDir(), target("his", ldapd.url()))
	eventually(t, "initial state delivered", func() bool { return e.state("his").Initialised })
	// Someone made eve's entry by hand with a class that allows no
	// certificate.
	conn := ldapd.dial()
	for _, a := range []*ldap.AddRequest{
		addReq("o=Hospital E,"+testBase, "organization", "o", "Hospital E"),
		addReq(subDN("eve", "Hospital E"), "organizationalRole", "cn", "eve"),
	} {
		if err := conn.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	bad := e.issue("eve", "Hospital E")
	good := e.issue("frank", "Hospital F")
	eventually(t, "the later certificate delivered", func() bool {
		return has(ldapd.values(subDN("frank", "Hospital F"), "userCertificate;binary"), good.DER) == 1
	})
	eventually(t, "the refused entry failed", func() bool { return e.certState("his", bad.Serial).State == "failed" })
	cs := e.certState("his", bad.Serial)
	if !strings.Contains(cs.Error, "Object Class Violation") || cs.DN != subDN("eve", "Hospital E") {
		t.Errorf("CertStatus = %+v", cs)
	}
	if all, err := e.pub.CertStatuses(context.Background(), [][]byte{bad.Serial, good.Serial}); err != nil ||
		len(all) != 2 || all[0][0].State != "failed" || all[1][0].State != "published" {
		t.Errorf("CertStatuses = %+v, %v", all, err)
	}
	if s := e.state("his"); s.Failed != 1 || s.FailedRecords[0].DN != subDN("eve", "Hospital E") || s.Failures != 0 {
		t.Errorf("target state = %+v", s)
	}
	// The directory's operator fixes the entry.
	m := ldap.NewModifyRequest(subDN("eve", "Hospital E"), nil)
	m.Add("objectClass", []string{"pkiUser"})
	if err := conn.Modify(m); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	eventually(t, "the refused entry delivered on retry", func() bool {
		return has(ldapd.values(subDN("eve", "Hospital E"), "userCertificate;binary"), bad.DER) == 1
	})
	eventually(t, "the failed set emptied", func() bool {
		return e.state("his").Failed == 0 && e.certState("his", bad.Serial).State == "published"
	})
}
