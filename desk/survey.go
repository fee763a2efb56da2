package desk

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// SurveyLink is the one-time web link of a closed ticket's satisfaction
// survey. The token is shown once; the store keeps its hash.
type SurveyLink struct {
	Token   string    `json:"token"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// openSurvey makes the survey of a ticket that closes: a random token
// whose hash maps to the ticket. A ticket reopened and closed again keeps
// an answered survey and gets a new link otherwise.
func (d *Desk) openSurvey(tx *store.Tx, t *store.Ticket, now time.Time) (*SurveyLink, error) {
	if t.Survey != nil && !t.Survey.AnsweredAt.IsZero() {
		return nil, nil
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw)
	h := sha256.Sum256([]byte(tok))
	exp := now.Add(d.cfg.SurveyTTL.D())
	t.Survey = &store.TicketSurvey{TokenHash: h[:], Expires: exp}
	if err := tx.PutTicketSurveyToken(h[:], t.ID); err != nil {
		return nil, err
	}
	return &SurveyLink{Token: tok, URL: strings.TrimRight(d.cfg.SurveyBaseURL, "/") + "/api/v1/surveys/" + tok, Expires: exp}, nil
}

// SurveyAnswer is a customer's answer.
type SurveyAnswer struct {
	Score    int    `json:"score"`
	Comments string `json:"comments,omitempty"`
	// Channel is how a recorded answer came (phone, mail, sms, fax); the
	// web link sets "web".
	Channel string `json:"channel,omitempty"`
}

func (a SurveyAnswer) check() error {
	if a.Score < 1 || a.Score > 5 {
		return httpapi.BadRequest("score must be between 1 and 5")
	}
	return checkText("comments", a.Comments, 4000)
}

// AnswerSurvey records the answer given through a one-time link. A link
// used before, expired or unknown is refused and nothing changes.
func (d *Desk) AnswerSurvey(ctx context.Context, token string, a SurveyAnswer) error {
	if err := a.check(); err != nil {
		return err
	}
	if len(token) > 64 {
		return httpapi.NotFound("no survey has this link")
	}
	h := sha256.Sum256([]byte(token))
	return d.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		id, err := tx.TicketBySurveyToken(h[:])
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("no survey has this link")
		} else if err != nil {
			return err
		}
		t, err := tx.Ticket(id)
		if err != nil {
			return err
		}
		s := t.Survey
		now := d.now()
		switch {
		case s == nil || subtle.ConstantTimeCompare(s.TokenHash, h[:]) != 1:
			return httpapi.Errorf(http.StatusGone, "survey_link_replaced", "this survey link was replaced by a newer one")
		case !s.AnsweredAt.IsZero():
			return httpapi.Errorf(http.StatusConflict, "survey_answered", "this survey was already answered on %s; a link is used once", s.AnsweredAt.UTC().Format(time.RFC3339))
		case now.After(s.Expires):
			return httpapi.Errorf(http.StatusGone, "survey_expired", "this survey link expired on %s", s.Expires.UTC().Format(time.RFC3339))
		}
		s.Channel, s.Score, s.Comments, s.AnsweredAt = "web", a.Score, a.Comments, now
		event(t, now, "customer", "survey", "", "", "score "+strconv.Itoa(a.Score))
		t.UpdatedAt = now
		if err := tx.PutTicket(t); err != nil {
			return err
		}
		d.m.surveys.WithLabelValues("web", strconv.Itoa(a.Score)).Inc()
		return log(audit.Record{Actor: "customer", Action: "desk.survey", Object: "ticket/" + t.ID, Details: map[string]string{"channel": "web", "score": strconv.Itoa(a.Score)}})
	})
}

// RecordSurvey records an answer given by phone (or mail, SMS, fax) to
// staff. A survey answers once, whichever way.
func (d *Desk) RecordSurvey(ctx context.Context, p *httpapi.Principal, id string, a SurveyAnswer) (*store.Ticket, error) {
	if err := a.check(); err != nil {
		return nil, err
	}
	switch a.Channel {
	case "phone", "mail", "sms", "fax":
	default:
		return nil, httpapi.BadRequest("channel %q is not one of phone, mail, sms, fax (the web answer uses its link)", a.Channel)
	}
	t, err := d.mutate(ctx, id, p.ID(), "survey", map[string]string{"channel": a.Channel, "score": strconv.Itoa(a.Score)}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		if t.State != StateClosed {
			return httpapi.Conflict("ticket %s is %s: surveys follow closing", t.ID, t.State)
		}
		if t.Survey == nil {
			t.Survey = &store.TicketSurvey{}
		}
		if !t.Survey.AnsweredAt.IsZero() {
			return httpapi.Errorf(http.StatusConflict, "survey_answered", "the survey of ticket %s was already answered", t.ID)
		}
		t.Survey.Channel, t.Survey.Score, t.Survey.Comments, t.Survey.AnsweredAt, t.Survey.RecordedBy = a.Channel, a.Score, a.Comments, now, p.ID()
		event(t, now, p.ID(), "survey", "", "", a.Channel+" score "+strconv.Itoa(a.Score))
		return nil
	})
	if err == nil {
		d.m.surveys.WithLabelValues(a.Channel, strconv.Itoa(a.Score)).Inc()
	}
	return t, err
}

// maxNameLen bounds an attachment's file name.
const maxNameLen = 200

// Attach stores an attachment whose type, detected from its content by
// http.DetectContentType, is on desk.attachment_types; the name a client
// gives does not decide the type.
func (d *Desk) Attach(ctx context.Context, p *httpapi.Principal, id, name, note string, data []byte) (*store.Ticket, *store.TicketAttachment, error) {
	if len(data) == 0 {
		return nil, nil, httpapi.BadRequest("the attachment is empty")
	}
	if int64(len(data)) > int64(d.cfg.AttachmentMaxBytes) {
		return nil, nil, httpapi.Errorf(http.StatusRequestEntityTooLarge, "too_large", "attachment is over desk.attachment_max_bytes (%d bytes)", d.cfg.AttachmentMaxBytes)
	}
	if name == "" {
		name = "attachment"
	}
	if err := checkText("name", name, maxNameLen); err != nil {
		return nil, nil, err
	}
	if err := checkText("note", note, 2000); err != nil {
		return nil, nil, err
	}
	typ := http.DetectContentType(data)
	mt, _, err := mime.ParseMediaType(typ)
	if err != nil || !d.allowed[mt] {
		return nil, nil, httpapi.Errorf(http.StatusUnsupportedMediaType, "type_refused", "attachment content is %s, which is not on desk.attachment_types %v", typ, d.cfg.AttachmentTypes)
	}
	sum := sha256.Sum256(data)
	var att store.TicketAttachment
	t, err := d.mutate(ctx, id, p.ID(), "attach", map[string]string{"name": name, "type": mt}, func(tx *store.Tx, t *store.Ticket, now time.Time) error {
		att = store.TicketAttachment{ID: "A" + strconv.Itoa(len(t.Attachments)+1), Name: name, Type: mt, Size: len(data),
			SHA256: base64.RawStdEncoding.EncodeToString(sum[:]), Note: note, At: now, By: p.ID()}
		for _, a := range t.Attachments {
			if a.ID == att.ID {
				att.ID = "A" + strconv.FormatInt(now.UnixNano(), 36)
			}
		}
		if err := tx.PutTicketAttachment(t.ID, att.ID, data); err != nil {
			return err
		}
		t.Attachments = append(t.Attachments, att)
		event(t, now, p.ID(), "attach", "", "", att.ID+" "+name+" ("+mt+")")
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return t, &att, nil
}

// Attachment reads an attachment's description and bytes.
func (d *Desk) Attachment(ctx context.Context, id, att string) (*store.TicketAttachment, []byte, error) {
	var meta *store.TicketAttachment
	var data []byte
	err := d.st.View(ctx, func(tx *store.Tx) error {
		t, err := readTicket(tx, id)
		if err != nil {
			return err
		}
		for i := range t.Attachments {
			if t.Attachments[i].ID == att {
				meta = &t.Attachments[i]
			}
		}
		if meta == nil {
			return httpapi.NotFound("ticket %s has no attachment %q", id, att)
		}
		data, err = tx.TicketAttachmentData(id, att)
		return err
	})
	return meta, data, err
}
