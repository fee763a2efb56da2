package desk_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// TestHotlineTicket follows one ticket through the hotline: created by an
// agent, the knowledge base searched from it, escalated to the technical
// centre, an on-site visit, resolved, closed, and the survey answered once
// through its link; every change is in the audit log.
func TestHotlineTicket(t *testing.T) {
	start := time.Date(2026, 4, 14, 10, 0, 0, 0, cst) // a Tuesday, a working day
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	tech := f.staff("tc1", "technical_centre")
	sup := f.staff("sup1", "supervisor")
	user := f.env.Issue(testenv.IssueOptions{CN: "Zhang San"})

	body := newTicket("certificate_use/signing_fails", "签名失败")
	body["links"] = map[string]any{"certificates": []string{user.SerialHex()}}
	body["description"] = "客户端提示签名失败"
	var created desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", body, &created)
	id := created.ID
	if created.State != desk.StateNew || created.Group != desk.GroupHotline || created.SLA.Calendar != desk.Cal5x8 {
		t.Fatalf("new ticket = %s %s %s", created.State, created.Group, created.SLA.Calendar)
	}
	if len(created.Duplicates) != 0 {
		t.Fatalf("first ticket has duplicates %v", created.Duplicates)
	}

	// The agent searches the knowledge base from the ticket (its subject by default).
	var hits struct {
		Query string            `json:"query"`
		Items []desk.ArticleHit `json:"items"`
	}
	f.must(agent, 200, "GET", "/api/v1/tickets/"+id+"/articles", nil, &hits)
	if hits.Query != "签名失败" || len(hits.Items) != 1 || hits.Items[0].ID != "kb-1" {
		t.Fatalf("articles = %+v", hits)
	}

	// The agent takes it, records the symptom, and escalates it straight to
	// the technical centre.
	f.env.Clock.Advance(2 * time.Minute)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+id+"/transition", map[string]any{"to": "in_progress"}, nil)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+id+"/work", map[string]any{"product": "client 3.2", "symptom": "signing fails with error 0x12",
		"diagnosis": []string{"driver reinstalled", "certificate valid"}}, nil)
	var esc desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+id+"/escalations", map[string]any{"product": "client 3.2", "user": "Zhang San",
		"symptom": "signing fails", "time_limit": start.Add(48 * time.Hour), "to_group": "technical_centre"}, &esc)
	if esc.Group != desk.GroupTechCentre || esc.State != desk.StateAssigned || esc.SLA.HandoverDue.IsZero() {
		t.Fatalf("escalated ticket: group %s state %s handover %v", esc.Group, esc.State, esc.SLA.HandoverDue)
	}
	// An agent may not take a technical-centre ticket.
	f.must(agent, 403, "POST", "/api/v1/tickets/"+id+"/transition", map[string]any{"to": "in_progress"}, nil)
	f.env.Clock.Advance(5 * time.Minute)
	var taken desk.TicketView
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/transition", map[string]any{"to": "in_progress"}, &taken)
	if !taken.SLA.HandoverDue.IsZero() || len(taken.SLA.Breaches) != 0 || taken.Assignee != "tc1" {
		t.Fatalf("taken: handover %v breaches %v assignee %s", taken.SLA.HandoverDue, taken.SLA.Breaches, taken.Assignee)
	}
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/escalations/1/notes", map[string]any{"note": "called the customer", "customer_informed": true}, nil)

	// On-site visit: an unfinished report needs a reason; the form returns
	// with the customer's confirmation.
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/onsite", map[string]any{"engineer": "tc1", "address": "Beijing"}, nil)
	before := f.ticket(id)
	f.must(tech, 400, "POST", "/api/v1/tickets/"+id+"/onsite/1/report", map[string]any{"process": "replaced driver", "finished": false}, nil)
	if after := f.ticket(id); len(after.History) != len(before.History) || after.OnSite[0].ReportedAt != (time.Time{}) {
		t.Fatal("a refused on-site report changed the ticket")
	}
	f.must(tech, 409, "POST", "/api/v1/tickets/"+id+"/onsite/1/return", nil, nil)
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/onsite/1/report", map[string]any{"process": "replaced the middleware, signed a test document",
		"finished": true, "customer_confirmed_by": "Zhang San"}, nil)
	var returned desk.TicketView
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/onsite/1/return", nil, &returned)
	if o := returned.OnSite[0]; !o.Returned || !o.Finished || o.ConfirmedBy != "Zhang San" {
		t.Fatalf("on-site form = %+v", o)
	}

	// Resolving needs the suggested solution in the work log.
	f.must(tech, 400, "POST", "/api/v1/tickets/"+id+"/transition", map[string]any{"to": "resolved"}, nil)
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/work", map[string]any{"solution": "install middleware 3.3"}, nil)
	f.must(tech, 200, "POST", "/api/v1/tickets/"+id+"/transition", map[string]any{"to": "resolved"}, nil)
	var closed desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+id+"/transition", map[string]any{"to": "closed", "note": "customer agrees"}, &closed)
	if closed.SurveyLink == nil || closed.SurveyLink.Token == "" || !strings.HasSuffix(closed.SurveyLink.URL, closed.SurveyLink.Token) {
		t.Fatalf("closing gave no survey link: %+v", closed.SurveyLink)
	}
	if closed.Survey == nil || closed.Survey.TokenHash != nil {
		t.Fatalf("the ticket view shows the survey token's hash: %+v", closed.Survey)
	}
	// A shown ticket does not repeat the link.
	var shown desk.TicketView
	f.must(agent, 200, "GET", "/api/v1/tickets/"+id, nil, &shown)
	if shown.SurveyLink != nil {
		t.Fatal("the survey link is shown twice")
	}

	// The customer answers through the link, without a client certificate;
	// the second use is refused and changes nothing.
	anon := f.env.Client(f.srv, nil)
	f.must(anon, 200, "POST", "/api/v1/surveys/"+closed.SurveyLink.Token, map[string]any{"score": 5, "comments": "很好"}, nil)
	st, raw := f.call(anon, "POST", "/api/v1/surveys/"+closed.SurveyLink.Token, map[string]any{"score": 1, "comments": "again"}, nil)
	if st != 409 || !strings.Contains(raw, "survey_answered") {
		t.Fatalf("second survey answer = %d %s", st, raw)
	}
	final := f.ticket(id)
	if s := final.Survey; s.Score != 5 || s.Comments != "很好" || s.Channel != "web" {
		t.Fatalf("survey = %+v", s)
	}
	f.must(anon, 404, "POST", "/api/v1/surveys/not-a-token", map[string]any{"score": 3}, nil)
	// A phone answer after a web one is refused too.
	f.must(agent, 409, "POST", "/api/v1/tickets/"+id+"/survey", map[string]any{"score": 2, "channel": "phone"}, nil)

	wantActions := map[string]bool{"desk.create": false, "desk.transition": false, "desk.work": false, "desk.escalate": false,
		"desk.escalation_note": false, "desk.on_site": false, "desk.on_site_report": false, "desk.on_site_return": false, "desk.survey": false}
	rep, err := f.audit.Verify(context.Background())
	if err != nil || len(rep.Problems) != 0 || rep.Entries == 0 {
		t.Fatalf("audit log: %+v %v", rep, err)
	}
	if err := f.env.Store.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachAudit(func(e *store.AuditEntry) error {
			if e.Object == "ticket/"+id {
				wantActions[e.Action] = true
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	for a, seen := range wantActions {
		if !seen {
			t.Errorf("no audit entry %s for the ticket", a)
		}
	}

	// Reports: one ticket of the category, class and channel; SLA met; a 5.
	var report desk.Report
	from := start.Add(-time.Hour).UTC().Format(time.RFC3339)
	to := start.Add(time.Hour).UTC().Format(time.RFC3339)
	f.must(sup, 200, "GET", "/api/v1/desk/reports?from="+from+"&to="+to, nil, &report)
	if report.Tickets != 1 || report.ByCategory["certificate_use"] != 1 || report.ByClass["general"] != 1 || report.ByChannel["hotline"] != 1 ||
		report.SLAMetPct != 100 || report.Surveys != 1 || report.SurveyMean != 5 {
		t.Fatalf("report = %+v", report)
	}
	_, csvText := f.call(sup, "GET", "/api/v1/desk/reports?format=csv&from="+from+"&to="+to, nil, nil)
	rows, err := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	if err != nil || len(rows) < 10 {
		t.Fatalf("csv report: %v\n%s", err, csvText)
	}
	found := false
	for _, r := range rows {
		if r[0] == "sla" && r[1] == "met_percent" && r[2] == "100.00" {
			found = true
		}
	}
	if !found {
		t.Fatalf("csv report lacks sla met_percent 100.00:\n%s", csvText)
	}
	f.must(agent, 403, "GET", "/api/v1/desk/reports", nil, nil)
}

// TestReplacementTicket: a USBKey replacement ticket opens the RA request
// when an engineer confirms it, and shows the request's state.
func TestReplacementTicket(t *testing.T) {
	f := newFixture(t, time.Date(2026, 4, 14, 10, 0, 0, 0, cst), nil)
	admin := f.org("hospital-a")
	agent := f.staff("agent1", "service_agent")
	eng := f.staff("eng1", "engineer")
	body := newTicket("token_use/usbkey_replacement", "USBKey broken")
	body["requester"] = map[string]any{"kind": "organisation", "name": "Hospital A", "org": "hospital-a"}
	var tk desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", body, &tk)
	// Agents do not confirm a replacement; engineers do (Art. 25).
	f.must(agent, 403, "POST", "/api/v1/tickets/"+tk.ID+"/replacement", map[string]any{"token": "USBKEY-0001", "reason": "damaged"}, nil)
	var confirmed desk.TicketView
	f.must(eng, 200, "POST", "/api/v1/tickets/"+tk.ID+"/replacement", map[string]any{"token": "USBKEY-0001", "reason": "damaged"}, &confirmed)
	if confirmed.Replacement == nil || confirmed.ReplacementState != "pending_review" || len(confirmed.Links.RARequests) != 1 {
		t.Fatalf("replacement = %+v state %q links %v", confirmed.Replacement, confirmed.ReplacementState, confirmed.Links)
	}
	f.must(eng, 409, "POST", "/api/v1/tickets/"+tk.ID+"/replacement", map[string]any{"token": "USBKEY-0001", "reason": "again"}, nil)
	// The RA moves the request on; the ticket shows it, to staff and to the organisation.
	if err := f.env.Store.Update(context.Background(), func(tx *store.Tx) error {
		q, err := tx.RARequest(confirmed.Replacement.RequestID)
		if err != nil {
			return err
		}
		q.State = "done"
		return tx.PutRARequest(q)
	}); err != nil {
		t.Fatal(err)
	}
	var shown desk.TicketView
	f.must(agent, 200, "GET", "/api/v1/tickets/"+tk.ID, nil, &shown)
	if shown.ReplacementState != "done" {
		t.Fatalf("replacement state = %q", shown.ReplacementState)
	}
	var self struct {
		State       string `json:"state"`
		Replacement string `json:"replacement_state"`
	}
	f.must(admin, 200, "GET", "/api/v1/self/tickets/"+tk.ID, nil, &self)
	if self.Replacement != "done" {
		t.Fatalf("self-service replacement state = %q", self.Replacement)
	}
	// Another category's ticket is refused.
	var other desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("token_use/driver", "driver"), &other)
	f.must(eng, 400, "POST", "/api/v1/tickets/"+other.ID+"/replacement", map[string]any{"token": "USBKEY-0002", "reason": "x"}, nil)
}

// TestComplaintAndFeedback records a complaint with a document, feeds the
// result back, and tracks a quality feedback form past its deadline.
func TestComplaintAndFeedback(t *testing.T) {
	start := time.Date(2026, 4, 14, 10, 0, 0, 0, cst)
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	eng := f.staff("eng1", "engineer")
	sup := f.staff("sup1", "supervisor")
	var tk desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("complaint", "slow answer"), &tk)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/complaint", map[string]any{"against": "hotline", "details": "waited 2 hours"}, nil)
	f.must(agent, 409, "POST", "/api/v1/tickets/"+tk.ID+"/complaint", map[string]any{"details": "twice"}, nil)
	pdf := []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n")
	var att store.TicketAttachment
	f.must(agent, 201, "POST", "/api/v1/tickets/"+tk.ID+"/attachments?name=letter.pdf", pdf, &att)
	if att.Type != "application/pdf" || att.Size != len(pdf) {
		t.Fatalf("attachment = %+v", att)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/tickets/"+tk.ID+"/attachments/"+att.ID, nil)
	resp, err := agent.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pdf" || resp.ContentLength != int64(len(pdf)) {
		t.Fatalf("attachment download = %d %s %d", resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength)
	}
	f.must(agent, 403, "POST", "/api/v1/tickets/"+tk.ID+"/complaint/result", map[string]any{"result": "apologised", "fed_back_via": "phone"}, nil)
	var done desk.TicketView
	f.must(sup, 200, "POST", "/api/v1/tickets/"+tk.ID+"/complaint/result", map[string]any{"result": "apologised; staffing fixed", "fed_back_via": "phone"}, &done)
	if c := done.Complaint; c == nil || c.Result == "" || c.FedBackVia != "phone" || c.FedBackBy != "staff:sup1" {
		t.Fatalf("complaint = %+v", c)
	}

	// Quality feedback: a deadline that passes is recorded as a breach; the
	// result comes later and is kept.
	f.must(eng, 200, "POST", "/api/v1/tickets/"+tk.ID+"/quality-feedback", map[string]any{"problem": "batch of faulty tokens", "deadline": start.Add(24 * time.Hour)}, nil)
	f.env.Clock.Advance(25 * time.Hour)
	f.evaluate()
	got := f.ticket(tk.ID)
	if !got.Feedback[0].Overdue || f.breaches(desk.ClockFeedback) != 1 {
		t.Fatalf("feedback overdue %v, breaches %v", got.Feedback[0].Overdue, f.breaches(desk.ClockFeedback))
	}
	var res desk.TicketView
	f.must(eng, 200, "POST", "/api/v1/tickets/"+tk.ID+"/quality-feedback/1/result", map[string]any{"result": "supplier replaced the batch"}, &res)
	if res.Feedback[0].Result == "" || !res.Feedback[0].Overdue {
		t.Fatalf("feedback = %+v", res.Feedback[0])
	}
	f.must(eng, 409, "POST", "/api/v1/tickets/"+tk.ID+"/quality-feedback/1/result", map[string]any{"result": "again"}, nil)
	f.must(eng, 404, "POST", "/api/v1/tickets/"+tk.ID+"/quality-feedback/2/result", map[string]any{"result": "none"}, nil)
}
