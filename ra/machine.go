package ra

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// move changes a request's state, recording who did it and why.
func (r *RA) move(rq *store.RARequest, to, actor, action, comment string) error {
	if !canMove(rq.Kind, rq.State, to) {
		return httpapi.Conflict("request %s is %s; it cannot become %s", rq.ID, rq.State, to)
	}
	now := r.now().UTC()
	if rq.CAReceivedAt.IsZero() && reachesCA(to, rq.Kind) {
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
	if isFinal(to) {
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
	case KindKeyRecovery, KindJudicialRecovery:
		return r.cfg.Escrow.RecoveryDeadlineDays
	case KindTokenUnlock:
		return r.cfg.UnlockDeadlineDays
	case KindTokenReplace:
		return r.cfg.ReplaceDeadlineDays
	}
	return r.cfg.IssueDeadlineDays
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

// certSubject is the subject put into the certificate: subjectFor, without
// the ID number unless ra.id_number_in_subject says to include it (the
// certificate is public; the request and subscriber records keep it).
func (r *RA) certSubject(p store.RAPerson, org *store.Org) pkix.Name {
	n := subjectFor(p, org)
	if r.cfg.IDNumberInSubject != "include" {
		n.SerialNumber = ""
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

// Submission is an application as it arrived.
type Submission struct {
	// Body is a CMS SignedData (DER) holding the application, made with a
	// certificate administrator's credential, unless JSON is set.
	Body []byte
	// JSON marks Body as an unsigned JSON application, which only staff may
	// submit (a walk-in applicant's, entered at the desk).
	JSON bool
}

// Submitted is what Submit stored: the application and its requests, each
// in its first state (or already executed, for a cause the policy executes
// at once).
type Submitted struct {
	Application string
	Requests    []*store.RARequest
}

// Submit checks and stores an application from who: the signature and the
// signer's standing, the content, the organisation; then one request per
// item, each at the first level steps.go gives it. Nothing is stored if any
// item is refused.
func (r *RA) Submit(ctx context.Context, c *httpapi.Principal, s Submission) (*Submitted, error) {
	body := s.Body
	now := r.now()
	var signed *Signed
	var err error
	content := body
	switch {
	case s.JSON && c.Admin != nil:
		r.m.refused.WithLabelValues("unsigned").Inc()
		return nil, httpapi.BadRequest("a certificate administrator's application must be a CMS SignedData made with their certificate (Content-Type application/pkcs7-mime)")
	case !s.JSON:
		if signed, err = ParseSigned(body, now); err != nil {
			r.m.refused.WithLabelValues("cms").Inc()
			return nil, toAPI(err)
		}
		content = signed.Content
	}
	app, csrs, err := ParseApplication(content)
	if err != nil {
		r.m.refused.WithLabelValues("content").Inc()
		return nil, toAPI(err)
	}
	if c.Admin != nil && c.Admin.OrgID != app.Org {
		r.m.refused.WithLabelValues("org").Inc()
		return nil, httpapi.Forbidden("you are a certificate administrator of %s, not of %s", c.Admin.OrgID, app.Org)
	}
	if signed != nil {
		if err := r.checkChain(signed, now); err != nil {
			r.m.refused.WithLabelValues("signer").Inc()
			return nil, err
		}
	}
	var out Submitted
	var auto []string
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		out = Submitted{}
		auto = auto[:0]
		org, err := namedOrg(tx, app.Org)
		if err != nil {
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
			if err := r.put(tx, rq); errors.Is(err, store.ErrExists) {
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
			out.Requests = append(out.Requests, rq)
			if rq.State == executes[rq.Kind] {
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
		return nil, toAPI(err)
	}
	for _, rq := range out.Requests {
		r.m.submitted.WithLabelValues(rq.Kind).Inc()
	}
	// Requests for a cause the policy executes at once do not wait for an
	// operator.
	for _, id := range auto {
		rq, err := r.execute(ctx, id, true)
		if err != nil {
			r.log.Error("automatic revocation failed; Repair retries it", "request", id, "err", err)
			continue
		}
		for i := range out.Requests {
			if out.Requests[i].ID == id {
				out.Requests[i] = rq
			}
		}
	}
	return &out, nil
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
	rq.Steps = stepsFor(r.cfg, app.Kind, org)
	first := rq.Steps[0].Name
	comment := "received"
	// A cause the policy executes at once (ra.auto_revoke_causes) skips the
	// levels, if the submitter may have it so (immediate in steps.go).
	if rq.Cause != "" && r.autoRevokes(rq.Cause) && mayExecuteAtOnce(c, app.Kind) {
		first, comment = executes[app.Kind], "received; cause "+rq.Cause+" is revoked at once by policy"
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

// Decision is an approver's verdict on the current step of a request.
type Decision struct {
	Approve bool
	// Comment goes with an approval; a rejection needs a Reason.
	Comment, Reason string
}

// NotExecutedError says a request was approved, and the approval stored,
// but the Authority could not carry it out yet; Repair retries it.
type NotExecutedError struct {
	ID  string
	Err error
}

func (e *NotExecutedError) Error() string {
	return fmt.Sprintf("request %s is approved but the CA could not complete it yet (%v); it is retried automatically", e.ID, e.Err)
}

func (e *NotExecutedError) Unwrap() error { return e.Err }

// Decide applies c's decision to the current step of request id: who may
// decide and what follows are the table's (steps.go). An approval that
// completes the last step executes the request before Decide returns.
func (r *RA) Decide(ctx context.Context, c *httpapi.Principal, id string, d Decision) (*store.RARequest, error) {
	if !d.Approve && strings.TrimSpace(d.Reason) == "" {
		return nil, httpapi.BadRequest("a rejection needs a reason")
	}
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
		if err := mayDecide(c, rq, org); err != nil {
			return err
		}
		now := r.now().UTC()
		if !d.Approve {
			if err := r.move(rq, StateRejected, c.ID(), "reject", d.Reason); err != nil {
				return err
			}
			if err := r.put(tx, rq); err != nil {
				return err
			}
			return log(audit.Record{Actor: c.ID(), Action: "ra.reject", Object: "request/" + rq.ID, Details: map[string]string{"step": rq.Steps[rq.Step].Name, "reason": d.Reason}})
		}
		i := rq.Step
		next := approved(rq, store.RAAction{Actor: c.ID(), Action: "approve", State: rq.Steps[i].Name, Comment: d.Comment, At: now})
		if err := r.move(rq, next, c.ID(), "approve", d.Comment); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		step := rq.Steps[i]
		return log(audit.Record{Actor: c.ID(), Action: "ra.approve", Object: "request/" + rq.ID, Details: map[string]string{
			"step": step.Name, "approvals": fmt.Sprintf("%d/%d", len(step.Approvals), step.Need), "state": rq.State, "comment": d.Comment}})
	})
	if err != nil {
		return nil, toAPI(err)
	}
	if rq.State == executes[rq.Kind] {
		done, err := r.Execute(ctx, rq.ID)
		if err != nil {
			r.log.Error("executing approved request failed; Repair retries it", "request", rq.ID, "err", err)
			return nil, &NotExecutedError{ID: rq.ID, Err: err}
		}
		rq = done
	}
	return rq, nil
}

func (r *RA) readRequest(tx *store.Tx, id string) (*store.RARequest, error) {
	rq, err := tx.RARequest(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.NotFound("no request %s", id)
	}
	return rq, err
}
