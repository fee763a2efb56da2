package desk

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Ticket states.
const (
	StateNew        = "new"
	StateAssigned   = "assigned"
	StateInProgress = "in_progress"
	StateWaiting    = "waiting_customer"
	StateResolved   = "resolved"
	StateClosed     = "closed"
	StateReopened   = "reopened"
)

// transitions is the state machine: from → the states it may go to. The
// rules beside the table (a resolution needs a suggested solution in the
// work log, taking a ticket needs its group's role) are in transition.
var transitions = map[string][]string{
	StateNew:        {StateAssigned, StateInProgress, StateResolved},
	StateAssigned:   {StateInProgress, StateWaiting, StateResolved},
	StateInProgress: {StateAssigned, StateWaiting, StateResolved},
	StateWaiting:    {StateInProgress, StateResolved},
	StateResolved:   {StateClosed, StateReopened},
	StateClosed:     {StateReopened},
	StateReopened:   {StateAssigned, StateInProgress, StateResolved},
}

// Groups of the hotline, in escalation order (SPEC Art. 21-24): hotline
// agent → hotline engineer → technical centre.
const (
	GroupHotline    = "hotline_agent"
	GroupEngineer   = "hotline_engineer"
	GroupTechCentre = "technical_centre"
)

var groupOrder = []string{GroupHotline, GroupEngineer, GroupTechCentre}

// groupRole is the staff role that works a group's tickets.
var groupRole = map[string]string{
	GroupHotline:    httpapi.RoleServiceAgent,
	GroupEngineer:   httpapi.RoleEngineer,
	GroupTechCentre: httpapi.RoleTechnicalCentre,
}

// Values of the ticket fields.
var (
	Channels     = []string{"hotline", "fax", "web", "email", "instant_message", "on_site", "walk_in"}
	Classes      = []string{"general", "serious", "major"}
	ServiceModes = []string{"phone_answer", "remote_assistance", "on_site", "paid"}
)

// CreateRequest is the body of a new ticket.
type CreateRequest struct {
	Channel     string                `json:"channel"`
	Category    string                `json:"category"`
	Class       string                `json:"class,omitempty"`
	Emergency   bool                  `json:"emergency,omitempty"`
	ServiceMode string                `json:"service_mode,omitempty"`
	Requester   store.TicketRequester `json:"requester"`
	Subject     string                `json:"subject"`
	Description string                `json:"description,omitempty"`
	Links       store.TicketLinks     `json:"links,omitempty"`
	// Join adds this contact to an open ticket instead of opening one
	// (SPEC Art. 21: every call creates or joins a ticket).
	Join string `json:"join,omitempty"`
}

// ParseCreate decodes and checks a ticket's JSON body (strictly: unknown
// fields and trailing data are errors). The category is checked against
// the configured tree by Create.
func ParseCreate(b []byte) (*CreateRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c CreateRequest
	if err := dec.Decode(&c); err != nil {
		return nil, httpapi.BadRequest("invalid JSON body: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, httpapi.BadRequest("invalid JSON body: data after the JSON value")
	}
	if c.Class == "" {
		c.Class = "general"
	}
	if c.Channel == "" && c.Join == "" {
		return nil, httpapi.BadRequest("channel is required: one of %v", Channels)
	}
	if c.Channel != "" && !slices.Contains(Channels, c.Channel) {
		return nil, httpapi.BadRequest("channel %q is not one of %v", c.Channel, Channels)
	}
	if !slices.Contains(Classes, c.Class) {
		return nil, httpapi.BadRequest("class %q is not one of %v", c.Class, Classes)
	}
	if c.ServiceMode != "" && !slices.Contains(ServiceModes, c.ServiceMode) {
		return nil, httpapi.BadRequest("service_mode %q is not one of %v", c.ServiceMode, ServiceModes)
	}
	if c.Join != "" {
		if err := checkText("join", c.Join, 32); err != nil {
			return nil, err
		}
	} else {
		if c.Category == "" {
			return nil, httpapi.BadRequest("category is required")
		}
		if c.Subject == "" {
			return nil, httpapi.BadRequest("subject is required")
		}
		r := c.Requester
		if r.Kind != "person" && r.Kind != "organisation" {
			return nil, httpapi.BadRequest("requester.kind %q is not one of person, organisation", r.Kind)
		}
		if r.Name == "" {
			return nil, httpapi.BadRequest("requester.name is required")
		}
		if r.Phone == "" && r.Email == "" && r.Address == "" && r.OrgID == "" && r.SubscriberID == "" {
			return nil, httpapi.BadRequest("requester needs contact details: phone, email, address, org or subscriber")
		}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"category", c.Category, 200}, {"subject", c.Subject, 200}, {"description", c.Description, 10000},
		{"requester.name", c.Requester.Name, 200}, {"requester.org", c.Requester.OrgID, 64},
		{"requester.subscriber", c.Requester.SubscriberID, 64}, {"requester.phone", c.Requester.Phone, 64},
		{"requester.email", c.Requester.Email, 200}, {"requester.address", c.Requester.Address, 500},
	} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return nil, err
		}
	}
	links, err := normaliseLinks(c.Links)
	if err != nil {
		return nil, err
	}
	c.Links = links
	return &c, nil
}

func checkText(name, v string, maxLen int) error {
	if len(v) > maxLen {
		return httpapi.BadRequest("%s is longer than %d bytes", name, maxLen)
	}
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return httpapi.BadRequest("%s is not valid UTF-8 text", name)
	}
	return nil
}

// normaliseLinks checks link lists and writes serials as lower-case hex.
func normaliseLinks(l store.TicketLinks) (store.TicketLinks, error) {
	var out store.TicketLinks
	for name, list := range map[string][]string{"certificates": l.Certs, "tokens": l.Tokens, "organisations": l.Orgs, "ra_requests": l.RARequests} {
		if len(list) > 20 {
			return out, httpapi.BadRequest("links.%s has more than 20 entries", name)
		}
		for _, v := range list {
			if v == "" {
				return out, httpapi.BadRequest("links.%s has an empty entry", name)
			}
			if err := checkText("links."+name, v, 128); err != nil {
				return out, err
			}
		}
	}
	for _, s := range l.Certs {
		b, err := httpapi.ParseSerial(s)
		if err != nil {
			return out, httpapi.BadRequest("links.certificates: %q is not a serial", s)
		}
		out.Certs = appendNew(out.Certs, hex.EncodeToString(b))
	}
	for _, v := range l.Tokens {
		out.Tokens = appendNew(out.Tokens, v)
	}
	for _, v := range l.Orgs {
		out.Orgs = appendNew(out.Orgs, v)
	}
	for _, v := range l.RARequests {
		out.RARequests = appendNew(out.RARequests, v)
	}
	return out, nil
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

// checkLinks checks that linked certificates, organisations and RA requests
// exist (tokens belong to package token and are kept as given).
func checkLinks(tx *store.Tx, l store.TicketLinks) error {
	for _, s := range l.Certs {
		b, _ := hex.DecodeString(s)
		if _, err := tx.Cert(b); errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("linked certificate %s does not exist", s)
		} else if err != nil {
			return err
		}
	}
	for _, o := range l.Orgs {
		if _, err := tx.Org(o); errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("linked organisation %q does not exist", o)
		} else if err != nil {
			return err
		}
	}
	for _, r := range l.RARequests {
		if _, err := tx.RARequest(r); errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("linked RA request %q does not exist", r)
		} else if err != nil {
			return err
		}
	}
	return nil
}

// Created is the result of Create: the ticket, and the open tickets it may
// duplicate (a warning; SPEC Art. 21).
type Created struct {
	Ticket     *store.Ticket
	Duplicates []string
	Joined     bool
}

// Create opens a ticket, or with Join adds the contact to an open one.
func (d *Desk) Create(ctx context.Context, actor string, c *CreateRequest) (*Created, error) {
	if c.Join != "" {
		t, err := d.mutate(ctx, c.Join, actor, "join", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
			if !t.Open {
				return httpapi.Conflict("ticket %s is %s: open a new ticket instead", t.ID, t.State)
			}
			if err := checkLinks(tx, c.Links); err != nil {
				return err
			}
			addLinks(&t.Links, c.Links)
			event(t, now, actor, "contact", "", "", joinNote(c))
			return nil
		})
		if err != nil {
			return nil, err
		}
		return &Created{Ticket: t, Joined: true}, nil
	}
	if !d.categories[c.Category] {
		return nil, httpapi.BadRequest("category %q is not in the category tree (desk.categories)", c.Category)
	}
	n, err := d.st.Next("ticket")
	if err != nil {
		return nil, fmt.Errorf("numbering ticket: %w", err)
	}
	out := &Created{}
	err = d.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		if err := checkLinks(tx, c.Links); err != nil {
			return err
		}
		if c.Requester.OrgID != "" {
			if _, err := tx.Org(c.Requester.OrgID); errors.Is(err, store.ErrNotFound) {
				return httpapi.BadRequest("requester.org %q does not exist", c.Requester.OrgID)
			} else if err != nil {
				return err
			}
		}
		now := d.now()
		t := &store.Ticket{
			ID: fmt.Sprintf("T%08d", n), Channel: c.Channel, Category: c.Category, Class: c.Class, Emergency: c.Emergency,
			ServiceMode: c.ServiceMode, Requester: c.Requester, Subject: c.Subject, Description: c.Description,
			State: StateNew, Group: GroupHotline, Links: c.Links, CreatedBy: actor, CreatedAt: now, UpdatedAt: now, Open: true,
		}
		d.startClocks(t, now)
		event(t, now, actor, "create", "", StateNew, "")
		dups, err := d.duplicates(tx, t, now)
		if err != nil {
			return err
		}
		d.refreshDue(t, now)
		if err := tx.PutTicket(t); err != nil {
			return err
		}
		out.Ticket, out.Duplicates = t, dups
		return log(audit.Record{Actor: actor, Action: "desk.create", Object: "ticket/" + t.ID, Details: map[string]string{
			"category": t.Category, "class": t.Class, "channel": t.Channel, "duplicates": strings.Join(dups, ",")}})
	})
	if err != nil {
		return nil, err
	}
	d.m.created.WithLabelValues(c.Channel, c.Class).Inc()
	return out, nil
}

func joinNote(c *CreateRequest) string {
	if c.Channel != "" {
		return c.Channel + ": " + c.Description
	}
	return c.Description
}

func addLinks(dst *store.TicketLinks, l store.TicketLinks) {
	for _, v := range l.Certs {
		dst.Certs = appendNew(dst.Certs, v)
	}
	for _, v := range l.Tokens {
		dst.Tokens = appendNew(dst.Tokens, v)
	}
	for _, v := range l.Orgs {
		dst.Orgs = appendNew(dst.Orgs, v)
	}
	for _, v := range l.RARequests {
		dst.RARequests = appendNew(dst.RARequests, v)
	}
}

// duplicates lists the open tickets of the same requester or certificate
// and category opened within desk.duplicate_window.
func (d *Desk) duplicates(tx *store.Tx, t *store.Ticket, now time.Time) ([]string, error) {
	since := now.Add(-d.cfg.DuplicateWindow.D())
	var out []string
	consider := func(o *store.Ticket) error {
		if o.ID != t.ID && o.Open && o.MergedInto == "" && o.Category == t.Category && !o.CreatedAt.Before(since) {
			out = appendNew(out, o.ID)
		}
		return nil
	}
	if err := tx.OpenTicketsByRequester(t.RequesterKey(), t.Category, consider); err != nil {
		return nil, err
	}
	for _, c := range t.Links.Certs {
		if err := tx.OpenTicketsByCert(c, t.Category, consider); err != nil {
			return nil, err
		}
	}
	slices.Sort(out)
	return out, nil
}

// Duplicates lists the open tickets that may duplicate ticket id.
func (d *Desk) Duplicates(ctx context.Context, id string) ([]string, error) {
	var out []string
	err := d.st.View(ctx, func(tx *store.Tx) error {
		t, err := readTicket(tx, id)
		if err != nil {
			return err
		}
		out, err = d.duplicates(tx, t, d.now())
		return err
	})
	return out, err
}

func event(t *store.Ticket, now time.Time, actor, action, from, to, note string) {
	t.History = append(t.History, store.TicketEvent{At: now, Actor: actor, Action: action, From: from, To: to, Note: note})
}

// mutate changes one ticket in a transaction: fn changes t (and appends its
// history), then the clocks' next deadline is recomputed, the ticket
// written and the change audited as "desk.<action>".
func (d *Desk) mutate(ctx context.Context, id, actor, action string, details map[string]string,
	fn func(tx *store.Tx, t *store.Ticket, now time.Time) error) (*store.Ticket, error) {
	var out *store.Ticket
	err := d.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		t, err := readTicket(tx, id)
		if err != nil {
			return err
		}
		if t.MergedInto != "" {
			return httpapi.Conflict("ticket %s was merged into %s: work on that one", t.ID, t.MergedInto)
		}
		now := d.now()
		if err := fn(tx, t, now); err != nil {
			return err
		}
		t.UpdatedAt = now
		d.refreshDue(t, now)
		if err := tx.PutTicket(t); err != nil {
			return err
		}
		out = t
		if details == nil {
			details = map[string]string{}
		}
		details["state"] = t.State
		return log(audit.Record{Actor: actor, Action: "desk." + action, Object: "ticket/" + id, Details: details})
	})
	return out, err
}

// mayWork says whether p works tickets of group: its role, or a
// supervisor or administrator.
func mayWork(p *httpapi.Principal, group string) bool {
	return p.HasRole(httpapi.RoleSupervisor, groupRole[group])
}

// Transition moves a ticket to state to.
func (d *Desk) Transition(ctx context.Context, p *httpapi.Principal, id, to, note string) (*store.Ticket, *SurveyLink, error) {
	var link *SurveyLink
	t, err := d.mutate(ctx, id, p.ID(), "transition", map[string]string{"to": to}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		from := t.State
		if !slices.Contains(transitions[from], to) {
			return httpapi.Errorf(409, "transition_not_allowed", "a ticket %s may not become %s (allowed: %v): %v", from, to, transitions[from], ErrTransition)
		}
		switch to {
		case StateAssigned:
			if t.Assignee == "" {
				return httpapi.BadRequest("assign the ticket to someone (POST .../assign) to make it assigned")
			}
		case StateInProgress:
			if !mayWork(p, t.Group) {
				return httpapi.Forbidden("ticket %s is with group %s; role %s does not work it", t.ID, t.Group, roleOf(p))
			}
			if t.Assignee == "" && p.Staff != nil {
				t.Assignee = p.Staff.ID
			}
		case StateResolved:
			if !hasSolution(t) {
				return httpapi.BadRequest("record the suggested solution in the work log (SPEC Art. 22) before resolving")
			}
		}
		if from == StateWaiting {
			d.resumeClocks(t, now)
		}
		switch to {
		case StateInProgress:
			d.responded(t, now)
			d.handedOver(t, now)
		case StateWaiting:
			t.SLA.PausedAt = now
		case StateResolved:
			d.responded(t, now)
			d.resolved(t, now)
			t.Open, t.ResolvedAt = false, now
		case StateClosed:
			t.Open, t.ClosedAt = false, now
			l, err := d.openSurvey(tx, t, now)
			if err != nil {
				return err
			}
			link = l
		case StateReopened:
			t.Open, t.ResolvedAt, t.ClosedAt = true, time.Time{}, time.Time{}
			t.SLA.ResolveDue = d.clock(t).Add(now, t.SLA.ResolveTarget)
		}
		t.State = to
		event(t, now, p.ID(), "transition", from, to, note)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return t, link, nil
}

func roleOf(p *httpapi.Principal) string {
	if p.Staff != nil {
		return p.Staff.Role
	}
	return "certificate administrator"
}

func hasSolution(t *store.Ticket) bool {
	for _, w := range t.WorkLog {
		if w.Solution != "" {
			return true
		}
	}
	return false
}

// AssignRequest moves a ticket to a group and assignee.
type AssignRequest struct {
	Group    string `json:"group"`
	Assignee string `json:"assignee,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Assign gives a ticket to a group (a hand-over when the group changes)
// and an assignee.
func (d *Desk) Assign(ctx context.Context, p *httpapi.Principal, id string, a AssignRequest) (*store.Ticket, error) {
	if a.Group == "" {
		return nil, httpapi.BadRequest("group is required: one of %v", groupOrder)
	}
	if !slices.Contains(groupOrder, a.Group) {
		return nil, httpapi.BadRequest("group %q is not one of %v", a.Group, groupOrder)
	}
	if err := checkText("assignee", a.Assignee, 64); err != nil {
		return nil, err
	}
	return d.mutate(ctx, id, p.ID(), "assign", map[string]string{"group": a.Group, "assignee": a.Assignee}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if !slices.Contains(transitions[t.State], StateAssigned) && t.State != StateAssigned && t.State != StateWaiting {
			return httpapi.Errorf(409, "transition_not_allowed", "a ticket %s may not be assigned: %v", t.State, ErrTransition)
		}
		if a.Assignee != "" {
			s, err := staffByID(tx, a.Assignee)
			if err != nil {
				return err
			}
			if s.Role != groupRole[a.Group] && s.Role != httpapi.RoleSupervisor && s.Role != httpapi.RoleAdmin {
				return httpapi.BadRequest("staff %s has role %s and does not work group %s", s.ID, s.Role, a.Group)
			}
		}
		moved := a.Group != t.Group
		if t.State == StateWaiting {
			if !moved && a.Assignee == "" {
				return httpapi.Errorf(409, "transition_not_allowed", "ticket %s waits for the customer and stays with %s: nothing to assign", t.ID, t.Group)
			}
			// Passed on or given to someone: it no longer waits.
			d.resumeClocks(t, now)
		}
		d.handOver(t, now, a.Group)
		from := t.State
		t.Assignee = a.Assignee
		// A ticket given to someone, or passed to another group, is
		// assigned: the receiving group takes it (in_progress), which ends
		// the hand-over clock.
		if a.Assignee != "" || moved {
			t.State = StateAssigned
		}
		event(t, now, p.ID(), "assign", from, t.State, strings.TrimSpace(a.Group+" "+a.Assignee+" "+a.Note))
		return nil
	})
}

func staffByID(tx *store.Tx, id string) (*store.Staff, error) {
	var s *store.Staff
	err := tx.EachStaff(func(o *store.Staff) error {
		if o.ID == id {
			s = o
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, httpapi.BadRequest("staff %q does not exist", id)
	}
	return s, nil
}

// handOver moves t to group, starting the hand-over clock when the group
// changes.
func (d *Desk) handOver(t *store.Ticket, now time.Time, group string) {
	if group == t.Group {
		return
	}
	t.Group = group
	t.SLA.HandoverGroup = group
	t.SLA.HandoverDue = d.clock(t).Add(now, d.cfg.Handover.D())
}

// ClassifyRequest changes a ticket's incident class, emergency flag or
// service mode; the clocks are recomputed from the ticket's creation.
type ClassifyRequest struct {
	Class       string `json:"class,omitempty"`
	Emergency   *bool  `json:"emergency,omitempty"`
	ServiceMode string `json:"service_mode,omitempty"`
}

// Classify sets the class, emergency flag and service mode.
func (d *Desk) Classify(ctx context.Context, p *httpapi.Principal, id string, c ClassifyRequest) (*store.Ticket, error) {
	if c.Class != "" && !slices.Contains(Classes, c.Class) {
		return nil, httpapi.BadRequest("class %q is not one of %v", c.Class, Classes)
	}
	if c.ServiceMode != "" && !slices.Contains(ServiceModes, c.ServiceMode) {
		return nil, httpapi.BadRequest("service_mode %q is not one of %v", c.ServiceMode, ServiceModes)
	}
	return d.mutate(ctx, id, p.ID(), "classify", map[string]string{"class": c.Class, "service_mode": c.ServiceMode}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if c.Class != "" {
			t.Class = c.Class
		}
		if c.Emergency != nil {
			t.Emergency = *c.Emergency
		}
		if c.ServiceMode != "" {
			t.ServiceMode = c.ServiceMode
		}
		if t.Open && t.SLA.PausedAt.IsZero() {
			sla := t.SLA
			d.startClocks(t, t.CreatedAt)
			t.SLA.RespondedAt, t.SLA.Warned, t.SLA.Breaches = sla.RespondedAt, sla.Warned, sla.Breaches
			t.SLA.HandoverDue, t.SLA.HandoverGroup, t.SLA.PausedFor = sla.HandoverDue, sla.HandoverGroup, sla.PausedFor
		}
		event(t, now, p.ID(), "classify", "", "", fmt.Sprintf("class=%s emergency=%v service_mode=%s", t.Class, t.Emergency, t.ServiceMode))
		return nil
	})
}

// WorkRequest is one work-log entry (SPEC Art. 22).
type WorkRequest struct {
	Product   string   `json:"product,omitempty"`
	Symptom   string   `json:"symptom,omitempty"`
	Diagnosis []string `json:"diagnosis,omitempty"`
	Solution  string   `json:"solution,omitempty"`
	Note      string   `json:"note,omitempty"`
}

// Work adds a work-log entry; the first one by staff is the response.
func (d *Desk) Work(ctx context.Context, p *httpapi.Principal, id string, w WorkRequest) (*store.Ticket, error) {
	if w.Product == "" && w.Symptom == "" && len(w.Diagnosis) == 0 && w.Solution == "" && w.Note == "" {
		return nil, httpapi.BadRequest("a work-log entry needs product, symptom, diagnosis, solution or note")
	}
	for _, f := range []struct{ n, v string }{{"product", w.Product}, {"symptom", w.Symptom}, {"solution", w.Solution}, {"note", w.Note}} {
		if err := checkText(f.n, f.v, 10000); err != nil {
			return nil, err
		}
	}
	if len(w.Diagnosis) > 50 {
		return nil, httpapi.BadRequest("diagnosis has more than 50 steps")
	}
	for _, s := range w.Diagnosis {
		if err := checkText("diagnosis", s, 2000); err != nil {
			return nil, err
		}
	}
	return d.mutate(ctx, id, p.ID(), "work", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if t.State == StateClosed {
			return httpapi.Conflict("ticket %s is closed: reopen it first", t.ID)
		}
		t.WorkLog = append(t.WorkLog, store.TicketWork{At: now, Actor: p.ID(), Product: w.Product, Symptom: w.Symptom,
			Diagnosis: w.Diagnosis, Solution: w.Solution, Note: w.Note})
		d.responded(t, now)
		event(t, now, p.ID(), "work", "", "", "work log entry "+strconv.Itoa(len(t.WorkLog)))
		return nil
	})
}

// Link adds links to a ticket.
func (d *Desk) Link(ctx context.Context, p *httpapi.Principal, id string, l store.TicketLinks) (*store.Ticket, error) {
	l, err := normaliseLinks(l)
	if err != nil {
		return nil, err
	}
	return d.mutate(ctx, id, p.ID(), "link", nil, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if err := checkLinks(tx, l); err != nil {
			return err
		}
		addLinks(&t.Links, l)
		event(t, now, p.ID(), "link", "", "", fmt.Sprintf("certificates=%v tokens=%v organisations=%v ra_requests=%v", l.Certs, l.Tokens, l.Orgs, l.RARequests))
		return nil
	})
}

// Merge merges ticket id into ticket into: into gets id's history, work
// log, links and attachments (each copied entry says where it came from);
// id keeps its own history, is closed and points to into. Both histories
// stay readable (SPEC Art. 21: never lost, never twice).
func (d *Desk) Merge(ctx context.Context, p *httpapi.Principal, id, into string) (*store.Ticket, error) {
	if id == into {
		return nil, httpapi.BadRequest("a ticket cannot be merged into itself")
	}
	var out *store.Ticket
	err := d.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		src, err := readTicket(tx, id)
		if err != nil {
			return err
		}
		dst, err := readTicket(tx, into)
		if err != nil {
			return err
		}
		if src.MergedInto != "" {
			return httpapi.Conflict("ticket %s was already merged into %s", src.ID, src.MergedInto)
		}
		if dst.MergedInto != "" {
			return httpapi.Conflict("ticket %s was merged into %s: merge into that one", dst.ID, dst.MergedInto)
		}
		if !dst.Open {
			return httpapi.Conflict("ticket %s is %s: merge into an open ticket", dst.ID, dst.State)
		}
		now := d.now()
		for _, e := range src.History {
			e.Ticket = src.ID
			dst.History = append(dst.History, e)
		}
		for _, w := range src.WorkLog {
			w.Note = strings.TrimSpace("[from " + src.ID + "] " + w.Note)
			dst.WorkLog = append(dst.WorkLog, w)
		}
		dst.Attachments = append(dst.Attachments, src.Attachments...)
		for _, a := range src.Attachments {
			b, err := tx.TicketAttachmentData(src.ID, a.ID)
			if err != nil {
				return err
			}
			if err := tx.PutTicketAttachment(dst.ID, a.ID, b); err != nil {
				return err
			}
		}
		addLinks(&dst.Links, src.Links)
		dst.MergedFrom = append(dst.MergedFrom, src.ID)
		event(dst, now, p.ID(), "merge", "", "", "merged "+src.ID+" into this ticket")
		from := src.State
		src.MergedInto, src.Open, src.State, src.ClosedAt = dst.ID, false, StateClosed, now
		event(src, now, p.ID(), "merged", from, StateClosed, "merged into "+dst.ID)
		for _, t := range []*store.Ticket{src, dst} {
			t.UpdatedAt = now
			d.refreshDue(t, now)
			if err := tx.PutTicket(t); err != nil {
				return err
			}
		}
		out = dst
		return log(audit.Record{Actor: p.ID(), Action: "desk.merge", Object: "ticket/" + dst.ID, Details: map[string]string{"merged": src.ID}})
	})
	return out, err
}

// Get reads a ticket.
func (d *Desk) Get(ctx context.Context, id string) (*store.Ticket, error) {
	var t *store.Ticket
	err := d.st.View(ctx, func(tx *store.Tx) error {
		var err error
		t, err = readTicket(tx, id)
		return err
	})
	return t, err
}

// Filter selects tickets in List.
type Filter struct {
	State, Group, Category, Assignee, Class, Channel string
	// Open: "true" only open tickets, "false" only finished ones.
	Open string
}

func (f Filter) keep(t *store.Ticket) bool {
	return (f.State == "" || t.State == f.State) && (f.Group == "" || t.Group == f.Group) &&
		(f.Category == "" || t.Category == f.Category || strings.HasPrefix(t.Category, f.Category+"/")) &&
		(f.Assignee == "" || t.Assignee == f.Assignee) && (f.Class == "" || t.Class == f.Class) &&
		(f.Channel == "" || t.Channel == f.Channel) &&
		(f.Open == "" || (f.Open == "true") == t.Open)
}

// List returns a page of tickets in ID order.
func (d *Desk) List(ctx context.Context, f Filter, after string, limit int) ([]*store.Ticket, string, error) {
	var out []*store.Ticket
	var next string
	err := d.st.View(ctx, func(tx *store.Tx) error {
		var err error
		out, next, err = tx.TicketPage(after, limit, f.keep)
		return err
	})
	return out, next, err
}
