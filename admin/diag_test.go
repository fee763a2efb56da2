package admin_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// fakeTargets is a publisher with one target that failed.
type fakeTargets struct{}

func (fakeTargets) Targets(context.Context) ([]admin.TargetState, error) {
	return []admin.TargetState{{Name: "his-1", LastError: "invalid credentials"}}, nil
}
func (fakeTargets) CertStatuses(_ context.Context, serials [][]byte) ([][]admin.TargetCertState, error) {
	out := make([][]admin.TargetCertState, len(serials))
	for i := range serials {
		out[i] = []admin.TargetCertState{{Target: "his-1", State: admin.TargetFailed, Error: "invalid credentials"}}
	}
	return out, nil
}

// The rules of a diagnosis, one per case, over a real store and CA with
// the sources' answers made to order: each inconsistency yields its code,
// and a consistent state none.
func TestDiagnosisRules(t *testing.T) {
	clk := testclock.New(time.Now().UTC().Truncate(time.Second))
	e := testenv.New(t, testenv.Options{Clock: clk})
	valid := e.Issue(testenv.IssueOptions{SubscriberID: "s1"})
	revoked := e.Issue(testenv.IssueOptions{SubscriberID: "s2"})
	rc := e.Revoke(revoked.Serial, ca.ReasonKeyCompromise)
	now := clk.Now()

	// consistent answers for a certificate, which each case then spoils
	ocspOf := func(c *store.Cert) admin.OCSPState {
		o := admin.OCSPState{Source: "store", Status: "good", ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(71 * time.Hour),
			ResponderSerial: "01", CurrentResponderSerial: "01", SignedForUpdate: c.UpdatedAt}
		if c.Status == store.StatusRevoked {
			o.Status, o.RevokedAt = "revoked", c.RevokedAt
		}
		return o
	}
	listings := func(full, delta bool) []admin.CRLListing {
		return []admin.CRLListing{
			{File: "demo.crl", Number: 5, NextUpdate: now.Add(3 * time.Hour), Covers: []bool{true}, Lists: []bool{full}},
			{File: "demo-delta.crl", Delta: true, Number: 6, BaseNumber: 5, NextUpdate: now.Add(3 * time.Hour), Covers: []bool{true}, Lists: []bool{delta}},
		}
	}
	type answers struct {
		ocsp    func(*admin.OCSPState)
		crls    []admin.CRLListing
		dir     admin.DirectoryState
		targets admin.TargetStates
		after   time.Duration // clock moved on before diagnosing
	}
	for _, tc := range []struct {
		name string
		cert *store.Cert
		a    answers
		want []string
	}{
		{"ok/valid", valid.Cert, answers{crls: listings(false, false), dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}}, nil},
		{"ok/revoked within delta_delay, on no CRL yet", rc, answers{crls: listings(false, false)}, nil},
		{"ok/revoked, on both", rc, answers{crls: listings(true, true), after: time.Hour}, nil},
		{"fail/revoked, on neither CRL", rc, answers{crls: listings(false, false), after: 2 * time.Minute}, []string{"crl_missing"}},
		{"fail/revoked, on the delta only", rc, answers{crls: listings(false, true), after: 2 * time.Minute}, []string{"crl_full_missing"}},
		{"fail/valid, on a CRL", valid.Cert, answers{crls: listings(true, false), dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}}, []string{"crl_lists_valid"}},
		{"fail/OCSP good for a revoked one", rc, answers{ocsp: func(o *admin.OCSPState) { o.Status = "good" }, crls: listings(true, true)}, []string{"ocsp_status"}},
		{"fail/OCSP past half-life", valid.Cert, answers{ocsp: func(o *admin.OCSPState) { o.ThisUpdate, o.NextUpdate = now.Add(-50*time.Hour), now.Add(22*time.Hour) },
			crls: listings(false, false), dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}}, []string{"ocsp_half_life"}},
		{"fail/OCSP by a retired responder", valid.Cert, answers{ocsp: func(o *admin.OCSPState) { o.ResponderSerial = "02" },
			crls: listings(false, false), dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}}, []string{"ocsp_responder"}},
		{"fail/OCSP signed for an earlier status", rc, answers{ocsp: func(o *admin.OCSPState) { o.SignedForUpdate = rc.UpdatedAt.Add(-time.Second) },
			crls: listings(true, true)}, []string{"ocsp_outdated"}},
		{"fail/OCSP signed live", valid.Cert, answers{ocsp: func(o *admin.OCSPState) { o.Source = "live" },
			crls: listings(false, false), dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}}, []string{"ocsp_not_presigned"}},
		{"fail/not in the directory", valid.Cert, answers{crls: listings(false, false), dir: admin.DirectoryState{DN: "cn=x", Expected: true}}, []string{"directory_missing"}},
		{"fail/revoked, still in the directory", rc, answers{crls: listings(true, true), dir: admin.DirectoryState{DN: "cn=x", Published: true, Why: "revoked"}}, []string{"directory_unexpected"}},
		{"fail/CRL expired", valid.Cert, answers{crls: []admin.CRLListing{{File: "demo.crl", Number: 5, NextUpdate: now.Add(-time.Second), Covers: []bool{true}, Lists: []bool{false}}},
			dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}}, []string{"crl_expired"}},
		{"fail/target failed", valid.Cert, answers{crls: listings(false, false), dir: admin.DirectoryState{DN: "cn=x", Published: true, Expected: true}, targets: fakeTargets{}}, []string{"target_failed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.a
			d := admin.NewDiagnoser(e.Store, admin.Diagnostics{
				OCSP: func(_ context.Context, c *store.Cert) (admin.OCSPState, error) {
					o := ocspOf(c)
					if a.ocsp != nil {
						a.ocsp(&o)
					}
					return o, nil
				},
				CRLs:       func(context.Context, string, [][]byte) ([]admin.CRLListing, error) { return a.crls, nil },
				Directory:  func(context.Context, *store.Cert) (admin.DirectoryState, error) { return a.dir, nil },
				Targets:    a.targets,
				DeltaDelay: 2 * time.Second,
			}, func() time.Time { return now.Add(a.after) })
			got, err := d.Cert(context.Background(), tc.cert.Serial)
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			for _, p := range got.Problems {
				codes = append(codes, p.Code)
			}
			if !slices.Equal(codes, tc.want) {
				t.Errorf("problems %+v, want codes %v", got.Problems, tc.want)
			}
		})
	}

	t.Run("fail/unknown serial", func(t *testing.T) {
		d := admin.NewDiagnoser(e.Store, admin.Diagnostics{}, nil)
		if _, err := d.Cert(context.Background(), []byte{0x7f, 9, 9}); !errors.Is(err, admin.ErrNoSuchCert) {
			t.Errorf("err = %v", err)
		}
		if _, err := d.Org(context.Background(), "nobody", 10, nil); !errors.Is(err, admin.ErrNoSuchOrg) {
			t.Errorf("org err = %v", err)
		}
	})
	t.Run("ok/no targets wired", func(t *testing.T) {
		d := admin.NewDiagnoser(e.Store, admin.Diagnostics{}, nil)
		ts, err := d.TargetList(context.Background())
		if err != nil || ts.Targets == nil || len(ts.Targets) != 0 || ts.Note == "" {
			t.Errorf("targets %+v, %v", ts, err)
		}
		ts, err = admin.NewDiagnoser(e.Store, admin.Diagnostics{Targets: fakeTargets{}}, nil).TargetList(context.Background())
		if err != nil || len(ts.Targets) != 1 || ts.Targets[0].Name != "his-1" {
			t.Errorf("targets %+v, %v", ts, err)
		}
	})
}

// perSerialTargets answers, per certificate, the state it was given.
type perSerialTargets map[string]admin.TargetCertState

func (perSerialTargets) Targets(context.Context) ([]admin.TargetState, error) { return nil, nil }
func (p perSerialTargets) CertStatuses(_ context.Context, serials [][]byte) ([][]admin.TargetCertState, error) {
	out := make([][]admin.TargetCertState, len(serials))
	for i, s := range serials {
		st, ok := p[hex.EncodeToString(s)]
		if !ok {
			st = admin.TargetCertState{Target: "his", State: admin.TargetPublished}
		}
		out[i] = []admin.TargetCertState{st}
	}
	return out, nil
}

// An organisation's diagnosis counts, per target, what is published,
// pending and failed, and names the pending and failed certificates.
func TestOrgTargetCounts(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	var certs []*store.Cert
	for i := range 4 {
		certs = append(certs, e.Issue(testenv.IssueOptions{SubscriberID: fmt.Sprintf("s%d", i)}).Cert)
	}
	if err := e.Store.Update(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertOrg(&store.Org{ID: "hosp", Name: "Hospital", CreatedAt: time.Now()}); err != nil {
			return err
		}
		for _, c := range certs {
			if err := tx.PutOrgCert("hosp", c.Serial); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fake := perSerialTargets{
		certs[1].SerialHex(): {Target: "his", State: admin.TargetPending},
		certs[2].SerialHex(): {Target: "his", State: admin.TargetFailed, DN: "cn=x", Error: "Object Class Violation"},
		certs[3].SerialHex(): {Target: "his", State: "not-published"},
	}
	d, err := admin.NewDiagnoser(e.Store, admin.Diagnostics{Targets: fake}, nil).Org(context.Background(), "hosp", 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Targets) != 1 {
		t.Fatalf("targets = %+v", d.Targets)
	}
	got := d.Targets[0]
	if got.Target != "his" || got.Published != 1 || got.Pending != 1 || got.Failed != 1 || got.NotPublished != 1 ||
		!slices.Equal(got.PendingSerials, []string{certs[1].SerialHex()}) || len(got.FailedItems) != 1 ||
		got.FailedItems[0].Serial != certs[2].SerialHex() || got.FailedItems[0].Error != "Object Class Violation" {
		t.Errorf("target counts = %+v", got)
	}
	if d.Counts.Problems["target_failed"] != 1 {
		t.Errorf("problems = %v", d.Counts.Problems)
	}
}
