package desk

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// EscalationRequest is the escalation form (SPEC Art. 24): the engineer who
// cannot solve the problem passes it on with product, user, symptom and a
// time limit.
type EscalationRequest struct {
	Product   string    `json:"product"`
	User      string    `json:"user"`
	Symptom   string    `json:"symptom"`
	TimeLimit time.Time `json:"time_limit"`
	// ToGroup defaults to the next group in escalation order.
	ToGroup string `json:"to_group,omitempty"`
}

// Escalate files an escalation form and hands the ticket to the next
// group, which has desk.handover to take it.
func (d *Desk) Escalate(ctx context.Context, p *httpapi.Principal, id string, e EscalationRequest) (*store.Ticket, error) {
	if e.Product == "" || e.User == "" || e.Symptom == "" || e.TimeLimit.IsZero() {
		return nil, httpapi.BadRequest("an escalation form needs product, user, symptom and time_limit")
	}
	for _, f := range []struct{ n, v string }{{"product", e.Product}, {"user", e.User}, {"symptom", e.Symptom}} {
		if err := checkText(f.n, f.v, 2000); err != nil {
			return nil, err
		}
	}
	return d.mutate(ctx, id, p.ID(), "escalate", map[string]string{"to_group": e.ToGroup}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if !t.Open {
			return httpapi.Conflict("ticket %s is %s: reopen it to escalate", t.ID, t.State)
		}
		if !e.TimeLimit.After(now) {
			return httpapi.BadRequest("time_limit %s has passed", e.TimeLimit.Format(time.RFC3339))
		}
		cur := slices.Index(groupOrder, t.Group)
		to := e.ToGroup
		if to == "" {
			if cur == len(groupOrder)-1 {
				return httpapi.Conflict("ticket %s is with %s, the last group", t.ID, t.Group)
			}
			to = groupOrder[cur+1]
		}
		if i := slices.Index(groupOrder, to); i <= cur {
			return httpapi.BadRequest("to_group %q is not a group after %s in %v", to, t.Group, groupOrder)
		}
		if t.State == StateWaiting {
			d.resumeClocks(t, now)
		}
		from := t.Group
		t.Escalations = append(t.Escalations, store.TicketEscalation{N: len(t.Escalations) + 1, From: from, To: to,
			Product: e.Product, User: e.User, Symptom: e.Symptom, TimeLimit: e.TimeLimit, By: p.ID(), At: now})
		d.handOver(t, now, to)
		prev := t.State
		t.State, t.Assignee = StateAssigned, ""
		event(t, now, p.ID(), "escalate", prev, StateAssigned, from+" → "+to)
		return nil
	})
}

// NoteRequest is a progress note of an escalation.
type NoteRequest struct {
	Note             string `json:"note"`
	CustomerInformed bool   `json:"customer_informed,omitempty"`
}

// EscalationNote adds a progress note to escalation n.
func (d *Desk) EscalationNote(ctx context.Context, p *httpapi.Principal, id string, n int, r NoteRequest) (*store.Ticket, error) {
	if r.Note == "" {
		return nil, httpapi.BadRequest("note is required")
	}
	if err := checkText("note", r.Note, 10000); err != nil {
		return nil, err
	}
	return d.mutate(ctx, id, p.ID(), "escalation_note", map[string]string{"escalation": strconv.Itoa(n)}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if n < 1 || n > len(t.Escalations) {
			return httpapi.NotFound("ticket %s has no escalation %d", t.ID, n)
		}
		e := &t.Escalations[n-1]
		e.Notes = append(e.Notes, store.TicketProgressNote{At: now, By: p.ID(), Note: r.Note, CustomerInformed: r.CustomerInformed})
		event(t, now, p.ID(), "escalation_note", "", "", fmt.Sprintf("escalation %d; customer informed: %v", n, r.CustomerInformed))
		return nil
	})
}

// FeedbackRequest is a major-quality feedback form with a deadline.
type FeedbackRequest struct {
	Problem  string    `json:"problem"`
	Deadline time.Time `json:"deadline"`
}

// QualityFeedback files a major-quality feedback form; its deadline is a
// clock of the ticket until a result is recorded.
func (d *Desk) QualityFeedback(ctx context.Context, p *httpapi.Principal, id string, f FeedbackRequest) (*store.Ticket, error) {
	if f.Problem == "" || f.Deadline.IsZero() {
		return nil, httpapi.BadRequest("a quality feedback form needs problem and deadline")
	}
	if err := checkText("problem", f.Problem, 10000); err != nil {
		return nil, err
	}
	return d.mutate(ctx, id, p.ID(), "quality_feedback", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if !f.Deadline.After(now) {
			return httpapi.BadRequest("deadline %s has passed", f.Deadline.Format(time.RFC3339))
		}
		t.Feedback = append(t.Feedback, store.TicketFeedback{N: len(t.Feedback) + 1, Problem: f.Problem, Deadline: f.Deadline, By: p.ID(), At: now})
		event(t, now, p.ID(), "quality_feedback", "", "", "form "+strconv.Itoa(len(t.Feedback))+" due "+f.Deadline.UTC().Format(time.RFC3339))
		return nil
	})
}

// ResultRequest records a result (of a feedback form or a complaint).
type ResultRequest struct {
	Result     string `json:"result"`
	FedBackVia string `json:"fed_back_via,omitempty"`
}

// FeedbackResult records the result of feedback form n.
func (d *Desk) FeedbackResult(ctx context.Context, p *httpapi.Principal, id string, n int, r ResultRequest) (*store.Ticket, error) {
	if r.Result == "" {
		return nil, httpapi.BadRequest("result is required")
	}
	if err := checkText("result", r.Result, 10000); err != nil {
		return nil, err
	}
	return d.mutate(ctx, id, p.ID(), "quality_feedback_result", map[string]string{"form": strconv.Itoa(n)}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if n < 1 || n > len(t.Feedback) {
			return httpapi.NotFound("ticket %s has no quality feedback form %d", t.ID, n)
		}
		f := &t.Feedback[n-1]
		if f.Result != "" {
			return httpapi.Conflict("quality feedback form %d already has its result", n)
		}
		f.Result, f.ResultAt, f.ResultBy = r.Result, now, p.ID()
		event(t, now, p.ID(), "quality_feedback_result", "", "", fmt.Sprintf("form %d; overdue: %v", n, f.Overdue || now.After(f.Deadline)))
		return nil
	})
}

// OnSiteRequest opens an on-site service form (SPEC Art. 23).
type OnSiteRequest struct {
	Engineer  string    `json:"engineer"`
	Address   string    `json:"address,omitempty"`
	Scheduled time.Time `json:"scheduled,omitzero"`
}

// OnSite opens an on-site service form.
func (d *Desk) OnSite(ctx context.Context, p *httpapi.Principal, id string, o OnSiteRequest) (*store.Ticket, error) {
	if o.Engineer == "" {
		return nil, httpapi.BadRequest("engineer is required")
	}
	for _, f := range []struct{ n, v string }{{"engineer", o.Engineer}, {"address", o.Address}} {
		if err := checkText(f.n, f.v, 500); err != nil {
			return nil, err
		}
	}
	return d.mutate(ctx, id, p.ID(), "on_site", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if !t.Open {
			return httpapi.Conflict("ticket %s is %s", t.ID, t.State)
		}
		t.OnSite = append(t.OnSite, store.TicketOnSite{N: len(t.OnSite) + 1, Engineer: o.Engineer, Address: o.Address, Scheduled: o.Scheduled, By: p.ID(), At: now})
		t.ServiceMode = "on_site"
		event(t, now, p.ID(), "on_site", "", "", "form "+strconv.Itoa(len(t.OnSite))+" engineer "+o.Engineer)
		return nil
	})
}

// OnSiteReport is the visit's report: the process, finished or the reason
// it is not, and the customer's confirmation.
type OnSiteReport struct {
	Process             string `json:"process"`
	Finished            bool   `json:"finished"`
	UnfinishedReason    string `json:"unfinished_reason,omitempty"`
	CustomerConfirmedBy string `json:"customer_confirmed_by,omitempty"`
}

// ReportOnSite records the visit of form n.
func (d *Desk) ReportOnSite(ctx context.Context, p *httpapi.Principal, id string, n int, r OnSiteReport) (*store.Ticket, error) {
	if r.Process == "" {
		return nil, httpapi.BadRequest("process is required: the detailed process of the visit")
	}
	if !r.Finished && r.UnfinishedReason == "" {
		return nil, httpapi.BadRequest("an unfinished visit needs unfinished_reason (SPEC Art. 23)")
	}
	for _, f := range []struct{ n, v string }{{"process", r.Process}, {"unfinished_reason", r.UnfinishedReason}, {"customer_confirmed_by", r.CustomerConfirmedBy}} {
		if err := checkText(f.n, f.v, 10000); err != nil {
			return nil, err
		}
	}
	return d.mutate(ctx, id, p.ID(), "on_site_report", map[string]string{"form": strconv.Itoa(n), "finished": strconv.FormatBool(r.Finished)}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if n < 1 || n > len(t.OnSite) {
			return httpapi.NotFound("ticket %s has no on-site form %d", t.ID, n)
		}
		o := &t.OnSite[n-1]
		if o.Returned {
			return httpapi.Conflict("on-site form %d was returned", n)
		}
		o.Process, o.Finished, o.UnfinishedReason, o.ReportedAt = r.Process, r.Finished, r.UnfinishedReason, now
		if !r.Finished {
			o.UnfinishedReason = r.UnfinishedReason
		} else {
			o.UnfinishedReason = ""
		}
		if r.CustomerConfirmedBy != "" {
			o.ConfirmedBy, o.ConfirmedAt = r.CustomerConfirmedBy, now
		}
		d.responded(t, now)
		event(t, now, p.ID(), "on_site_report", "", "", fmt.Sprintf("form %d finished: %v", n, r.Finished))
		return nil
	})
}

// ReturnOnSite records that form n came back, confirmed by the customer.
func (d *Desk) ReturnOnSite(ctx context.Context, p *httpapi.Principal, id string, n int) (*store.Ticket, error) {
	return d.mutate(ctx, id, p.ID(), "on_site_return", map[string]string{"form": strconv.Itoa(n)}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if n < 1 || n > len(t.OnSite) {
			return httpapi.NotFound("ticket %s has no on-site form %d", t.ID, n)
		}
		o := &t.OnSite[n-1]
		switch {
		case o.Returned:
			return httpapi.Conflict("on-site form %d was already returned", n)
		case o.ReportedAt.IsZero():
			return httpapi.Conflict("on-site form %d has no report yet", n)
		case o.ConfirmedBy == "":
			return httpapi.Conflict("on-site form %d lacks the customer's confirmation", n)
		}
		o.Returned, o.ReturnedAt = true, now
		event(t, now, p.ID(), "on_site_return", "", "", "form "+strconv.Itoa(n))
		return nil
	})
}

// ComplaintRequest records a complaint (SPEC Art. 26).
type ComplaintRequest struct {
	Against string `json:"against,omitempty"`
	Details string `json:"details"`
}

// Complain records a complaint on a ticket.
func (d *Desk) Complain(ctx context.Context, p *httpapi.Principal, id string, c ComplaintRequest) (*store.Ticket, error) {
	if c.Details == "" {
		return nil, httpapi.BadRequest("details are required")
	}
	for _, f := range []struct{ n, v string }{{"against", c.Against}, {"details", c.Details}} {
		if err := checkText(f.n, f.v, 10000); err != nil {
			return nil, err
		}
	}
	return d.mutate(ctx, id, p.ID(), "complaint", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if t.Complaint != nil {
			return httpapi.Conflict("ticket %s already records a complaint", t.ID)
		}
		t.Complaint = &store.TicketComplaint{Against: c.Against, Details: c.Details, By: p.ID(), At: now}
		event(t, now, p.ID(), "complaint", "", "", c.Against)
		return nil
	})
}

// ComplaintResult feeds the complaint's result back to the customer.
func (d *Desk) ComplaintResult(ctx context.Context, p *httpapi.Principal, id string, r ResultRequest) (*store.Ticket, error) {
	if r.Result == "" || r.FedBackVia == "" {
		return nil, httpapi.BadRequest("result and fed_back_via (how the customer was told) are required")
	}
	for _, f := range []struct{ n, v string }{{"result", r.Result}, {"fed_back_via", r.FedBackVia}} {
		if err := checkText(f.n, f.v, 10000); err != nil {
			return nil, err
		}
	}
	return d.mutate(ctx, id, p.ID(), "complaint_result", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if t.Complaint == nil {
			return httpapi.Conflict("ticket %s records no complaint", t.ID)
		}
		if t.Complaint.Result != "" {
			return httpapi.Conflict("the complaint of ticket %s already has its result", t.ID)
		}
		t.Complaint.Result, t.Complaint.FedBackVia, t.Complaint.FedBackAt, t.Complaint.FedBackBy = r.Result, r.FedBackVia, now, p.ID()
		event(t, now, p.ID(), "complaint_result", "", "", "fed back via "+r.FedBackVia)
		return nil
	})
}

// ReplacementConfirm is a support engineer's confirmation that a USBKey
// must be replaced (SPEC Art. 25).
type ReplacementConfirm struct {
	Token  string `json:"token"`
	Reason string `json:"reason"`
	// NewToken, Cause and CSR are what the RA's replacement request needs
	// besides the old token (package token's kind checks them).
	NewToken string `json:"new_token,omitempty"`
	Cause    string `json:"cause,omitempty"`
	CSR      string `json:"csr,omitempty"`
}

// errNoReplacements answers when server wiring gave no Replacements.
var errNoReplacements = httpapi.Errorf(501, "not_implemented", "USBKey replacement requests are not wired into the service desk")

// ConfirmReplacement opens the RA replacement request of a USBKey
// replacement ticket. The request is opened first, then recorded on the
// ticket; a ticket that already holds one is refused, so a retry after a
// failed recording is the only way to a second request, and the RA refuses
// a second open replacement of the same token.
func (d *Desk) ConfirmReplacement(ctx context.Context, p *httpapi.Principal, id string, r ReplacementConfirm) (*store.Ticket, error) {
	if d.opts.Replacements == nil {
		return nil, errNoReplacements
	}
	if r.Token == "" || r.Reason == "" {
		return nil, httpapi.BadRequest("token and reason are required")
	}
	for _, f := range []struct {
		n, v string
		max  int
	}{{"token", r.Token, 64}, {"reason", r.Reason, 2000}, {"new_token", r.NewToken, 64}, {"cause", r.Cause, 32}, {"csr", r.CSR, 16 << 10}} {
		if err := checkText(f.n, f.v, f.max); err != nil {
			return nil, err
		}
	}
	t, err := d.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case t.Category != d.cfg.ReplacementCategory:
		return nil, httpapi.BadRequest("ticket %s is of category %s, not %s", t.ID, t.Category, d.cfg.ReplacementCategory)
	case t.Replacement != nil:
		return nil, httpapi.Conflict("ticket %s already opened replacement request %s", t.ID, t.Replacement.RequestID)
	case !t.Open:
		return nil, httpapi.Conflict("ticket %s is %s", t.ID, t.State)
	}
	org := t.Requester.OrgID
	if org == "" && len(t.Links.Orgs) > 0 {
		org = t.Links.Orgs[0]
	}
	reqID, err := d.opts.Replacements.OpenReplacement(ctx, ReplacementRequest{Ticket: t.ID, OrgID: org, Subscriber: t.Requester.SubscriberID,
		CertSerials: t.Links.Certs, Token: r.Token, NewToken: r.NewToken, Cause: r.Cause, CSR: r.CSR, Reason: r.Reason, Principal: p, Actor: p.ID()})
	if err != nil {
		return nil, fmt.Errorf("opening the USBKey replacement request: %w", err)
	}
	return d.mutate(ctx, id, p.ID(), "replacement", map[string]string{"request": reqID, "token": r.Token}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if t.Replacement != nil {
			return httpapi.Conflict("ticket %s already opened replacement request %s", t.ID, t.Replacement.RequestID)
		}
		t.Replacement = &store.TicketReplacement{RequestID: reqID, Token: r.Token, ConfirmedBy: p.ID(), At: now}
		t.Links.RARequests = appendNew(t.Links.RARequests, reqID)
		t.Links.Tokens = appendNew(t.Links.Tokens, r.Token)
		event(t, now, p.ID(), "replacement", "", "", "opened RA request "+reqID+" for token "+r.Token)
		return nil
	})
}

// replacementState reads the state of a ticket's replacement request, or
// says why it cannot.
func (d *Desk) replacementState(ctx context.Context, t *store.Ticket) string {
	if t.Replacement == nil {
		return ""
	}
	if d.opts.Replacements == nil {
		return "unknown: replacements not wired"
	}
	s, err := d.opts.Replacements.ReplacementState(ctx, t.Replacement.RequestID)
	if errors.Is(err, store.ErrNotFound) {
		return "unknown: request not found"
	} else if err != nil {
		d.log.Warn("reading replacement state", "ticket", t.ID, "request", t.Replacement.RequestID, "err", err)
		return "unknown: " + err.Error()
	}
	return s
}
