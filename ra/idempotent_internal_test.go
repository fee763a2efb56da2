package ra

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testclock"
	"github.com/certcenter/certcenter/store"
)

// failing wraps an Authority: it refuses before signing (fail > 0 times) or
// loses the answer after the certificate was committed (lose > 0 times).
type failing struct {
	Authority
	fail, lose int
	signed     [][]byte
}

func (f *failing) Issue(ctx context.Context, req ca.IssueRequest) (*store.Cert, error) {
	if f.fail > 0 {
		f.fail--
		return nil, errors.New("signer unavailable")
	}
	c, err := f.Authority.Issue(ctx, req)
	if err == nil {
		f.signed = append(f.signed, c.Serial)
	}
	if err == nil && f.lose > 0 {
		f.lose--
		return nil, errors.New("connection lost after commit")
	}
	return c, err
}

// enrolAdmin issues a cert-admin credential the way createCertAdmin does:
// no subscriber, owned by the organisation.
func (e *execEnv) enrolAdmin(id string) *store.Cert {
	e.t.Helper()
	ctx := context.Background()
	csr, err := parsePEMCSR(testCSR(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	subj := csr.Subject
	subj.CommonName = "Admin " + id
	c, err := e.auth.Authority.Issue(ctx, ca.IssueRequest{CSR: csr, Profile: ca.ProfileCertAdmin, Subject: &subj})
	if err != nil {
		e.t.Fatal(err)
	}
	err = e.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertCertAdmin(&store.CertAdmin{ID: id, OrgID: e.org.ID, Name: id, CertSerials: [][]byte{c.Serial}}); err != nil {
			return err
		}
		return tx.PutOrgCert(e.org.ID, c.Serial)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// submitKind stores a renew or revoke request for one certificate, as
// caller c.
func (e *execEnv) submitKind(c *caller, kind string, item map[string]any) (*store.RARequest, error) {
	e.t.Helper()
	b, _ := json.Marshal(map[string]any{"org": e.org.ID, "kind": kind, "items": []any{item}})
	app, csrs, err := ParseApplication(b)
	if err != nil {
		e.t.Fatal(err)
	}
	var rq *store.RARequest
	err = e.r.update(context.Background(), func(tx *store.Tx, log func(audit.Record) error) error {
		if rq, err = e.r.newRequest(tx, app, 0, csrs[0], e.org, &store.RAApplication{ID: "a"}, c, e.r.now()); err != nil {
			return err
		}
		return tx.PutRARequest(rq)
	})
	return rq, err
}

func (e *execEnv) read(id string) *store.RARequest {
	e.t.Helper()
	var rq *store.RARequest
	if err := e.st.View(context.Background(), func(tx *store.Tx) (err error) { rq, err = tx.RARequest(id); return err }); err != nil {
		e.t.Fatal(err)
	}
	return rq
}

func (e *execEnv) countProfile(profile string) int {
	n := 0
	_ = e.st.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if c.Profile == profile {
				n++
			}
			return nil
		})
	})
	return n
}

// TestRenewAdminCredential: renewing a certificate administrator's own
// credential (a cert-admin certificate without a subscriber) issues exactly
// one new credential, which then authenticates the same administrator; a
// lost answer after the commit is finished by Repair without a second
// signature (issue #11: 35 credentials in 33 minutes).
func TestRenewAdminCredential(t *testing.T) {
	for _, lose := range []int{0, 1} {
		t.Run(fmt.Sprintf("lost answers %d", lose), func(t *testing.T) {
			e := newExecEnv(t, nil, nil, nil)
			f := &failing{Authority: e.auth, lose: lose}
			e.r.auth = f
			old := e.enrolAdmin("cadm")
			rq, err := e.submitKind(e.admin, KindRenew, map[string]any{"serial": old.SerialHex(), "csr": testCSR(t)})
			if err != nil {
				t.Fatal(err)
			}
			// A lost answer is found by the recorded serial at once.
			if _, err = e.approve(context.Background(), rq.ID); err != nil {
				t.Fatalf("approve = %v", err)
			}
			for range 3 {
				e.r.Repair(context.Background())
			}
			got := e.read(rq.ID)
			if got.State != StateIssued || len(got.Serial) == 0 {
				t.Fatalf("renewal is %s (%s), serial %x; want issued", got.State, got.LastError, got.Serial)
			}
			if n := e.countProfile(ca.ProfileCertAdmin); n != 2 || len(f.signed) != 1 {
				t.Fatalf("%d cert-admin certificates, %d signed for the renewal; want the old one and exactly one new", n, len(f.signed))
			}
			_ = e.st.View(context.Background(), func(tx *store.Tx) error {
				adm, err := tx.CertAdminByCert(got.Serial)
				if err != nil || adm.ID != "cadm" {
					t.Errorf("the new credential %x authenticates %v (%v); want administrator cadm", got.Serial, adm, err)
				}
				return nil
			})
		})
	}
}

// TestSerialRecordedBeforeSigning: the serial a request is about to sign
// is in the store before the Authority is called, and the Authority signs
// exactly that serial.
func TestSerialRecordedBeforeSigning(t *testing.T) {
	e := newExecEnv(t, nil, nil, nil)
	rq := e.submit(e.item("Reserved", 0), nil)
	var stored, asked []byte
	e.auth.before = func(req ca.IssueRequest) error {
		stored, asked = e.read(rq.ID).SigningSerial, req.Serial
		return nil
	}
	if _, err := e.approve(context.Background(), rq.ID); err != nil {
		t.Fatal(err)
	}
	got := e.read(rq.ID)
	if len(stored) == 0 || !bytes.Equal(stored, asked) || !bytes.Equal(got.Serial, stored) {
		t.Fatalf("stored before signing %x, asked to sign %x, issued %x; want one serial throughout", stored, asked, got.Serial)
	}
}

// TestFailingRequestStops: a request whose execution keeps failing stops
// after ra.max_attempts and shows as failed with the last error.
func TestFailingRequestStops(t *testing.T) {
	e := newExecEnv(t, nil, nil, nil)
	f := &failing{Authority: e.auth, fail: 1000}
	e.r.auth = f
	rq := e.submit(e.item("Never", 0), nil)
	if _, err := e.approve(context.Background(), rq.ID); err == nil {
		t.Fatal("approve with a failing CA succeeded")
	}
	for range 10 {
		e.r.Repair(context.Background())
	}
	got := e.read(rq.ID)
	max := e.r.cfg.MaxAttempts
	if got.State != StateFailed || got.Attempts != max || !strings.Contains(got.LastError, "signer unavailable") {
		t.Fatalf("after 11 attempts: %s, %d attempts, last error %q; want failed after %d with the error", got.State, got.Attempts, got.LastError, max)
	}
	if used := 1000 - f.fail; used != max {
		t.Errorf("the Authority was called %d times; want %d", used, max)
	}
	v, _ := json.Marshal(e.r.view(got))
	if !strings.Contains(string(v), `"last_error":"`) || !strings.Contains(string(v), `"attempts":`) {
		t.Errorf("request JSON %s does not show the attempts and the error", v)
	}
}

// TestStaffAutoRevocationNeedsCAOperator: an RA officer's unsigned
// revocation for a cause revoked at once waits for a CA operator; a CA
// operator's executes at once (the admin revoke endpoint's rule).
func TestStaffAutoRevocationNeedsCAOperator(t *testing.T) {
	e := newExecEnv(t, nil, nil, nil)
	issue := func(name string) string {
		rq := e.submit(e.item(name, 0), nil)
		if _, err := e.approve(context.Background(), rq.ID); err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(e.read(rq.ID).Serial)
	}
	operator := &caller{Staff: &store.Staff{ID: "op", Role: httpapi.RoleCAOperator}}
	for _, tc := range []struct {
		name string
		who  *caller
		want string
	}{
		{"fail/ra officer waits for a CA operator", e.officer, StateCAReview},
		{"ok/ca operator revokes at once", operator, StateRevoked},
		{"ok/certificate administrator revokes at once", e.admin, StateRevoked},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serial := issue(tc.name)
			rq, err := e.submitKind(tc.who, KindRevoke, map[string]any{"serial": serial, "cause": "key_lost"})
			if err != nil {
				t.Fatal(err)
			}
			if rq.State == StateRevoking {
				if rq, err = e.r.execute(context.Background(), rq.ID, true); err != nil {
					t.Fatal(err)
				}
			}
			if rq.State != tc.want {
				t.Fatalf("revocation by %s is %s; want %s", tc.who.ID(), rq.State, tc.want)
			}
		})
	}
}

// TestQueryExpiresBefore: the certificate query with only expires_before
// (an open start) finds what expires before it, not nothing.
func TestQueryExpiresBefore(t *testing.T) {
	e := newExecEnv(t, nil, nil, nil)
	rq := e.submit(e.item("Soon", 3), nil)
	if _, err := e.approve(context.Background(), rq.ID); err != nil {
		t.Fatal(err)
	}
	c, err := x509ParseStored(context.Background(), e.st, e.read(rq.ID).Serial)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"expires_before=" + c.NotAfter.Add(time.Second).Format(time.RFC3339), 1},
		{"expires_before=" + c.NotAfter.Format(time.RFC3339), 0},
		{"expires_after=" + c.NotAfter.Format(time.RFC3339) + "&expires_before=" + c.NotAfter.Add(time.Second).Format(time.RFC3339), 1},
	} {
		req := httptest.NewRequest("GET", "/api/v1/ra/certificates?"+tc.query, nil)
		req = req.WithContext(httpapi.WithPrincipal(req.Context(), e.officer))
		rec := httptest.NewRecorder()
		if err := e.r.queryCerts(rec, req); err != nil {
			t.Fatal(err)
		}
		var out struct{ Items []httpapi.CertView }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Items) != tc.want {
			t.Errorf("GET ?%s found %d certificates, want %d", tc.query, len(out.Items), tc.want)
		}
	}
}

// TestRenewalRetiresOldCertificate: once renewed, the old certificate is
// superseded: it cannot be renewed again and gets no more reminders; by
// policy it is revoked as superseded when the new one is delivered, or kept
// valid until it expires.
func TestRenewalRetiresOldCertificate(t *testing.T) {
	for _, policy := range []string{"revoke", "keep"} {
		t.Run(policy, func(t *testing.T) {
			e := newExecEnv(t, nil, nil, func(o *Options) { o.Config.SupersedePolicy = policy })
			rq := e.submit(e.item("Renewed "+policy, 20), nil)
			if _, err := e.approve(context.Background(), rq.ID); err != nil {
				t.Fatal(err)
			}
			old := e.read(rq.ID).Serial
			rn, err := e.submitKind(e.admin, KindRenew, map[string]any{"serial": hex.EncodeToString(old), "csr": testCSR(t)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.approve(context.Background(), rn.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.submitKind(e.admin, KindRenew, map[string]any{"serial": hex.EncodeToString(old), "csr": testCSR(t)}); err == nil || !strings.Contains(err.Error(), "renewed") {
				t.Errorf("second renewal of the superseded certificate = %v; want refused", err)
			}
			res, err := e.r.RunReminders(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Checked != 0 {
				t.Errorf("reminder run checked %d certificates; the superseded one must not be reminded", res.Checked)
			}
			// The administrator downloads the new certificate: delivered.
			req := httptest.NewRequest("GET", "/api/v1/requests/"+rn.ID+"/certificate", nil)
			req.SetPathValue("id", rn.ID)
			req = req.WithContext(httpapi.WithPrincipal(req.Context(), e.admin))
			if err := e.r.downloadRequestCert(httptest.NewRecorder(), req); err != nil {
				t.Fatal(err)
			}
			var c *store.Cert
			_ = e.st.View(context.Background(), func(tx *store.Tx) (err error) { c, err = tx.Cert(old); return err })
			switch policy {
			case "revoke":
				if c.Status != store.StatusRevoked || ca.Reason(c.Reason) != ca.ReasonSuperseded {
					t.Errorf("old certificate after delivery: %s reason %s; want revoked as superseded", c.Status, ca.Reason(c.Reason))
				}
			case "keep":
				if c.Status != store.StatusValid {
					t.Errorf("old certificate after delivery: %s; want kept valid", c.Status)
				}
			}
		})
	}
}

// TestDeadlineStartsAtCA: in multi-level mode the superior organisation's
// review does not count against the CA's working days (Art. 9 counts from
// the CA's receipt): the deadline starts when the request reaches CA review.
func TestDeadlineStartsAtCA(t *testing.T) {
	clock := testclock.New(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) // a Monday
	e := newExecEnv(t, clock.Now, nil, nil)
	ctx := context.Background()
	parent := &store.Org{ID: "p", Name: "Parent"}
	child := &store.Org{ID: "c", Name: "Child", ParentID: "p", MultiLevel: true}
	if err := e.st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertOrg(parent); err != nil {
			return err
		}
		return tx.InsertOrg(child)
	}); err != nil {
		t.Fatal(err)
	}
	e.org = child
	e.admin = &caller{Admin: &store.CertAdmin{ID: "cadm", OrgID: "c"}}
	rq := e.submit(e.item("Multi", 0), nil)
	if rq.State != StateSuperior {
		t.Fatalf("request is %s; want superior_review", rq.State)
	}
	// The superior takes three weeks: not the CA's delay.
	clock.Advance(21 * 24 * time.Hour)
	if e.r.overdue(e.read(rq.ID)) {
		t.Fatalf("a request in the superior's review is overdue against the CA's deadline (due %s)", e.read(rq.ID).DueAt)
	}
	superior := &caller{Admin: &store.CertAdmin{ID: "padm", OrgID: "p"}}
	req := httptest.NewRequest("POST", "/api/v1/requests/"+rq.ID+"/approve", nil)
	req.SetPathValue("id", rq.ID)
	req = req.WithContext(httpapi.WithPrincipal(req.Context(), superior))
	if err := e.r.approve(httptest.NewRecorder(), req); err != nil {
		t.Fatal(err)
	}
	got := e.read(rq.ID)
	reached := clock.Now()
	if want := e.r.cal.Deadline(reached, e.r.cfg.IssueDeadlineDays).UTC(); got.State != StateCAReview || !got.DueAt.Equal(want) {
		t.Fatalf("at CA review: due %s; want %d working days from the CA's receipt at %s = %s", got.DueAt, e.r.cfg.IssueDeadlineDays, reached, want)
	}
	if !got.CAReceivedAt.Equal(reached.UTC()) {
		t.Errorf("ca_received_at = %s; want %s", got.CAReceivedAt, reached)
	}
	if e.r.overdue(got) {
		t.Error("overdue at the moment the CA received it")
	}
}

// newRequestFrom parses an application and stores its first request as
// the administrator, the way submit does.
func (e *execEnv) newRequestFrom(content []byte) (*store.RARequest, error) {
	e.t.Helper()
	app, csrs, err := ParseApplication(content)
	if err != nil {
		return nil, err
	}
	var rq *store.RARequest
	err = e.r.update(context.Background(), func(tx *store.Tx, log func(audit.Record) error) error {
		if rq, err = e.r.newRequest(tx, app, 0, csrs[0], e.org, &store.RAApplication{ID: "a"}, e.admin, e.r.now()); err != nil {
			return err
		}
		return tx.PutRARequest(rq)
	})
	return rq, err
}
