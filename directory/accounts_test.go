package directory

import (
	"context"
	"crypto/x509/pkix"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

func anonymousNone(l *config.LDAP) { l.AnonymousPeople = config.AnonymousPeopleNone }

// TestAccessByOrganisationID: access follows the organisation's ID that
// the RA recorded for the certificates, not its name: a renamed
// organisation keeps its people, and an organisation with the name of
// another one sees only its own.
func TestAccessByOrganisationID(t *testing.T) {
	f := newAccessEnv(t, anonymousNone)
	ctx := context.Background()
	// Clinic-0 of a second organisation called "Hospital B" (hosp-c),
	// filed under the same o=Hospital B as hosp-b's people
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := bcrypt.GenerateFromPassword([]byte("his-c"), bcrypt.MinCost)
	if _, err := f.auth.IssueBatchWith(ctx, []ca.IssueRequest{{CA: "demo", Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
		SubscriberID: "Clinic-0", Subject: &pkix.Name{CommonName: "Clinic-0", Organization: []string{"Hospital B"}}}},
		func(tx *store.Tx, certs []*store.Cert) error {
			if err := tx.InsertOrg(&store.Org{ID: "hosp-c", Name: "Hospital B"}); err != nil {
				return err
			}
			if err := tx.PutSubscriber(&store.Subscriber{ID: "Clinic-0", CommonName: "Clinic-0", UID: "Clinic-0", Organization: "Hospital B", OrgUnit: "ward", CreatedAt: time.Now()}); err != nil {
				return err
			}
			if err := tx.PutOrgCert("hosp-c", certs[0].Serial); err != nil {
				return err
			}
			return tx.InsertDirAccount(&store.DirAccount{ID: "his-c", DN: accountDN("his-c"), PasswordHash: string(h), Orgs: []string{"hosp-c"},
				ExpiresAt: time.Now().Add(time.Hour), ApprovedBy: "staff:test", CreatedAt: time.Now()})
		}); err != nil {
		t.Fatal(err)
	}
	if got := people(t, f.bound(t, "his-c")); len(got) != 1 || got[0] != hospitalDN("Hospital B", "Clinic-0") {
		t.Errorf("his-c (hosp-c, named Hospital B) sees %v, want only Clinic-0", got)
	}
	if got := people(t, f.bound(t, "his-b2")); len(got) != 2 || strings.Contains(strings.Join(got, ";"), "Clinic") {
		t.Errorf("his-b2 (hosp-b, named Hospital B) sees %v, want its two people, not Clinic-0", got)
	}
	// both see the container they share by name
	for _, id := range []string{"his-c", "his-b2"} {
		if _, err := f.bound(t, id).Search(ldap.NewSearchRequest("o=Hospital B,"+suffix, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err != nil {
			t.Errorf("%s reads o=Hospital B: %v", id, err)
		}
	}

	// hosp-a renamed: its account keeps its people, on a connection bound
	// before and on one bound after
	before := f.bound(t, "his-a")
	if err := f.st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutOrg(&store.Org{ID: "hosp-a", Name: "Hospital A (Provincial)"})
	}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*ldap.Conn{"bound before": before, "bound after": f.bound(t, "his-a")} {
		if got := people(t, c); len(got) != 2 || !strings.Contains(got[0], "HospitalA-") || !strings.Contains(got[1], "HospitalA-") {
			t.Errorf("his-a %s the rename sees %v, want its two people", name, got)
		}
	}
}

// TestAccountWithdrawnWhileBound: an account revoked while a connection is
// bound as it loses access at that connection's next operation, as does
// one whose expiry passes; the connection is anonymous from then on.
func TestAccountWithdrawnWhileBound(t *testing.T) {
	var skew atomic.Int64
	f := newAccessEnv(t, anonymousNone, func(o *Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	a, full := f.bound(t, "his-a"), f.bound(t, "his-full")
	if got := people(t, a); len(got) != 2 {
		t.Fatalf("his-a sees %v before", got)
	}
	if got := people(t, full); len(got) != 2 {
		t.Fatalf("his-full sees %v before", got)
	}

	// revoked through the store, as the admin API and the RA do
	if err := f.st.Update(context.Background(), func(tx *store.Tx) error {
		acct, err := tx.DirAccount("his-a")
		if err != nil {
			return err
		}
		acct.Revoked, acct.RevokedAt, acct.RevokedBy = true, time.Now(), "staff:test"
		return tx.PutDirAccount(acct)
	}); err != nil {
		t.Fatal(err)
	}
	if got := people(t, a); len(got) != 0 {
		t.Errorf("his-a after its revocation sees %v", got)
	}
	if who, err := a.WhoAmI(nil); err != nil || who.AuthzID != "" {
		t.Errorf("whoami after the revocation: %v %q, want anonymous", err, who.AuthzID)
	}
	if _, err := a.Compare(hospitalDN("Hospital A", "HospitalA-0"), "uid", "HospitalA-0"); !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("compare after the revocation: %v, want noSuchObject", err)
	}
	f.seesCRL(t, a)
	// another account's change re-checks his-full, which keeps its access
	if got := people(t, full); len(got) != 2 {
		t.Errorf("his-full after his-a's revocation sees %v", got)
	}

	// his-full expires in an hour: past it, its next search sees no one
	skew.Store(int64(2 * time.Hour))
	if got := people(t, full); len(got) != 0 {
		t.Errorf("his-full after its expiry sees %v", got)
	}
	if got := counter(t, f.d.metrics.binds.WithLabelValues("his-a", "withdrawn")) + counter(t, f.d.metrics.binds.WithLabelValues("his-full", "withdrawn")); got != 2 {
		t.Errorf("withdrawn bindings counted %v, want 2", got)
	}
}

// TestAccountIndex: with many accounts a bind reads the index, which is
// loaded once and then follows each change; it never scans the accounts.
func TestAccountIndex(t *testing.T) {
	f := newAccessEnv(t, anonymousNone)
	const n = 5000
	h, _ := bcrypt.GenerateFromPassword([]byte("many"), bcrypt.MinCost)
	for from := 0; from < n; from += 1000 {
		if err := f.st.Update(context.Background(), func(tx *store.Tx) error {
			for i := from; i < from+1000; i++ {
				id := fmt.Sprintf("sys-%05d", i)
				if err := tx.InsertDirAccount(&store.DirAccount{ID: id, DN: accountDN(id), PasswordHash: string(h), Orgs: []string{"hosp-a"},
					ExpiresAt: time.Now().Add(time.Hour), ApprovedBy: "staff:test", CreatedAt: time.Now()}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		id := fmt.Sprintf("sys-%05d", i*211)
		c := f.dial(t)
		if err := c.Bind(accountDN(id), "many"); err != nil {
			t.Fatalf("bind %s: %v", id, err)
		}
		if got := people(t, c); len(got) != 2 {
			t.Fatalf("%s sees %v", id, got)
		}
	}
	// a new account binds at once; a revoked one no more
	if err := f.st.Update(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertDirAccount(&store.DirAccount{ID: "sys-new", DN: accountDN("sys-new"), PasswordHash: string(h), Orgs: []string{"hosp-b"},
			ExpiresAt: time.Now().Add(time.Hour), ApprovedBy: "staff:test", CreatedAt: time.Now()}); err != nil {
			return err
		}
		a, err := tx.DirAccount("sys-00211")
		if err != nil {
			return err
		}
		a.Revoked = true
		return tx.PutDirAccount(a)
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.dial(t).Bind(accountDN("sys-new"), "many"); err != nil {
		t.Errorf("bind of an account added after the index was loaded: %v", err)
	}
	if err := f.dial(t).Bind(accountDN("sys-00211"), "many"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Errorf("bind of an account revoked after the index was loaded: %v", err)
	}
	stored := 0
	_ = f.st.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachDirAccount(func(*store.DirAccount) error { stored++; return nil })
	})
	f.d.acctIdx.mu.Lock()
	loads, indexed := f.d.acctIdx.loads, len(f.d.acctIdx.byDN)
	f.d.acctIdx.mu.Unlock()
	if loads != 1 || indexed != stored || stored < n {
		t.Errorf("index loaded %d times holding %d DNs, want once and the %d stored", loads, indexed, stored)
	}
}
