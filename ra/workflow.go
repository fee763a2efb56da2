package ra

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// States of a request. A request waits in the state named by its current
// approval step; issuing and revoking are the short moments between the last
// approval and the Authority's commit, which Repair finishes after a crash.
const (
	StateSuperior  = "superior_review"
	StateCAReview  = "ca_review"
	StateIssuing   = "issuing"
	StateIssued    = "issued"
	StateDelivered = "delivered"
	StateRevoking  = "revoking"
	StateRevoked   = "revoked"
	StateRejected  = "rejected"
	StateFailed    = "failed"
)

// transitions lists the states a request may move to from each state; it is
// the state machine, checked on every write.
var transitions = map[string][]string{
	"":             {StateSuperior, StateCAReview, StateRevoking},
	StateSuperior:  {StateSuperior, StateCAReview, StateRejected},
	StateCAReview:  {StateCAReview, StateIssuing, StateRevoking, StateRejected},
	StateIssuing:   {StateIssued, StateFailed},
	StateRevoking:  {StateRevoked, StateFailed},
	StateIssued:    {StateDelivered},
	StateDelivered: {},
	StateRevoked:   {},
	StateRejected:  {},
	StateFailed:    {},
}

// reachesCA says whether a request in state is in the CA's hands.
func reachesCA(state string) bool {
	return state == StateCAReview || state == StateIssuing || state == StateRevoking
}

func isReview(state string) bool { return state == StateSuperior || state == StateCAReview }

// move changes a request's state, recording who did it and why.
func (r *RA) move(rq *store.RARequest, to, actor, action, comment string) error {
	allowed := false
	for _, s := range transitions[rq.State] {
		allowed = allowed || s == to
	}
	if !allowed {
		return httpapi.Conflict("request %s is %s; it cannot become %s", rq.ID, rq.State, to)
	}
	now := r.now().UTC()
	if rq.CAReceivedAt.IsZero() && reachesCA(to) {
		// The CA's working days count from its receipt (SPEC Art. 9), not
		// from the submission a superior organisation reviewed first.
		rq.CAReceivedAt = now
		rq.DueAt = r.cal.Deadline(now, r.deadlineDays(rq.Kind)).UTC()
	}
	rq.History = append(rq.History, store.RAAction{Actor: actor, Action: action, State: to, Comment: comment, At: now})
	if rq.State != to {
		r.m.transitions.WithLabelValues(rq.Kind, to).Inc()
	}
	rq.State = to
	switch to {
	case StateIssued, StateRevoked, StateRejected, StateFailed:
		rq.DoneAt = now
		rq.Open = false
	}
	return nil
}

func (r *RA) deadlineDays(kind string) int {
	switch kind {
	case KindRenew:
		return r.cfg.RenewDeadlineDays
	case KindRevoke:
		return r.cfg.RevokeDeadlineDays
	}
	return r.cfg.IssueDeadlineDays
}

func (r *RA) stepsFor(kind string, org *store.Org) []store.RAStep {
	var steps []store.RAStep
	if kind == KindIssue && org.MultiLevel && org.ParentID != "" {
		steps = append(steps, store.RAStep{Name: StateSuperior, Need: r.cfg.SuperiorApprovals})
	}
	need := r.cfg.CAApprovals
	if kind == KindRevoke {
		need = 1
	}
	return append(steps, store.RAStep{Name: StateCAReview, Need: need})
}

// subjectFor is the DN the RA decides for a person of an organisation.
func subjectFor(p store.RAPerson, org *store.Org) pkix.Name {
	n := pkix.Name{CommonName: p.Name, Organization: []string{org.Name}, Country: []string{"CN"}}
	if p.OrgUnit != "" {
		n.OrganizationalUnit = []string{p.OrgUnit}
	}
	if p.SerialNumber != "" {
		n.SerialNumber = p.SerialNumber
	}
	return n
}

// toAPI maps a bad application to a 400; the CA's and the store's errors
// are mapped where every API error is rendered (httpapi.APIError).
func toAPI(err error) error {
	var ae *httpapi.Error
	if err != nil && !errors.As(err, &ae) && errors.Is(err, errApplication) {
		return httpapi.BadRequest("%v", err)
	}
	return err
}

// ---- submission ----

type submitResponse struct {
	Application string        `json:"application"`
	Requests    []requestView `json:"requests"`
}

func (r *RA) submit(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	c := callerFrom(ctx)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return err
	}
	now := r.now()
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	var signed *Signed
	content := body
	switch {
	case mt == "application/json" && c.Admin != nil:
		r.m.refused.WithLabelValues("unsigned").Inc()
		return httpapi.BadRequest("a certificate administrator's application must be a CMS SignedData made with their certificate (Content-Type application/pkcs7-mime)")
	case mt != "application/json":
		if signed, err = ParseSigned(body, now); err != nil {
			r.m.refused.WithLabelValues("cms").Inc()
			return toAPI(err)
		}
		content = signed.Content
	}
	app, csrs, err := ParseApplication(content)
	if err != nil {
		r.m.refused.WithLabelValues("content").Inc()
		return toAPI(err)
	}
	if c.Admin != nil && c.Admin.OrgID != app.Org {
		r.m.refused.WithLabelValues("org").Inc()
		return httpapi.Forbidden("you are a certificate administrator of %s, not of %s", c.Admin.OrgID, app.Org)
	}
	if signed != nil {
		if err := r.checkChain(signed, now); err != nil {
			r.m.refused.WithLabelValues("signer").Inc()
			return err
		}
	}
	var out submitResponse
	var auto []string
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		out = submitResponse{}
		auto = auto[:0]
		org, err := tx.Org(app.Org)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("organisation %q does not exist", app.Org)
		} else if err != nil {
			return err
		}
		rec := &store.RAApplication{OrgID: org.ID, Kind: app.Kind, SubmittedBy: c.ID(), Content: content, ReceivedAt: now.UTC()}
		if signed != nil {
			if err := r.checkSigner(tx, signed.Signer, org.ID); err != nil {
				return err
			}
			rec.Signed, rec.SignerSerial = body, signed.Signer.SerialNumber.Bytes()
			sum := sha256Sum(body)
			rec.Digest = sum[:]
		}
		n, err := r.st.Next("ra-application")
		if err != nil {
			return err
		}
		rec.ID = fmt.Sprintf("app-%06d", n)
		for i := range app.Items {
			rq, err := r.newRequest(tx, app, i, csrs[i], org, rec, c, now)
			if err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			if err := tx.PutRARequest(rq); errors.Is(err, store.ErrExists) {
				id, _ := tx.OpenRARequest(rq.DuplicateKey)
				return httpapi.Conflict("item %d: %s is already pending as request %s", i, describeDup(rq), id)
			} else if err != nil {
				return err
			}
			if err := log(audit.Record{Actor: c.ID(), Action: "ra.submit", Object: "request/" + rq.ID, Details: map[string]string{
				"application": rec.ID, "kind": rq.Kind, "org": org.ID, "subject": rq.Subject, "target": hex.EncodeToString(rq.TargetSerial), "due_at": dueString(rq.DueAt),
			}}); err != nil {
				return err
			}
			rec.Requests = append(rec.Requests, rq.ID)
			out.Requests = append(out.Requests, r.view(rq))
			if rq.State == StateRevoking {
				auto = append(auto, rq.ID)
			}
		}
		out.Application = rec.ID
		return tx.InsertRAApplication(rec)
	})
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			r.m.refused.WithLabelValues("duplicate").Inc()
		}
		return toAPI(err)
	}
	for i := range out.Requests {
		r.m.submitted.WithLabelValues(out.Requests[i].Kind).Inc()
	}
	// Revocations for a cause the policy executes at once (a lost key) do
	// not wait for an operator.
	for _, id := range auto {
		rq, err := r.execute(ctx, id, true)
		if err != nil {
			r.log.Error("automatic revocation failed; Repair retries it", "request", id, "err", err)
			continue
		}
		for i := range out.Requests {
			if out.Requests[i].ID == id {
				out.Requests[i] = r.view(rq)
			}
		}
	}
	return httpapi.WriteJSON(w, http.StatusCreated, out)
}

// dueString is a deadline for the audit log; none while a superior reviews.
func dueString(t time.Time) string {
	if t.IsZero() {
		return "after the superior's review"
	}
	return t.Format(time.RFC3339)
}

func describeDup(rq *store.RARequest) string {
	if rq.Kind == KindIssue {
		return fmt.Sprintf("a %s certificate for %s", rq.Profile, rq.Subject)
	}
	return fmt.Sprintf("a %s of certificate %x", rq.Kind, rq.TargetSerial)
}

func (r *RA) newRequest(tx *store.Tx, app *Application, i int, csr *x509.CertificateRequest, org *store.Org, rec *store.RAApplication, c *caller, now time.Time) (*store.RARequest, error) {
	it := app.Items[i]
	n, err := r.st.Next("ra-request")
	if err != nil {
		return nil, err
	}
	rq := &store.RARequest{
		ID: fmt.Sprintf("req-%06d", n), Kind: app.Kind, OrgID: org.ID, ApplicationID: rec.ID,
		Person:      store.RAPerson{Name: it.Name, Email: it.Email, UID: it.UID, SerialNumber: it.IDNumber, OrgUnit: it.OrgUnit},
		SubmittedBy: c.ID(), ReceivedAt: now.UTC(), Open: true,
	}
	if csr != nil {
		rq.CSR = csr.Raw
	}
	if rq.Leader, err = r.leaderOf(app, now); err != nil {
		return nil, err
	}
	// The validity is kept as days and turned into notAfter only at
	// issuance: approval may come after submission by more than the days.
	rq.ValidDays = it.ValidDays
	switch app.Kind {
	case KindIssue:
		rq.Profile = it.Profile
		rq.Subject = subjectFor(rq.Person, org).String()
		rq.SubscriberID = "ra-" + rq.ID
		rq.DuplicateKey = "issue\x00" + rq.Profile + "\x00" + rq.Subject
	default:
		serial, err := httpapi.ParseSerial(it.Serial)
		if err != nil {
			return nil, err
		}
		old, err := tx.Cert(serial)
		if errors.Is(err, store.ErrNotFound) {
			return nil, httpapi.BadRequest("no certificate with serial %x", serial)
		} else if err != nil {
			return nil, err
		}
		if owner, err := tx.CertOrg(serial); err != nil || owner != org.ID {
			return nil, httpapi.Forbidden("certificate %x was not issued to organisation %s", serial, org.ID)
		}
		if old.Status == store.StatusRevoked {
			return nil, httpapi.Conflict("certificate %x is already revoked", serial)
		}
		if by, err := tx.SupersededBy(serial); err == nil && app.Kind == KindRenew {
			return nil, httpapi.Conflict("certificate %x was already renewed by %x; renew that one", serial, by)
		}
		rq.TargetSerial, rq.Subject, rq.Profile, rq.SubscriberID = serial, old.Subject, old.Profile, old.SubscriberID
		if sub, err := tx.Subscriber(old.SubscriberID); err == nil {
			rq.Person = store.RAPerson{Name: sub.CommonName, Email: sub.Email, UID: sub.UID, SerialNumber: sub.SerialNumber, OrgUnit: sub.OrgUnit}
		}
		rq.DuplicateKey = app.Kind + "\x00" + hex.EncodeToString(serial)
		if app.Kind == KindRevoke {
			reason, _ := reasonFor(it.Cause)
			rq.Cause, rq.Reason = it.Cause, int(reason)
		}
	}
	rq.Steps = r.stepsFor(app.Kind, org)
	first := rq.Steps[0].Name
	comment := "received"
	// A cause the policy revokes at once needs someone who may revoke: the
	// organisation's certificate administrator (whose application is
	// signed) or a CA operator, the admin revoke endpoint's rule. An RA
	// officer's revocation waits for a CA operator like any other.
	mayRevoke := c.Admin != nil || c.HasRole(httpapi.RoleCAOperator)
	if app.Kind == KindRevoke && r.autoRevokes(rq.Cause) && mayRevoke {
		first, comment = StateRevoking, "received; cause "+rq.Cause+" is revoked at once by policy"
		rq.Step = len(rq.Steps)
	}
	if err := r.move(rq, first, c.ID(), "submit", comment); err != nil {
		return nil, err
	}
	return rq, nil
}

// leaderOf checks and records the leader's approval an application
// carries; issue and renew applications need one if the policy says so.
func (r *RA) leaderOf(app *Application, now time.Time) (*store.RALeader, error) {
	if app.Leader == nil {
		if r.cfg.RequireLeaderApproval && app.Kind != KindRevoke {
			return nil, badApp("the application carries no leader approval (leader: name and date, SPEC Art. 8.2)")
		}
		return nil, nil
	}
	doc, docType, err := app.Leader.check()
	if err != nil {
		return nil, err
	}
	// The date is a calendar day where the CA works: it may not be later
	// than the day of receipt there.
	day, _ := time.ParseInLocation(time.DateOnly, app.Leader.Date, r.cal.Location())
	if day.After(now) {
		return nil, badApp("leader.date %s is in the future", app.Leader.Date)
	}
	l := &store.RALeader{Name: app.Leader.Name, Date: app.Leader.Date}
	if doc != nil {
		sum := sha256Sum(doc)
		l.DocumentSHA256, l.DocumentType, l.DocumentSize = hex.EncodeToString(sum[:]), docType, len(doc)
	}
	return l, nil
}

func (r *RA) autoRevokes(cause string) bool {
	for _, c := range r.cfg.AutoRevokeCauses {
		if c == cause {
			return true
		}
	}
	return false
}

// checkChain verifies that the signer's certificate chains to one of our CAs
// now.
func (r *RA) checkChain(s *Signed, now time.Time) error {
	roots := x509.NewCertPool()
	for _, iss := range r.auth.Issuers() {
		roots.AddCert(iss.Cert)
	}
	inter := x509.NewCertPool()
	for _, c := range s.Chain {
		inter.AddCert(c)
	}
	if _, err := s.Signer.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return httpapi.BadRequest("the signer's certificate %x is not valid from this CA: %v", s.Signer.SerialNumber.Bytes(), err)
	}
	return nil
}

// checkSigner decides whether the signer is, now, a certificate
// administrator of the organisation with an unrevoked administrator
// certificate.
func (r *RA) checkSigner(tx *store.Tx, signer *x509.Certificate, org string) error {
	serial := signer.SerialNumber.Bytes()
	rec, err := tx.Cert(serial)
	if err != nil {
		return httpapi.Forbidden("the signer's certificate %x was not issued by this CA", serial)
	}
	if rec.Status == store.StatusRevoked {
		return httpapi.Forbidden("the signer's certificate %x is revoked", serial)
	}
	if r.now().After(rec.NotAfter) {
		return httpapi.Forbidden("the signer's certificate %x has expired", serial)
	}
	if rec.Profile != ca.ProfileCertAdmin {
		return httpapi.Forbidden("the signer's certificate %x is a %s certificate, not a certificate administrator's", serial, rec.Profile)
	}
	adm, err := tx.CertAdminByCert(serial)
	if err != nil || adm.OrgID != org {
		return httpapi.Forbidden("the signer (certificate %x) is not a certificate administrator of %s", serial, org)
	}
	return nil
}

// ---- approval ----

type decision struct {
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// mayAct checks that the caller may decide the request's current step.
func (r *RA) mayAct(c *caller, rq *store.RARequest, org *store.Org) error {
	switch {
	case rq.State == StateSuperior:
		if c.Admin == nil || org.ParentID == "" || c.Admin.OrgID != org.ParentID {
			return httpapi.Forbidden("only a certificate administrator of the superior organisation %s approves at %s", org.ParentID, rq.State)
		}
	case rq.Kind == KindRevoke:
		if !c.HasRole(httpapi.RoleCAOperator) {
			return httpapi.Forbidden("only a CA operator executes a revocation")
		}
	default:
		if !c.HasRole(httpapi.RoleRAOfficer) {
			return httpapi.Forbidden("only an RA officer reviews for the CA")
		}
	}
	if c.ID() == rq.SubmittedBy {
		return httpapi.Forbidden("the submitter of request %s may not decide it", rq.ID)
	}
	for _, s := range rq.Steps {
		for _, a := range s.Approvals {
			if a.Actor == c.ID() {
				return httpapi.Conflict("%s has already approved request %s; each approver acts once", c.ID(), rq.ID)
			}
		}
	}
	return nil
}

func (r *RA) decide(w http.ResponseWriter, req *http.Request, approve bool) error {
	ctx := req.Context()
	c := callerFrom(ctx)
	var d decision
	if req.ContentLength != 0 {
		if err := httpapi.DecodeJSON(req, &d); err != nil {
			return err
		}
	}
	if !approve && strings.TrimSpace(d.Reason) == "" {
		return httpapi.BadRequest("a rejection needs a reason")
	}
	id := req.PathValue("id")
	var rq *store.RARequest
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		var err error
		if rq, err = r.readRequest(tx, id); err != nil {
			return err
		}
		if !isReview(rq.State) {
			return httpapi.Conflict("request %s is %s; it is not waiting for a decision", rq.ID, rq.State)
		}
		org, err := tx.Org(rq.OrgID)
		if err != nil {
			return err
		}
		if err := r.mayAct(c, rq, org); err != nil {
			return err
		}
		now := r.now().UTC()
		if !approve {
			if err := r.move(rq, StateRejected, c.ID(), "reject", d.Reason); err != nil {
				return err
			}
			if err := tx.PutRARequest(rq); err != nil {
				return err
			}
			return log(audit.Record{Actor: c.ID(), Action: "ra.reject", Object: "request/" + rq.ID, Details: map[string]string{"step": rq.Steps[rq.Step].Name, "reason": d.Reason}})
		}
		step := &rq.Steps[rq.Step]
		step.Approvals = append(step.Approvals, store.RAAction{Actor: c.ID(), Action: "approve", State: step.Name, Comment: d.Comment, At: now})
		next := rq.State
		if len(step.Approvals) >= step.Need {
			rq.Step++
			switch {
			case rq.Step < len(rq.Steps):
				next = rq.Steps[rq.Step].Name
			case rq.Kind == KindRevoke:
				next = StateRevoking
			default:
				next = StateIssuing
			}
		}
		if err := r.move(rq, next, c.ID(), "approve", d.Comment); err != nil {
			return err
		}
		if err := tx.PutRARequest(rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: c.ID(), Action: "ra.approve", Object: "request/" + rq.ID, Details: map[string]string{
			"step": step.Name, "approvals": fmt.Sprintf("%d/%d", len(step.Approvals), step.Need), "state": rq.State, "comment": d.Comment}})
	})
	if err != nil {
		return toAPI(err)
	}
	if rq.State == StateIssuing || rq.State == StateRevoking {
		done, err := r.execute(ctx, rq.ID, true)
		if err != nil {
			r.log.Error("executing approved request failed; Repair retries it", "request", rq.ID, "err", err)
			return httpapi.Errorf(http.StatusServiceUnavailable, "retry_later", "request %s is approved but the CA could not complete it yet (%v); it is retried automatically", rq.ID, err)
		}
		rq = done
	}
	return httpapi.WriteJSON(w, http.StatusOK, r.view(rq))
}

func (r *RA) approve(w http.ResponseWriter, req *http.Request) error { return r.decide(w, req, true) }
func (r *RA) reject(w http.ResponseWriter, req *http.Request) error  { return r.decide(w, req, false) }

func (r *RA) readRequest(tx *store.Tx, id string) (*store.RARequest, error) {
	rq, err := tx.RARequest(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.NotFound("no request %s", id)
	}
	return rq, err
}

// ---- execution ----

// execute carries out an approved request: issue (or renew) through the
// Authority, or revoke. A request left issuing or revoking by a crash or a
// CA error is finished by Repair; the serial to sign is recorded in the
// request before the Authority is called, so a certificate issued whose
// request record was not yet updated is found by that serial and adopted,
// not issued twice. Failures count against ra.max_attempts.
//
// Only the holder of the request's claim executes it; with wait, execute
// waits for another executor to finish and then sees its outcome, without,
// it returns errClaimed. It runs detached from ctx's cancellation, under
// Options.ExecuteTimeout: an approver whose client disconnects after the
// Authority committed must not leave the request issuing until Repair.
func (r *RA) execute(ctx context.Context, id string, wait bool) (*store.RARequest, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.ExecuteTimeout)
	defer cancel()
	release, err := r.executing.acquire(ctx, id, wait)
	if err != nil {
		return nil, fmt.Errorf("claiming request %s: %w", id, err)
	}
	defer release()
	// Read the state only now, under the claim: a previous executor may
	// have finished the request since the caller saw it.
	var rq *store.RARequest
	var org *store.Org
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if rq, err = tx.RARequest(id); err != nil {
			return err
		}
		org, err = tx.Org(rq.OrgID)
		return err
	}); err != nil {
		return nil, err
	}
	switch rq.State {
	case StateIssuing:
		return r.issue(ctx, rq, org)
	case StateRevoking:
		return r.revoke(ctx, rq)
	}
	return rq, nil
}

func (r *RA) issue(ctx context.Context, rq *store.RARequest, org *store.Org) (*store.RARequest, error) {
	var cert *store.Cert
	if len(rq.SigningSerial) == 0 {
		// A request left issuing by a version that did not reserve its
		// serial may have a certificate already: find it by subscriber.
		if rq.SubscriberID != "" {
			var err error
			if cert, err = r.adopt(ctx, rq); err != nil {
				return nil, err
			}
		}
		if cert == nil {
			var err error
			if rq, err = r.reserveSerial(ctx, rq); err != nil {
				return nil, err
			}
			if rq.State != StateIssuing {
				return rq, nil
			}
		}
	}
	if cert == nil {
		// The serial was recorded before any signature: a certificate with
		// it is this request's, signed by an execution whose answer was
		// lost, and is adopted instead of signing again.
		c, err := r.issuedWith(ctx, rq)
		if err != nil {
			return r.fail(ctx, rq, err.Error())
		}
		cert = c
	}
	if cert == nil {
		csr, err := x509.ParseCertificateRequest(rq.CSR)
		if err != nil {
			return r.fail(ctx, rq, fmt.Sprintf("stored CSR does not parse: %v", err))
		}
		subj := subjectFor(rq.Person, org)
		ir := ca.IssueRequest{CSR: csr, Profile: rq.Profile, Subject: &subj, SubscriberID: rq.SubscriberID, NotAfter: r.notAfter(rq), Serial: rq.SigningSerial}
		if rq.Kind == KindRenew {
			// A renewal keeps the subject of the certificate it renews.
			ir.Subject = nil
			if old, err := x509ParseStored(ctx, r.st, rq.TargetSerial); err == nil {
				ir.Subject = &old.Subject
				ir.EmailAddresses = old.EmailAddresses
			}
		}
		if rq.Person.Email != "" && ir.EmailAddresses == nil {
			ir.EmailAddresses = []string{rq.Person.Email}
		}
		cert, err = r.auth.Issue(ctx, ir)
		if errors.Is(err, ca.ErrBadRequest) {
			// The CA refused what it was asked (a CSR it no longer accepts,
			// a validity ending before it begins): retrying cannot help, so
			// the request fails with the CA's reason.
			return r.fail(ctx, rq, "the CA refused the request: "+err.Error())
		}
		if err != nil {
			// The answer may have been lost after the commit.
			if c, lookErr := r.issuedWith(ctx, rq); lookErr == nil && c != nil {
				cert = c
			} else {
				return r.attemptFailed(ctx, rq, fmt.Errorf("issuing for request %s: %w", rq.ID, err))
			}
		}
	}
	notification := ""
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		notification = ""
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		if cur.State != StateIssuing {
			rq = cur
			return nil
		}
		rq = cur
		rq.Serial = cert.Serial
		if err := r.move(rq, StateIssued, "system", "issue", "certificate "+cert.SerialHex()); err != nil {
			return err
		}
		if err := tx.PutOrgCert(rq.OrgID, cert.Serial); err != nil {
			return err
		}
		// A certificate administrator's credential has no subscriber: the
		// administrator record, not a subscriber, holds it.
		if rq.SubscriberID != "" {
			sub := &store.Subscriber{ID: rq.SubscriberID, CommonName: cert.CommonName, Email: rq.Person.Email, UID: rq.Person.UID,
				Organization: org.Name, OrgUnit: rq.Person.OrgUnit, SerialNumber: rq.Person.SerialNumber, CreatedAt: r.now().UTC()}
			if old, err := tx.Subscriber(rq.SubscriberID); err == nil {
				sub.CreatedAt = old.CreatedAt
			}
			if err := tx.PutSubscriber(sub); err != nil {
				return err
			}
		}
		details := map[string]string{"serial": cert.SerialHex(), "subject": cert.Subject, "profile": cert.Profile}
		if rq.Kind == KindRenew {
			if err := r.supersede(tx, rq, cert); err != nil {
				return err
			}
			token, err := r.newDownload(tx, rq, cert)
			if err != nil {
				return err
			}
			if notification, err = r.queueRenewed(tx, rq, cert, token); err != nil {
				return err
			}
			details["renews"] = hex.EncodeToString(rq.TargetSerial)
		}
		if err := tx.PutRARequest(rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "ra.issue", Object: "request/" + rq.ID, Details: details})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("recording issuance of request %s: %w", rq.ID, err))
	}
	if notification != "" && !r.noChannel() {
		if _, err := r.deliverNotification(ctx, notification); err != nil {
			r.log.Error("delivering renewal notification; it is retried from the outbox", "notification", notification, "err", err)
		}
	}
	return rq, nil
}

// supersede records, in the transaction that records the renewal, that the
// renewed certificate replaces the old one; an administrator's renewed
// credential authenticates the same administrator.
func (r *RA) supersede(tx *store.Tx, rq *store.RARequest, cert *store.Cert) error {
	if err := tx.PutSupersededBy(rq.TargetSerial, cert.Serial); err != nil {
		return err
	}
	adm, err := tx.CertAdminByCert(rq.TargetSerial)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	adm.CertSerials = append(adm.CertSerials, cert.Serial)
	return tx.PutCertAdmin(adm)
}

// reserveSerial chooses the serial rq will be signed with and records it in
// its own transaction, before anything is signed.
func (r *RA) reserveSerial(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	serial, err := ca.NewSerial()
	if err != nil {
		return nil, err
	}
	err = r.update(ctx, func(tx *store.Tx, _ func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateIssuing || len(rq.SigningSerial) > 0 {
			return nil
		}
		rq.SigningSerial = serial
		return tx.PutRARequest(rq)
	})
	if err != nil {
		return nil, fmt.Errorf("recording the serial of request %s: %w", rq.ID, err)
	}
	return rq, nil
}

// issuedWith returns the certificate already signed with rq's recorded
// serial, or nil. One that is not the request's (another subscriber or
// profile) is an error: the request must not adopt it.
func (r *RA) issuedWith(ctx context.Context, rq *store.RARequest) (*store.Cert, error) {
	var c *store.Cert
	err := r.st.View(ctx, func(tx *store.Tx) error {
		var err error
		c, err = tx.Cert(rq.SigningSerial)
		if errors.Is(err, store.ErrNotFound) {
			c = nil
			return nil
		}
		return err
	})
	if err != nil || c == nil {
		return nil, err
	}
	if c.SubscriberID != rq.SubscriberID || c.Profile != rq.Profile {
		return nil, fmt.Errorf("serial %x recorded for request %s belongs to another certificate (%s, %s)", rq.SigningSerial, rq.ID, c.Profile, c.SubscriberID)
	}
	return c, nil
}

// attemptFailed counts a failed execution of rq. Below ra.max_attempts it
// returns cause, and Repair tries again; at the bound the request fails,
// with cause as its error, and is returned without an error.
func (r *RA) attemptFailed(ctx context.Context, rq *store.RARequest, cause error) (*store.RARequest, error) {
	failed := false
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		if cur.State != rq.State {
			return nil
		}
		rq = cur
		rq.Attempts++
		rq.LastError = cause.Error()
		if rq.Attempts >= r.cfg.MaxAttempts {
			failed = true
			why := fmt.Sprintf("gave up after %d attempts: %v", rq.Attempts, cause)
			if err := r.move(rq, StateFailed, "system", "fail", why); err != nil {
				return err
			}
			if err := tx.PutRARequest(rq); err != nil {
				return err
			}
			return log(audit.Record{Actor: "system", Action: "ra.fail", Object: "request/" + rq.ID, Details: map[string]string{"reason": why}})
		}
		return tx.PutRARequest(rq)
	})
	if err != nil {
		return nil, fmt.Errorf("%w (and counting the attempt failed: %v)", cause, err)
	}
	if failed {
		r.log.Error("request failed after repeated attempts", "request", rq.ID, "attempts", rq.Attempts, "err", cause)
		return rq, nil
	}
	return nil, cause
}

// notAfter is the end of validity the request asked for, counted from its
// issuance now; zero leaves the profile's validity.
func (r *RA) notAfter(rq *store.RARequest) time.Time {
	days := rq.ValidDays
	if days == 0 && !rq.NotAfter.IsZero() {
		// A request stored before ValidDays carries the absolute notAfter
		// its submission computed; recover the days it asked for.
		days = max(1, int(math.Round(rq.NotAfter.Sub(rq.ReceivedAt).Hours()/24)))
	}
	if days <= 0 {
		return time.Time{}
	}
	return r.now().Add(time.Duration(days) * 24 * time.Hour).UTC()
}

// adopt finds a certificate issued for rq before a crash kept the request
// from recording it: same subscriber and profile, issued after the request
// entered issuing, and claimed by no organisation yet.
func (r *RA) adopt(ctx context.Context, rq *store.RARequest) (*store.Cert, error) {
	since := rq.History[len(rq.History)-1].At.Add(-time.Second)
	var found *store.Cert
	err := r.st.View(ctx, func(tx *store.Tx) error {
		return tx.CertsBySubscriber(rq.SubscriberID, func(c *store.Cert) error {
			if c.Profile != rq.Profile || c.IssuedAt.Before(since) {
				return nil
			}
			if _, err := tx.CertOrg(c.Serial); err == nil {
				return nil
			}
			found = c
			return nil
		})
	})
	return found, err
}

func (r *RA) fail(ctx context.Context, rq *store.RARequest, why string) (*store.RARequest, error) {
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		rq.LastError = why
		if err := r.move(rq, StateFailed, "system", "fail", why); err != nil {
			return err
		}
		if err := tx.PutRARequest(rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "ra.fail", Object: "request/" + rq.ID, Details: map[string]string{"reason": why}})
	})
	return rq, err
}

func (r *RA) revoke(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	note := ""
	_, err := r.auth.Revoke(ctx, rq.TargetSerial, ca.Reason(rq.Reason))
	switch {
	case errors.Is(err, store.ErrAlreadyRevoked):
		note = " (it was already revoked)"
	case errors.Is(err, ca.ErrNotFound), errors.Is(err, ca.ErrBadRequest):
		return r.fail(ctx, rq, err.Error())
	case err != nil:
		return r.attemptFailed(ctx, rq, fmt.Errorf("revoking for request %s: %w", rq.ID, err))
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateRevoking {
			return nil
		}
		reason := ca.Reason(rq.Reason).String()
		if err := r.move(rq, StateRevoked, "system", "revoke", "certificate "+hex.EncodeToString(rq.TargetSerial)+" revoked: "+reason+note); err != nil {
			return err
		}
		if err := tx.PutRARequest(rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "cert.revoke", Object: "cert/" + hex.EncodeToString(rq.TargetSerial), Details: map[string]string{
			"request": rq.ID, "cause": rq.Cause, "reason": reason}})
	})
	if err != nil {
		return nil, fmt.Errorf("recording revocation of request %s: %w", rq.ID, err)
	}
	return rq, nil
}

// Repair finishes requests a crash, a CA outage or a failed write left
// issuing or revoking. It skips a request another executor (the approval
// that completed it) is carrying out right now.
func (r *RA) Repair(ctx context.Context) {
	var ids, retire []string
	err := r.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachRARequest(func(rq *store.RARequest) error {
			if rq.State == StateIssuing || rq.State == StateRevoking {
				ids = append(ids, rq.ID)
			}
			if r.mustRetire(rq) {
				retire = append(retire, rq.ID)
			}
			return nil
		})
	})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("finding requests left in flight", "err", err)
		}
		return
	}
	for _, id := range retire {
		r.retire(ctx, id)
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		rq, err := r.execute(ctx, id, false)
		switch {
		case errors.Is(err, errClaimed):
			r.log.Debug("request is being executed; not repairing it", "request", id)
		case err != nil:
			r.log.Error("repairing request", "request", id, "err", err)
		default:
			r.log.Info("finished request left in flight", "request", id, "state", rq.State)
		}
	}
}

// mustRetire says whether rq is a delivered renewal whose old certificate
// the policy revokes and that is not revoked yet.
func (r *RA) mustRetire(rq *store.RARequest) bool {
	return rq.Kind == KindRenew && rq.State == StateDelivered && !rq.OldRevoked && r.cfg.SupersedePolicy == "revoke"
}

// retire revokes, as superseded, the certificate a delivered renewal
// replaced. A failure leaves the request to Repair.
func (r *RA) retire(ctx context.Context, id string) {
	var rq *store.RARequest
	if err := r.st.View(ctx, func(tx *store.Tx) (err error) { rq, err = tx.RARequest(id); return err }); err != nil {
		r.log.Error("reading renewal to retire its old certificate", "request", id, "err", err)
		return
	}
	if !r.mustRetire(rq) {
		return
	}
	_, err := r.auth.Revoke(ctx, rq.TargetSerial, ca.ReasonSuperseded)
	if err != nil && !errors.Is(err, store.ErrAlreadyRevoked) && !errors.Is(err, ca.ErrNotFound) {
		r.log.Error("revoking superseded certificate; Repair retries", "request", id, "serial", hex.EncodeToString(rq.TargetSerial), "err", err)
		return
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(id)
		if err != nil {
			return err
		}
		if cur.OldRevoked {
			return nil
		}
		cur.OldRevoked = true
		if err := tx.PutRARequest(cur); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "cert.revoke", Object: "cert/" + hex.EncodeToString(cur.TargetSerial), Details: map[string]string{
			"request": cur.ID, "reason": ca.ReasonSuperseded.String(), "superseded_by": hex.EncodeToString(cur.Serial)}})
	})
	if err != nil {
		r.log.Error("recording the superseded certificate's revocation", "request", id, "err", err)
	}
}

// ---- downloads ----

type download struct {
	Serial  string    `json:"serial"`
	Request string    `json:"request"`
	Expires time.Time `json:"expires"`
}

const nsDownload = "ra-download"

func (r *RA) newDownload(tx *store.Tx, rq *store.RARequest, c *store.Cert) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	v, _ := json.Marshal(download{Serial: c.SerialHex(), Request: rq.ID, Expires: r.now().Add(r.cfg.DownloadTTL.D()).UTC()})
	return token, tx.PutBlob(nsDownload, token, v)
}

func (r *RA) downloadURL(token string) string {
	return strings.TrimRight(r.cfg.DownloadBaseURL, "/") + "/api/v1/downloads/" + token
}

func x509ParseStored(ctx context.Context, st *store.Store, serial []byte) (*x509.Certificate, error) {
	var der []byte
	err := st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.Cert(serial)
		if err == nil {
			der = c.DER
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
