package ra

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// flaky wraps the real Authority: it fails before issuing (a CA outage) or
// after the issuance committed (a crash before the RA recorded it).
type flaky struct {
	*ca.Authority
	failBefore, failAfter int
}

func (f *flaky) Issue(ctx context.Context, req ca.IssueRequest) (*store.Cert, error) {
	if f.failBefore > 0 {
		f.failBefore--
		return nil, errors.New("signer unavailable")
	}
	c, err := f.Authority.Issue(ctx, req)
	if err == nil && f.failAfter > 0 {
		f.failAfter--
		return nil, errors.New("connection lost after commit")
	}
	return c, err
}

// TestRepairFinishesInFlightIssuance: an approved request whose issuance
// failed stays issuing and is finished by Repair; a certificate issued
// before the RA could record it is adopted, not issued twice.
func TestRepairFinishesInFlightIssuance(t *testing.T) {
	ctx := context.Background()
	te := testenv.New(t, testenv.Options{})
	st, auth := te.Store, te.CA
	fl := &flaky{Authority: auth}
	r, err := New(Options{Store: st, Authority: fl, Config: config.Default().RA})
	if err != nil {
		t.Fatal(err)
	}
	org := &store.Org{ID: "o", Name: "Org"}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.InsertOrg(org) }); err != nil {
		t.Fatal(err)
	}
	admin := &caller{Admin: &store.CertAdmin{ID: "adm", OrgID: "o"}}
	officer := &caller{Staff: &store.Staff{ID: "officer", Role: httpapi.RoleRAOfficer}}
	for _, tc := range []struct {
		name                  string
		failBefore, failAfter int
	}{
		{"ca outage", 1, 0},
		{"crash after commit", 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, csrs, err := ParseApplication([]byte(`{"org":"o","items":[{"name":"` + tc.name + `","csr":` + jsonString(testCSR(t)) + `}]}`))
			if err != nil {
				t.Fatal(err)
			}
			var rq *store.RARequest
			err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
				if rq, err = r.newRequest(tx, app, 0, csrs[0], org, &store.RAApplication{ID: "a"}, admin, time.Now()); err != nil {
					return err
				}
				return tx.PutRARequest(rq)
			})
			if err != nil {
				t.Fatal(err)
			}
			fl.failBefore, fl.failAfter = tc.failBefore, tc.failAfter
			req := httptest.NewRequest("POST", "/api/v1/requests/"+rq.ID+"/approve", nil)
			req.SetPathValue("id", rq.ID)
			req = req.WithContext(httpapi.WithPrincipal(req.Context(), officer))
			err = r.approve(httptest.NewRecorder(), req)
			// A lost answer is found by the serial recorded before signing,
			// at once; an outage leaves the request to Repair.
			if lost := tc.failAfter > 0; lost && err != nil {
				t.Fatalf("approve with an answer lost after commit = %v; want the certificate found", err)
			} else if !lost && (err == nil || !strings.Contains(err.Error(), "retried automatically")) {
				t.Fatalf("approve with a failing CA = %v; want a retry-later error", err)
			}
			// The request left issuing is in the dirty index, written
			// with it: Repair reads that, not every request.
			if mark := dirtyMark(t, st, rq.ID); (mark != nil) != (tc.failBefore > 0) {
				t.Fatalf("before Repair: dirty mark %x; want one exactly when the issuance is left in flight", mark)
			}
			r.Repair(ctx)
			var got *store.RARequest
			n := 0
			st.View(ctx, func(tx *store.Tx) error {
				got, _ = tx.RARequest(rq.ID)
				return tx.CertsBySubscriber(rq.SubscriberID, func(*store.Cert) error { n++; return nil })
			})
			if got.State != StateIssued || len(got.Serial) == 0 || n != 1 {
				t.Fatalf("after Repair: state %s, serial %x, %d certificates; want issued with exactly one", got.State, got.Serial, n)
			}
			if mark := dirtyMark(t, st, rq.ID); mark != nil {
				t.Fatalf("after Repair: the request is still marked dirty")
			}
		})
	}
	if _, err := r.audit.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func dirtyMark(t *testing.T, st *store.Store, id string) []byte {
	t.Helper()
	var mark []byte
	if err := st.View(context.Background(), func(tx *store.Tx) (err error) {
		mark, err = tx.Dirty(store.DirtyRA, id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return mark
}

// TestRepairWalksAStoreWithoutIndex: a request left issuing by a version
// that kept no dirty index (written straight to the store) is found by the
// first Repair, which walks every request once and writes the index.
func TestRepairWalksAStoreWithoutIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir + "/db"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := New(Options{Store: st, Authority: &flaky{}, Config: config.Default().RA})
	if err != nil {
		t.Fatal(err)
	}
	rq := &store.RARequest{ID: "old", Kind: KindRenew, State: StateDelivered}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.PutRARequest(rq) }); err != nil {
		t.Fatal(err)
	}
	ids, retire, err := r.inFlight(ctx)
	if err != nil || len(ids) != 0 || len(retire) != 1 || retire[0] != "old" {
		t.Fatalf("first inFlight = %v, %v, %v; want the renewal to retire", ids, retire, err)
	}
	if dirtyMark(t, st, "old") == nil {
		t.Fatal("the walk did not mark the pending renewal")
	}
	// Later writes that bypass put are not seen: the index is trusted.
	if err := st.Update(ctx, func(tx *store.Tx) error {
		return tx.PutRARequest(&store.RARequest{ID: "new", Kind: KindRenew, State: StateDelivered})
	}); err != nil {
		t.Fatal(err)
	}
	if _, retire, err = r.inFlight(ctx); err != nil || len(retire) != 1 || retire[0] != "old" {
		t.Fatalf("second inFlight = %v, %v; want only the indexed renewal", retire, err)
	}
}

func jsonString(s string) string {
	return `"` + strings.NewReplacer("\n", `\n`, `"`, `\"`).Replace(s) + `"`
}
