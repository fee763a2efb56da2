package desk

import (
	"io"
	"net/http"
	"strconv"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Routes lists the desk's endpoints. Staff routes are for the desk roles;
// self-service routes authenticate the caller's certificate themselves (a
// subscriber's certificate is not an API credential of the authenticator),
// so they are Public to the route table; the survey link is its own
// credential.
func (d *Desk) Routes() []httpapi.Route {
	staff := httpapi.Access{Roles: []string{httpapi.RoleServiceAgent, httpapi.RoleEngineer, httpapi.RoleTechnicalCentre, httpapi.RoleSupervisor}}
	engineers := httpapi.Access{Roles: []string{httpapi.RoleEngineer, httpapi.RoleTechnicalCentre, httpapi.RoleSupervisor}}
	supervisors := httpapi.Access{Roles: []string{httpapi.RoleSupervisor}}
	public := httpapi.Access{Public: true}
	return []httpapi.Route{
		{Method: "POST", Pattern: "/api/v1/tickets", Handler: d.create, Access: staff},
		{Method: "GET", Pattern: "/api/v1/tickets", Handler: d.list, Access: staff},
		{Method: "GET", Pattern: "/api/v1/tickets/{id}", Handler: d.show, Access: staff},
		{Method: "GET", Pattern: "/api/v1/tickets/{id}/duplicates", Handler: d.duplicatesOf, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/transition", Handler: d.transition, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/assign", Handler: d.assign, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/classify", Handler: d.classify, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/work", Handler: d.work, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/links", Handler: d.link, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/merge", Handler: d.merge, Access: staff},
		{Method: "POST", Pattern: attachPattern, Handler: d.attach, Access: staff},
		{Method: "GET", Pattern: "/api/v1/tickets/{id}/attachments/{att}", Handler: d.attachment, Access: staff},
		{Method: "GET", Pattern: "/api/v1/tickets/{id}/articles", Handler: d.articles, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/escalations", Handler: d.escalate, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/escalations/{n}/notes", Handler: d.escalationNote, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/quality-feedback", Handler: d.feedback, Access: engineers},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/quality-feedback/{n}/result", Handler: d.feedbackResult, Access: engineers},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/onsite", Handler: d.onSite, Access: engineers},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/onsite/{n}/report", Handler: d.onSiteReport, Access: engineers},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/onsite/{n}/return", Handler: d.onSiteReturn, Access: engineers},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/complaint", Handler: d.complain, Access: staff},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/complaint/result", Handler: d.complaintResult, Access: supervisors},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/replacement", Handler: d.replacement, Access: engineers},
		{Method: "POST", Pattern: "/api/v1/tickets/{id}/survey", Handler: d.recordSurvey, Access: staff},
		{Method: "GET", Pattern: "/api/v1/desk/reports", Handler: d.report, Access: supervisors},
		{Method: "POST", Pattern: "/api/v1/desk/evaluate", Handler: d.evaluate, Access: supervisors},
		{Method: "POST", Pattern: "/api/v1/surveys/{token}", Handler: d.answerSurvey, Access: public},
		{Method: "GET", Pattern: "/api/v1/self/tickets", Handler: d.selfTickets, Access: public},
		{Method: "POST", Pattern: "/api/v1/self/tickets", Handler: d.selfCreate, Access: public},
		{Method: "GET", Pattern: "/api/v1/self/tickets/{id}", Handler: d.selfTicket, Access: public},
		{Method: "GET", Pattern: "/api/v1/self/requests", Handler: d.selfRequests, Access: public},
		{Method: "GET", Pattern: "/api/v1/self/certificates", Handler: d.selfCerts, Access: public},
	}
}

// attachPattern is the upload route, whose body may be as large as
// desk.attachment_max_bytes; every other route keeps api.max_body_bytes.
const attachPattern = "/api/v1/tickets/{id}/attachments"

func principal(r *http.Request) *httpapi.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return p
}

// TicketView is a ticket as staff see it: the record without the survey
// token's hash, with the replacement request's state and, once, the survey
// link or the duplicates found.
type TicketView struct {
	*store.Ticket
	ReplacementState string      `json:"replacement_state,omitempty"`
	Duplicates       []string    `json:"duplicates,omitempty"`
	Warning          string      `json:"warning,omitempty"`
	Joined           bool        `json:"joined,omitempty"`
	SurveyLink       *SurveyLink `json:"survey_link,omitempty"`
}

func view(t *store.Ticket) TicketView {
	c := *t
	if c.Survey != nil {
		s := *c.Survey
		s.TokenHash = nil
		c.Survey = &s
	}
	return TicketView{Ticket: &c}
}

func (d *Desk) writeTicket(w http.ResponseWriter, r *http.Request, status int, t *store.Ticket) error {
	v := view(t)
	v.ReplacementState = d.replacementState(r.Context(), t)
	return httpapi.WriteJSON(w, status, v)
}

func (d *Desk) create(w http.ResponseWriter, r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	c, err := ParseCreate(b)
	if err != nil {
		return err
	}
	res, err := d.Create(r.Context(), principal(r).ID(), c)
	if err != nil {
		return err
	}
	v := view(res.Ticket)
	v.Duplicates, v.Joined = res.Duplicates, res.Joined
	if len(res.Duplicates) > 0 {
		v.Warning = "possible duplicate of open tickets of the same requester or certificate and category: merge with POST /api/v1/tickets/{id}/merge"
	}
	status := http.StatusCreated
	if res.Joined {
		status = http.StatusOK
	}
	return httpapi.WriteJSON(w, status, v)
}

func (d *Desk) list(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := httpapi.Page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := Filter{State: q.Get("state"), Group: q.Get("group"), Category: q.Get("category"), Assignee: q.Get("assignee"),
		Class: q.Get("class"), Channel: q.Get("channel"), Open: q.Get("open")}
	if f.Open != "" && f.Open != "true" && f.Open != "false" {
		return httpapi.BadRequest("open must be true or false")
	}
	ts, next, err := d.List(r.Context(), f, after, limit)
	if err != nil {
		return err
	}
	out := make([]TicketView, len(ts))
	for i, t := range ts {
		out[i] = view(t)
	}
	return httpapi.WritePage(w, out, next)
}

func (d *Desk) show(w http.ResponseWriter, r *http.Request) error {
	t, err := d.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	return d.writeTicket(w, r, http.StatusOK, t)
}

func (d *Desk) duplicatesOf(w http.ResponseWriter, r *http.Request) error {
	ids, err := d.Duplicates(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if ids == nil {
		ids = []string{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"duplicates": ids})
}

// decode reads a JSON body into a new T.
func decode[T any](r *http.Request) (T, error) {
	var v T
	return v, httpapi.DecodeJSON(r, &v)
}

// formNumber reads the {n} of a form's path.
func formNumber(r *http.Request) (int, error) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 1 {
		return 0, httpapi.BadRequest("form number %q is not a positive integer", r.PathValue("n"))
	}
	return n, nil
}

// do decodes a body of type T, applies fn and writes the ticket.
func do[T any](d *Desk, w http.ResponseWriter, r *http.Request, fn func(p *httpapi.Principal, id string, v T) (*store.Ticket, error)) error {
	v, err := decode[T](r)
	if err != nil {
		return err
	}
	t, err := fn(principal(r), r.PathValue("id"), v)
	if err != nil {
		return err
	}
	return d.writeTicket(w, r, http.StatusOK, t)
}

// doN is do for a numbered form.
func doN[T any](d *Desk, w http.ResponseWriter, r *http.Request, fn func(p *httpapi.Principal, id string, n int, v T) (*store.Ticket, error)) error {
	n, err := formNumber(r)
	if err != nil {
		return err
	}
	return do(d, w, r, func(p *httpapi.Principal, id string, v T) (*store.Ticket, error) { return fn(p, id, n, v) })
}

type transitionRequest struct {
	To   string `json:"to"`
	Note string `json:"note,omitempty"`
}

func (d *Desk) transition(w http.ResponseWriter, r *http.Request) error {
	v, err := decode[transitionRequest](r)
	if err != nil {
		return err
	}
	if _, ok := transitions[v.To]; !ok {
		return httpapi.BadRequest("to %q is not a state: new, assigned, in_progress, waiting_customer, resolved, closed, reopened", v.To)
	}
	if err := checkText("note", v.Note, 4000); err != nil {
		return err
	}
	t, link, err := d.Transition(r.Context(), principal(r), r.PathValue("id"), v.To, v.Note)
	if err != nil {
		return err
	}
	tv := view(t)
	tv.ReplacementState = d.replacementState(r.Context(), t)
	tv.SurveyLink = link
	return httpapi.WriteJSON(w, http.StatusOK, tv)
}

func (d *Desk) assign(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v AssignRequest) (*store.Ticket, error) {
		if err := checkText("note", v.Note, 4000); err != nil {
			return nil, err
		}
		return d.Assign(r.Context(), p, id, v)
	})
}

func (d *Desk) classify(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v ClassifyRequest) (*store.Ticket, error) {
		return d.Classify(r.Context(), p, id, v)
	})
}

func (d *Desk) work(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v WorkRequest) (*store.Ticket, error) {
		return d.Work(r.Context(), p, id, v)
	})
}

func (d *Desk) link(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v store.TicketLinks) (*store.Ticket, error) {
		return d.Link(r.Context(), p, id, v)
	})
}

type mergeRequest struct {
	Into string `json:"into"`
}

func (d *Desk) merge(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v mergeRequest) (*store.Ticket, error) {
		if v.Into == "" {
			return nil, httpapi.BadRequest("into is required")
		}
		return d.Merge(r.Context(), p, id, v.Into)
	})
}

func (d *Desk) attach(w http.ResponseWriter, r *http.Request) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, int64(d.cfg.AttachmentMaxBytes)+1))
	if err != nil {
		return err
	}
	t, att, err := d.Attach(r.Context(), principal(r), r.PathValue("id"), r.URL.Query().Get("name"), r.URL.Query().Get("note"), data)
	if err != nil {
		return err
	}
	_ = t
	return httpapi.WriteJSON(w, http.StatusCreated, att)
}

func (d *Desk) attachment(w http.ResponseWriter, r *http.Request) error {
	meta, data, err := d.Attachment(r.Context(), r.PathValue("id"), r.PathValue("att"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", meta.Type)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Disposition", "attachment; filename*=UTF-8''"+pathEscape(meta.Name))
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(data)
	return err
}

func (d *Desk) articles(w http.ResponseWriter, r *http.Request) error {
	if d.opts.Articles == nil {
		return httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "the knowledge base is not wired into the service desk")
	}
	t, err := d.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	q := r.URL.Query()
	query := q.Get("q")
	if query == "" {
		query = t.Subject
	}
	if err := checkText("q", query, 500); err != nil {
		return err
	}
	lang := q.Get("lang")
	if lang != "" && lang != "zh" && lang != "en" {
		return httpapi.BadRequest("lang %q is not one of zh, en", lang)
	}
	limit := 10
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 50 {
			return httpapi.BadRequest("limit must be between 1 and 50")
		}
		limit = n
	}
	hits, err := d.opts.Articles.Search(r.Context(), query, lang, limit)
	if err != nil {
		return err
	}
	if hits == nil {
		hits = []ArticleHit{}
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"ticket": t.ID, "query": query, "items": hits})
}

func (d *Desk) escalate(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v EscalationRequest) (*store.Ticket, error) {
		return d.Escalate(r.Context(), p, id, v)
	})
}

func (d *Desk) escalationNote(w http.ResponseWriter, r *http.Request) error {
	return doN(d, w, r, func(p *httpapi.Principal, id string, n int, v NoteRequest) (*store.Ticket, error) {
		return d.EscalationNote(r.Context(), p, id, n, v)
	})
}

func (d *Desk) feedback(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v FeedbackRequest) (*store.Ticket, error) {
		return d.QualityFeedback(r.Context(), p, id, v)
	})
}

func (d *Desk) feedbackResult(w http.ResponseWriter, r *http.Request) error {
	return doN(d, w, r, func(p *httpapi.Principal, id string, n int, v ResultRequest) (*store.Ticket, error) {
		return d.FeedbackResult(r.Context(), p, id, n, v)
	})
}

func (d *Desk) onSite(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v OnSiteRequest) (*store.Ticket, error) {
		return d.OnSite(r.Context(), p, id, v)
	})
}

func (d *Desk) onSiteReport(w http.ResponseWriter, r *http.Request) error {
	return doN(d, w, r, func(p *httpapi.Principal, id string, n int, v OnSiteReport) (*store.Ticket, error) {
		return d.ReportOnSite(r.Context(), p, id, n, v)
	})
}

func (d *Desk) onSiteReturn(w http.ResponseWriter, r *http.Request) error {
	n, err := formNumber(r)
	if err != nil {
		return err
	}
	t, err := d.ReturnOnSite(r.Context(), principal(r), r.PathValue("id"), n)
	if err != nil {
		return err
	}
	return d.writeTicket(w, r, http.StatusOK, t)
}

func (d *Desk) complain(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v ComplaintRequest) (*store.Ticket, error) {
		return d.Complain(r.Context(), p, id, v)
	})
}

func (d *Desk) complaintResult(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v ResultRequest) (*store.Ticket, error) {
		return d.ComplaintResult(r.Context(), p, id, v)
	})
}

func (d *Desk) replacement(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v ReplacementConfirm) (*store.Ticket, error) {
		return d.ConfirmReplacement(r.Context(), p, id, v)
	})
}

func (d *Desk) recordSurvey(w http.ResponseWriter, r *http.Request) error {
	return do(d, w, r, func(p *httpapi.Principal, id string, v SurveyAnswer) (*store.Ticket, error) {
		return d.RecordSurvey(r.Context(), p, id, v)
	})
}

func (d *Desk) answerSurvey(w http.ResponseWriter, r *http.Request) error {
	v, err := decode[SurveyAnswer](r)
	if err != nil {
		return err
	}
	if v.Channel != "" && v.Channel != "web" {
		return httpapi.BadRequest("a survey link answers on the web; channel %q is recorded by staff", v.Channel)
	}
	if err := d.AnswerSurvey(r.Context(), r.PathValue("token"), v); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]string{"status": "thank you"})
}

func (d *Desk) evaluate(w http.ResponseWriter, r *http.Request) error {
	n, err := d.Evaluate(r.Context())
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]int{"changed": n})
}

// pathEscape percent-encodes a file name for Content-Disposition's
// filename* (RFC 5987): everything but unreserved characters.
func pathEscape(s string) string {
	const hexd = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexd[c>>4], hexd[c&15])
	}
	return string(b)
}
