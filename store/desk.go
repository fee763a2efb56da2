package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Records of the service desk (package desk). The store keeps them and their
// indexes; desk decides what they mean.

// KindTicket is the Change kind of a ticket write.
const KindTicket Kind = "ticket"

var (
	pTicket     = []byte("tk\x00")
	pTicketAtt  = []byte("tkatt\x00")
	pTicketSurv = []byte("tksurvey\x00")
	// pIdxTkDue orders open tickets by their next SLA deadline, so the
	// evaluation loop reads only the tickets that are due.
	pIdxTkDue = []byte("i\x00tkdue\x00")
	pIdxTkReq = []byte("i\x00tkreq\x00")
	pIdxTkCrt = []byte("i\x00tkcert\x00")
	pIdxTkOrg = []byte("i\x00tkorg\x00")
	pIdxTkSub = []byte("i\x00tksub\x00")
)

// TicketRequester is who asked: a person or an organisation.
type TicketRequester struct {
	// Kind is "person" or "organisation".
	Kind string `json:"kind"`
	Name string `json:"name"`
	// OrgID and SubscriberID tie the ticket to an RA organisation and a
	// subscriber, for self-service and duplicate detection.
	OrgID        string `json:"org,omitempty"`
	SubscriberID string `json:"subscriber,omitempty"`
	Phone        string `json:"phone,omitempty"`
	Email        string `json:"email,omitempty"`
	Address      string `json:"address,omitempty"`
}

// TicketLinks are the records a ticket is about.
type TicketLinks struct {
	Certs      []string `json:"certificates,omitempty"` // hex serials
	Tokens     []string `json:"tokens,omitempty"`
	Orgs       []string `json:"organisations,omitempty"`
	RARequests []string `json:"ra_requests,omitempty"`
}

// TicketWork is one work-log entry (SPEC Art. 22).
type TicketWork struct {
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Product   string    `json:"product,omitempty"`
	Symptom   string    `json:"symptom,omitempty"`
	Diagnosis []string  `json:"diagnosis,omitempty"`
	Solution  string    `json:"solution,omitempty"`
	Note      string    `json:"note,omitempty"`
}

// TicketEvent is one entry of a ticket's history.
type TicketEvent struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Note   string    `json:"note,omitempty"`
	// Ticket is set on events copied from a merged ticket.
	Ticket string `json:"ticket,omitempty"`
}

// TicketAttachment describes an attachment; its bytes are kept apart
// (TicketAttachmentData).
type TicketAttachment struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Type   string    `json:"type"`
	Size   int       `json:"size"`
	SHA256 string    `json:"sha256"`
	Note   string    `json:"note,omitempty"`
	At     time.Time `json:"at"`
	By     string    `json:"by"`
}

// TicketBreach records an SLA target missed.
type TicketBreach struct {
	Kind string    `json:"kind"`
	Due  time.Time `json:"due"`
	At   time.Time `json:"at"`
}

// TicketSLA is a ticket's clocks. Targets are business durations on the
// ticket's calendar; the dues are instants.
type TicketSLA struct {
	// Calendar is "5x8" or "7x24".
	Calendar       string        `json:"calendar"`
	ResponseTarget time.Duration `json:"response_target"`
	ResolveTarget  time.Duration `json:"resolve_target"`
	ResponseDue    time.Time     `json:"response_due,omitzero"`
	ResolveDue     time.Time     `json:"resolve_due,omitzero"`
	RespondedAt    time.Time     `json:"responded_at,omitzero"`
	// HandoverDue is when the group a ticket was passed to must have taken
	// it (SPEC Art. 22); zero when no hand-over is pending.
	HandoverDue   time.Time `json:"handover_due,omitzero"`
	HandoverGroup string    `json:"handover_group,omitempty"`
	// PausedAt is set while the ticket waits for the customer; PausedFor is
	// the business time spent waiting so far.
	PausedAt  time.Time      `json:"paused_at,omitzero"`
	PausedFor time.Duration  `json:"paused_for,omitempty"`
	Warned    []string       `json:"warned,omitempty"`
	Breaches  []TicketBreach `json:"breaches,omitempty"`
}

// TicketEscalation is the escalation form (SPEC Art. 24).
type TicketEscalation struct {
	N         int                  `json:"n"`
	From      string               `json:"from_group"`
	To        string               `json:"to_group"`
	Product   string               `json:"product"`
	User      string               `json:"user"`
	Symptom   string               `json:"symptom"`
	TimeLimit time.Time            `json:"time_limit"`
	By        string               `json:"by"`
	At        time.Time            `json:"at"`
	Notes     []TicketProgressNote `json:"notes,omitempty"`
}

// TicketProgressNote is a progress note of an escalation; CustomerInformed
// marks that the customer was told.
type TicketProgressNote struct {
	At               time.Time `json:"at"`
	By               string    `json:"by"`
	Note             string    `json:"note"`
	CustomerInformed bool      `json:"customer_informed,omitempty"`
}

// TicketFeedback is a major-quality feedback form with a deadline, tracked
// to its result (SPEC Art. 24).
type TicketFeedback struct {
	N        int       `json:"n"`
	Problem  string    `json:"problem"`
	Deadline time.Time `json:"deadline"`
	By       string    `json:"by"`
	At       time.Time `json:"at"`
	Result   string    `json:"result,omitempty"`
	ResultAt time.Time `json:"result_at,omitzero"`
	ResultBy string    `json:"result_by,omitempty"`
	Overdue  bool      `json:"overdue,omitempty"`
}

// TicketOnSite is an on-site service form (SPEC Art. 23).
type TicketOnSite struct {
	N         int       `json:"n"`
	Engineer  string    `json:"engineer"`
	Address   string    `json:"address,omitempty"`
	Scheduled time.Time `json:"scheduled,omitzero"`
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	// Process is the detailed process of the visit; Finished or the
	// UnfinishedReason says how it ended.
	Process          string    `json:"process,omitempty"`
	Finished         bool      `json:"finished,omitempty"`
	UnfinishedReason string    `json:"unfinished_reason,omitempty"`
	ConfirmedBy      string    `json:"customer_confirmed_by,omitempty"`
	ConfirmedAt      time.Time `json:"customer_confirmed_at,omitzero"`
	ReportedAt       time.Time `json:"reported_at,omitzero"`
	Returned         bool      `json:"returned,omitempty"`
	ReturnedAt       time.Time `json:"returned_at,omitzero"`
}

// TicketComplaint is a complaint (SPEC Art. 26): recorded, its result fed
// back; documents are the ticket's attachments.
type TicketComplaint struct {
	Against    string    `json:"against,omitempty"`
	Details    string    `json:"details"`
	By         string    `json:"by"`
	At         time.Time `json:"at"`
	Result     string    `json:"result,omitempty"`
	FedBackVia string    `json:"fed_back_via,omitempty"`
	FedBackAt  time.Time `json:"fed_back_at,omitzero"`
	FedBackBy  string    `json:"fed_back_by,omitempty"`
}

// TicketReplacement is the RA replacement request a USBKey replacement
// ticket opened (SPEC Art. 25).
type TicketReplacement struct {
	RequestID   string    `json:"request"`
	Token       string    `json:"token,omitempty"`
	ConfirmedBy string    `json:"confirmed_by"`
	At          time.Time `json:"at"`
}

// TicketSurvey is the satisfaction survey of a closed ticket.
type TicketSurvey struct {
	// TokenHash is the SHA-256 of the one-time web link's token; the
	// token itself is shown once, when the ticket closes.
	TokenHash  []byte    `json:"token_hash,omitempty"`
	Expires    time.Time `json:"expires,omitzero"`
	Channel    string    `json:"channel,omitempty"`
	Score      int       `json:"score,omitempty"`
	Comments   string    `json:"comments,omitempty"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	RecordedBy string    `json:"recorded_by,omitempty"`
}

// Ticket is one service desk ticket.
type Ticket struct {
	ID          string             `json:"id"`
	Channel     string             `json:"channel"`
	Category    string             `json:"category"`
	Class       string             `json:"class"`
	Emergency   bool               `json:"emergency,omitempty"`
	ServiceMode string             `json:"service_mode,omitempty"`
	Requester   TicketRequester    `json:"requester"`
	Subject     string             `json:"subject"`
	Description string             `json:"description,omitempty"`
	State       string             `json:"state"`
	Group       string             `json:"group"`
	Assignee    string             `json:"assignee,omitempty"`
	Links       TicketLinks        `json:"links"`
	WorkLog     []TicketWork       `json:"work_log,omitempty"`
	History     []TicketEvent      `json:"history"`
	Attachments []TicketAttachment `json:"attachments,omitempty"`
	SLA         TicketSLA          `json:"sla"`
	Escalations []TicketEscalation `json:"escalations,omitempty"`
	Feedback    []TicketFeedback   `json:"quality_feedback,omitempty"`
	OnSite      []TicketOnSite     `json:"on_site,omitempty"`
	Complaint   *TicketComplaint   `json:"complaint,omitempty"`
	Replacement *TicketReplacement `json:"replacement,omitempty"`
	Survey      *TicketSurvey      `json:"survey,omitempty"`
	MergedInto  string             `json:"merged_into,omitempty"`
	MergedFrom  []string           `json:"merged_from,omitempty"`
	CreatedBy   string             `json:"created_by"`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
	ResolvedAt  time.Time          `json:"resolved_at,omitzero"`
	ClosedAt    time.Time          `json:"closed_at,omitzero"`
	// Open is false once the ticket is resolved, closed or merged.
	Open bool `json:"open"`
	// NextDue is the earliest pending deadline of the ticket (SLA clocks,
	// hand-over, quality feedback); zero when none. PutTicket indexes it.
	NextDue time.Time `json:"next_due,omitzero"`
}

// RequesterKey is what duplicate detection compares requesters by: the
// subscriber, else the organisation, else the contact.
func (t *Ticket) RequesterKey() string {
	r := t.Requester
	switch {
	case r.SubscriberID != "":
		return "sub:" + r.SubscriberID
	case r.OrgID != "":
		return "org:" + r.OrgID
	case r.Phone != "":
		return "phone:" + r.Phone
	case r.Email != "":
		return "mail:" + strings.ToLower(r.Email)
	}
	return "name:" + strings.ToLower(r.Name)
}

// ticketIndexKeys lists the index keys a ticket holds.
func ticketIndexKeys(t *Ticket) [][]byte {
	id := []byte(t.ID)
	var ks [][]byte
	// Duplicate detection asks only for open tickets: the requester and
	// certificate indexes hold those, so an organisation's years of closed
	// tickets are not read at every call.
	if t.Open {
		cat0 := fold(t.Category)
		ks = append(ks, cat(pIdxTkReq, fold(t.RequesterKey()), cat0, id))
		for _, c := range t.Links.Certs {
			ks = append(ks, cat(pIdxTkCrt, fold(c), cat0, id))
		}
	}
	orgs := map[string]bool{}
	if t.Requester.OrgID != "" {
		orgs[t.Requester.OrgID] = true
	}
	for _, o := range t.Links.Orgs {
		orgs[o] = true
	}
	for o := range orgs {
		ks = append(ks, cat(pIdxTkOrg, []byte(o), id))
	}
	if t.Requester.SubscriberID != "" {
		ks = append(ks, cat(pIdxTkSub, []byte(t.Requester.SubscriberID), id))
	}
	if t.Open && !t.NextDue.IsZero() {
		ks = append(ks, dueKey(t.NextDue, t.ID))
	}
	return ks
}

func dueKey(at time.Time, id string) []byte {
	var b [8]byte
	n := at.UnixNano()
	if n < 0 {
		n = 0
	}
	for i := 7; i >= 0; i-- {
		b[i] = byte(n)
		n >>= 8
	}
	return cat(pIdxTkDue, b[:], []byte(id))
}

// PutTicket writes a ticket and keeps its indexes in step with the stored
// version.
func (tx *Tx) PutTicket(t *Ticket) error {
	if t.ID == "" {
		return errors.New("ticket without ID")
	}
	keep := map[string]bool{}
	for _, k := range ticketIndexKeys(t) {
		keep[string(k)] = true
	}
	if old, err := tx.Ticket(t.ID); err == nil {
		for _, k := range ticketIndexKeys(old) {
			if !keep[string(k)] {
				if err := tx.txn.Delete(k); err != nil {
					return fmt.Errorf("deleting index of ticket %s: %w", t.ID, err)
				}
			}
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	for k := range keep {
		if err := tx.set([]byte(k), nil); err != nil {
			return fmt.Errorf("indexing ticket %s: %w", t.ID, err)
		}
	}
	v, err := encode(t)
	if err != nil {
		return fmt.Errorf("encoding ticket %s: %w", t.ID, err)
	}
	if err := tx.set(cat(pTicket, []byte(t.ID)), v); err != nil {
		return fmt.Errorf("writing ticket %s: %w", t.ID, err)
	}
	tx.changed(KindTicket, t.ID)
	return nil
}

// Ticket reads a ticket; the error wraps ErrNotFound if there is none.
func (tx *Tx) Ticket(id string) (*Ticket, error) {
	b, err := tx.get(cat(pTicket, []byte(id)))
	if err != nil {
		return nil, fmt.Errorf("reading ticket %s: %w", id, err)
	}
	var t Ticket
	if err := decode(b, &t); err != nil {
		return nil, fmt.Errorf("decoding ticket %s: %w", id, err)
	}
	return &t, nil
}

// TicketPage returns up to limit tickets after the ID after (all from the
// start if empty), in ID order, that keep accepts (nil accepts all), and
// the ID to continue from ("" at the end).
func (tx *Tx) TicketPage(after string, limit int, keep func(*Ticket) bool) ([]*Ticket, string, error) {
	var out []*Ticket
	var start []byte
	if after != "" {
		start = append(cat(pTicket, []byte(after)), 0)
	}
	next := ""
	err := tx.scan(pTicket, start, true, func(k, v []byte) error {
		if len(out) == limit {
			next = out[len(out)-1].ID
			return errStop
		}
		var t Ticket
		if err := decode(v, &t); err != nil {
			return fmt.Errorf("decoding ticket %q: %w", k[len(pTicket):], err)
		}
		if keep == nil || keep(&t) {
			out = append(out, &t)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, "", err
	}
	return out, next, nil
}

// EachTicket streams every ticket in ID order.
func (tx *Tx) EachTicket(fn func(*Ticket) error) error {
	return tx.scan(pTicket, nil, true, func(k, v []byte) error {
		var t Ticket
		if err := decode(v, &t); err != nil {
			return fmt.Errorf("decoding ticket %q: %w", k[len(pTicket):], err)
		}
		return fn(&t)
	})
}

// TicketSummary is the part of a ticket reports read: decoding only it
// skips building histories, work logs and forms.
type TicketSummary struct {
	ID         string    `json:"id"`
	Channel    string    `json:"channel"`
	Category   string    `json:"category"`
	Class      string    `json:"class"`
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"created_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	ClosedAt   time.Time `json:"closed_at,omitzero"`
	MergedInto string    `json:"merged_into,omitempty"`
	SLA        struct {
		Breaches []struct {
			Kind string `json:"kind"`
		} `json:"breaches,omitempty"`
	} `json:"sla"`
	Survey *struct {
		Score      int       `json:"score,omitempty"`
		AnsweredAt time.Time `json:"answered_at,omitzero"`
	} `json:"survey,omitempty"`
}

// EachTicketSummary streams every ticket's summary in ID order.
func (tx *Tx) EachTicketSummary(fn func(*TicketSummary) error) error {
	return tx.scan(pTicket, nil, true, func(k, v []byte) error {
		var t TicketSummary
		if err := decode(v, &t); err != nil {
			return fmt.Errorf("decoding ticket %q: %w", k[len(pTicket):], err)
		}
		return fn(&t)
	})
}

// ticketsUnder streams the tickets named by the index keys under prefix.
func (tx *Tx) ticketsUnder(prefix []byte, fn func(*Ticket) error) error {
	var ids []string
	if err := tx.scan(prefix, nil, false, func(k, _ []byte) error {
		ids = append(ids, string(k[len(prefix):]))
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		t, err := tx.Ticket(id)
		if err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

// OpenTicketsByRequester streams the open tickets of a requester key
// (RequesterKey) in a category (the key of duplicate detection).
func (tx *Tx) OpenTicketsByRequester(key, category string, fn func(*Ticket) error) error {
	return tx.ticketsUnder(cat(pIdxTkReq, fold(key), fold(category), nil), fn)
}

// OpenTicketsByCert streams the open tickets linked to a certificate (hex
// serial) in a category.
func (tx *Tx) OpenTicketsByCert(serialHex, category string, fn func(*Ticket) error) error {
	return tx.ticketsUnder(cat(pIdxTkCrt, fold(serialHex), fold(category), nil), fn)
}

// TicketsByOrg streams the tickets of an organisation (requester or link).
func (tx *Tx) TicketsByOrg(org string, fn func(*Ticket) error) error {
	return tx.ticketsUnder(cat(pIdxTkOrg, []byte(org), nil), fn)
}

// TicketsBySubscriber streams the tickets a subscriber asked.
func (tx *Tx) TicketsBySubscriber(sub string, fn func(*Ticket) error) error {
	return tx.ticketsUnder(cat(pIdxTkSub, []byte(sub), nil), fn)
}

// TicketsDue streams the IDs of open tickets whose NextDue is in [from,
// until], earliest first (from zero: from the start). It reads the due
// index only, so its cost is the number of tickets due, not the number of
// tickets; starting at from also skips the deleted entries of deadlines
// already handled, which an LSM store keeps until compaction.
func (tx *Tx) TicketsDue(from, until time.Time, fn func(id string, due time.Time) error) error {
	end := dueKey(until, "")
	var start []byte
	if !from.IsZero() {
		start = dueKey(from, "")
	}
	err := tx.scan(pIdxTkDue, start, false, func(k, _ []byte) error {
		if bytes.Compare(k, end) > 0 && !bytes.HasPrefix(k, end) {
			return errStop
		}
		rest := k[len(pIdxTkDue):]
		if len(rest) < 9 {
			return nil
		}
		var n int64
		for _, b := range rest[:8] {
			n = n<<8 | int64(b)
		}
		return fn(string(rest[9:]), time.Unix(0, n))
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// PutTicketAttachment stores an attachment's bytes.
func (tx *Tx) PutTicketAttachment(ticket, id string, data []byte) error {
	if err := tx.set(cat(pTicketAtt, []byte(ticket), []byte(id)), data); err != nil {
		return fmt.Errorf("writing attachment %s of ticket %s: %w", id, ticket, err)
	}
	return nil
}

// TicketAttachmentData reads an attachment's bytes.
func (tx *Tx) TicketAttachmentData(ticket, id string) ([]byte, error) {
	b, err := tx.get(cat(pTicketAtt, []byte(ticket), []byte(id)))
	if err != nil {
		return nil, fmt.Errorf("reading attachment %s of ticket %s: %w", id, ticket, err)
	}
	return b, nil
}

// PutTicketSurveyToken maps a survey token's hash to its ticket.
func (tx *Tx) PutTicketSurveyToken(hash []byte, ticket string) error {
	return tx.set(cat(pTicketSurv, hash), []byte(ticket))
}

// TicketBySurveyToken returns the ticket a survey token's hash belongs to.
func (tx *Tx) TicketBySurveyToken(hash []byte) (string, error) {
	b, err := tx.get(cat(pTicketSurv, hash))
	return string(b), err
}
