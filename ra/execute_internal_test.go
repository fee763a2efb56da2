package ra

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// scripted wraps the real Authority with a test's hooks around Issue. The
// hooks are set before the test starts anything concurrent.
type scripted struct {
	*ca.Authority
	// before runs first; an error refuses the request without issuing.
	before func(req ca.IssueRequest) error
	// after runs once the issuance committed.
	after func()
}

func (s *scripted) Issue(ctx context.Context, req ca.IssueRequest) (*store.Cert, error) {
	if s.before != nil {
		if err := s.before(req); err != nil {
			return nil, err
		}
	}
	c, err := s.Authority.Issue(ctx, req)
	if err == nil && s.after != nil {
		s.after()
	}
	return c, err
}

// execEnv is an RA on a real store and Authority with one organisation,
// whose officer approves what its administrator submits.
type execEnv struct {
	t       *testing.T
	st      *store.Store
	r       *RA
	auth    *scripted
	org     *store.Org
	admin   *caller
	officer *caller
}

// newExecEnv builds the environment on the shared test environment
// (internal/testenv); now is the RA's clock, caClock the Authority's (nil:
// the environment's own, standing at the present second).
func newExecEnv(t *testing.T, now func() time.Time, caClock *testclock.Clock, tweak func(*Options)) *execEnv {
	t.Helper()
	ctx := context.Background()
	te := testenv.New(t, testenv.Options{Clock: caClock})
	st, a := te.Store, te.CA
	var err error
	e := &execEnv{t: t, st: st, auth: &scripted{Authority: a}, org: &store.Org{ID: "o", Name: "Org"},
		admin:   &caller{Admin: &store.CertAdmin{ID: "adm", OrgID: "o"}},
		officer: &caller{Staff: &store.Staff{ID: "officer", Role: httpapi.RoleRAOfficer}}}
	o := Options{Store: st, Authority: e.auth, Config: config.Default().RA, Now: now}
	if tweak != nil {
		tweak(&o)
	}
	if e.r, err = New(o); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.InsertOrg(e.org) }); err != nil {
		t.Fatal(err)
	}
	return e
}

// submit stores an issue request for one item; edit may change the record
// before it is stored.
func (e *execEnv) submit(item string, edit func(*store.RARequest)) *store.RARequest {
	e.t.Helper()
	app, csrs, err := ParseApplication([]byte(`{"org":"o","items":[` + item + `]}`))
	if err != nil {
		e.t.Fatal(err)
	}
	var rq *store.RARequest
	err = e.r.update(context.Background(), func(tx *store.Tx, log func(audit.Record) error) error {
		if rq, err = e.r.newRequest(tx, app, 0, csrs[0], e.org, &store.RAApplication{ID: "a"}, e.admin, e.r.now()); err != nil {
			return err
		}
		if edit != nil {
			edit(rq)
		}
		return tx.PutRARequest(rq)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rq
}

func (e *execEnv) item(name string, validDays int) string {
	return fmt.Sprintf(`{"name":%q,"valid_days":%d,"csr":%s}`, name, validDays, jsonString(testCSR(e.t)))
}

// approve approves request id as the officer, with ctx as the HTTP
// request's context.
func (e *execEnv) approve(ctx context.Context, id string) (*httptest.ResponseRecorder, error) {
	req := httptest.NewRequest("POST", "/api/v1/requests/"+id+"/approve", nil)
	req.SetPathValue("id", id)
	req = req.WithContext(httpapi.WithPrincipal(ctx, e.officer))
	rec := httptest.NewRecorder()
	return rec, e.r.approve(rec, req)
}

// request reads request id and the certificates issued for its subscriber.
func (e *execEnv) request(id string) (*store.RARequest, []*store.Cert) {
	e.t.Helper()
	var rq *store.RARequest
	var certs []*store.Cert
	err := e.st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		if rq, err = tx.RARequest(id); err != nil {
			return err
		}
		return tx.CertsBySubscriber(rq.SubscriberID, func(c *store.Cert) error { certs = append(certs, c); return nil })
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rq, certs
}

// TestValidityCountsFromIssuance: valid_days counts from the approval that
// issues the certificate, not from submission; approved two days after a
// one-day request was submitted, the certificate still ends one day after
// it begins. Requests stored with the old absolute notAfter are migrated.
func TestValidityCountsFromIssuance(t *testing.T) {
	clock := testclock.New(time.Time{})
	clock.Set(cst("2026-03-02 10:00"))
	e := newExecEnv(t, clock.Now, clock, nil)
	for _, tc := range []struct {
		name      string
		validDays int
		legacy    bool // stored as before: an absolute notAfter, no days
		wantDays  int  // 0: the profile's validity
	}{
		{"one day approved two days later", 1, false, 1},
		{"thirty days approved two days later", 30, false, 30},
		{"legacy absolute notAfter approved two days later", 1, true, 1},
		{"no valid_days keeps the profile validity", 0, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock.Set(cst("2026-03-02 10:00"))
			submitted := clock.Now()
			rq := e.submit(e.item(tc.name, tc.validDays), func(rq *store.RARequest) {
				if tc.legacy {
					rq.ValidDays, rq.NotAfter = 0, submitted.Add(time.Duration(tc.validDays)*24*time.Hour).UTC()
				}
			})
			clock.Set(cst("2026-03-04 10:00"))
			approved := clock.Now()
			rec, err := e.approve(context.Background(), rq.ID)
			if err != nil {
				t.Fatalf("approve: %v", err)
			}
			got, certs := e.request(rq.ID)
			if got.State != StateIssued || len(certs) != 1 {
				t.Fatalf("state %s with %d certificates (%s); want issued with one", got.State, len(certs), rec.Body)
			}
			c, err := x509.ParseCertificate(certs[0].DER)
			if err != nil {
				t.Fatal(err)
			}
			if !c.NotAfter.After(c.NotBefore) {
				t.Fatalf("notAfter %s is not after notBefore %s", c.NotAfter, c.NotBefore)
			}
			if c.NotBefore.After(approved) {
				t.Errorf("notBefore %s is after the approval at %s", c.NotBefore, approved)
			}
			if tc.wantDays == 0 {
				if c.NotAfter.Before(approved.Add(365 * 24 * time.Hour)) {
					t.Errorf("notAfter %s: want the profile's validity (years) from %s", c.NotAfter, approved)
				}
				return
			}
			if want := approved.Add(time.Duration(tc.wantDays) * 24 * time.Hour); !c.NotAfter.Equal(want) {
				t.Errorf("notAfter %s; want %s, %d days after the approval", c.NotAfter.UTC(), want.UTC(), tc.wantDays)
			}
		})
	}
}

// TestCARefusalFailsRequest: when the CA refuses the request (here a
// notAfter that, by the CA's clock ten days ahead of the RA's, is already
// past), the approval answers with the request failed and the CA's reason,
// not a server error, and nothing is left for Repair.
func TestCARefusalFailsRequest(t *testing.T) {
	clock := testclock.New(time.Time{})
	clock.Set(cst("2026-03-02 10:00"))
	e := newExecEnv(t, clock.Now, testclock.New(clock.Now().Add(10*24*time.Hour)), nil)
	rq := e.submit(e.item("skewed", 1), nil)
	rec, err := e.approve(context.Background(), rq.ID)
	if err != nil {
		t.Fatalf("approve = %v; want the request failed with a reason", err)
	}
	body := rec.Body.String()
	if rec.Code != 200 || !strings.Contains(body, `"state":"failed"`) || !strings.Contains(body, "the CA refused the request: "+ca.ErrBadRequest.Error()) {
		t.Fatalf("approve = %d %s; want 200, failed, with the CA's reason", rec.Code, body)
	}
	got, certs := e.request(rq.ID)
	if got.State != StateFailed || got.Open || len(certs) != 0 {
		t.Fatalf("state %s, open %v, %d certificates; want failed, closed, none", got.State, got.Open, len(certs))
	}
}

// TestExecuteSurvivesClientDisconnect: the approver's client going away
// after the Authority committed does not keep the RA from recording the
// issuance; the request does not wait, issuing, for Repair.
func TestExecuteSurvivesClientDisconnect(t *testing.T) {
	e := newExecEnv(t, nil, nil, nil)
	rq := e.submit(e.item("disconnect", 0), nil)
	ctx, disconnect := context.WithCancel(context.Background())
	defer disconnect()
	e.auth.after = disconnect
	rec, err := e.approve(ctx, rq.ID)
	if err != nil {
		t.Fatalf("approve: %v", err)
	}
	got, certs := e.request(rq.ID)
	if got.State != StateIssued || len(got.Serial) == 0 || len(certs) != 1 {
		t.Fatalf("state %s, serial %x, %d certificates (%s); want issued with one", got.State, got.Serial, len(certs), rec.Body)
	}
}

// TestRepairSkipsRequestBeingExecuted: Repair running while the approval
// that completed a request is inside Issue does not issue a second
// certificate for it.
func TestRepairSkipsRequestBeingExecuted(t *testing.T) {
	e := newExecEnv(t, nil, nil, nil)
	rq := e.submit(e.item("race", 0), nil)
	entered, proceed := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	e.auth.before = func(ca.IssueRequest) error {
		if calls.Add(1) == 1 {
			close(entered)
			<-proceed
		}
		return nil
	}
	var wg sync.WaitGroup
	var approveErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, approveErr = e.approve(context.Background(), rq.ID)
	}()
	<-entered
	e.r.Repair(context.Background()) // the approval holds the request
	close(proceed)
	wg.Wait()
	if approveErr != nil {
		t.Fatalf("approve: %v", approveErr)
	}
	got, certs := e.request(rq.ID)
	if got.State != StateIssued || len(certs) != 1 || calls.Load() != 1 {
		t.Fatalf("state %s, %d certificates, %d Issue calls; want issued with one certificate from one call", got.State, len(certs), calls.Load())
	}
	e.r.Repair(context.Background()) // nothing left in flight: a no-op
	if _, certs := e.request(rq.ID); len(certs) != 1 {
		t.Fatalf("%d certificates after a second Repair; want 1", len(certs))
	}
}

// TestClaimWaitsForHolder: an executor that waits gets the claim once the
// holder releases it; one that does not wait is refused while it is held.
func TestClaimWaitsForHolder(t *testing.T) {
	var c claims
	ctx := context.Background()
	release, err := c.acquire(ctx, "req-1", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.acquire(ctx, "req-1", false); err != errClaimed {
		t.Fatalf("second claim without waiting = %v; want errClaimed", err)
	}
	other, err := c.acquire(ctx, "req-2", false)
	if err != nil {
		t.Fatalf("claim of another request = %v", err)
	}
	other()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.acquire(cctx, "req-1", true); err != context.Canceled {
		t.Fatalf("waiting claim with a cancelled context = %v; want context.Canceled", err)
	}
	got := make(chan error, 1)
	go func() {
		rel, err := c.acquire(ctx, "req-1", true)
		if err == nil {
			rel()
		}
		got <- err
	}()
	release()
	if err := <-got; err != nil {
		t.Fatalf("waiting claim = %v", err)
	}
}

// TestRunRepairsOnItsOwnInterval: a request a CA outage left issuing after
// start-up is finished by Run's repair ticker, not a day later by the
// reminder job's.
func TestRunRepairsOnItsOwnInterval(t *testing.T) {
	e := newExecEnv(t, nil, nil, func(o *Options) { o.RepairInterval = 10 * time.Millisecond })
	var outage atomic.Int32
	outage.Store(2) // the approval and at most the start-up Repair fail
	e.auth.before = func(ca.IssueRequest) error {
		if outage.Add(-1) >= 0 {
			return fmt.Errorf("signer unavailable")
		}
		return nil
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	rq := e.submit(e.item("outage", 0), nil)
	if _, err := e.approve(context.Background(), rq.ID); err == nil || !strings.Contains(err.Error(), "retried automatically") {
		t.Fatalf("approve with the CA down = %v; want a retry-later error", err)
	}
	// Wait for the outcome; the bound only keeps a broken ticker from
	// hanging the run, and is far above any repair interval.
	for limit := time.Now().Add(30 * time.Second); time.Now().Before(limit); {
		got, certs := e.request(rq.ID)
		if got.State == StateIssued {
			if len(certs) != 1 {
				t.Fatalf("%d certificates; want 1", len(certs))
			}
			return
		}
		if got.State != StateIssuing {
			t.Fatalf("state %s; want issuing, then issued", got.State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the request is still issuing 30s after the CA came back; Run does not repair on its own interval")
}
