package desk

import (
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// selfUser is a self-service caller (SPEC Art. 16): an organisation's
// certificate administrator, who sees the organisation's records, or a
// subscriber, who sees their own.
type selfUser struct {
	Org        string // set for an administrator
	Admin      string
	Subscriber string // set for a subscriber
	Serial     []byte // the credential
}

func (u *selfUser) id() string {
	if u.Org != "" {
		return "admin:" + u.Admin
	}
	return "subscriber:" + u.Subscriber
}

// selfAuth authenticates a self-service caller by the TLS client
// certificate: one known to the store, unrevoked and unexpired, that
// belongs to an organisation's certificate administrator or to a
// subscriber. Staff use the staff routes.
func (d *Desk) selfAuth(r *http.Request) (*selfUser, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return nil, httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "a client certificate issued by this CA is required")
	}
	leaf := r.TLS.VerifiedChains[0][0]
	u := &selfUser{Serial: leaf.SerialNumber.Bytes()}
	err := d.st.View(r.Context(), func(tx *store.Tx) error {
		c, err := tx.Cert(u.Serial)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %x is not known to this CA", u.Serial)
		} else if err != nil {
			return err
		}
		if c.Status == store.StatusRevoked {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s is revoked", c.SerialHex())
		}
		if d.now().After(c.NotAfter) {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s has expired", c.SerialHex())
		}
		if _, err := tx.StaffByCert(c.Serial); err == nil {
			return httpapi.Forbidden("client certificate %s belongs to CA staff: use /api/v1/tickets", c.SerialHex())
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if a, err := tx.CertAdminByCert(c.Serial); err == nil {
			u.Org, u.Admin = a.OrgID, a.ID
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if c.SubscriberID == "" {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s belongs to no subscriber or certificate administrator", c.SerialHex())
		}
		u.Subscriber = c.SubscriberID
		return nil
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// sees says whether u may see ticket t.
func (u *selfUser) sees(t *store.Ticket) bool {
	if u.Org != "" {
		return t.Requester.OrgID == u.Org || slices.Contains(t.Links.Orgs, u.Org)
	}
	return t.Requester.SubscriberID == u.Subscriber
}

// selfView is a ticket as its requester sees it: no internal work log
// authors, attachments' bytes or survey token.
type selfView struct {
	ID          string                `json:"id"`
	Channel     string                `json:"channel"`
	Category    string                `json:"category"`
	Class       string                `json:"class"`
	Subject     string                `json:"subject"`
	State       string                `json:"state"`
	Requester   store.TicketRequester `json:"requester"`
	Links       store.TicketLinks     `json:"links"`
	Solutions   []string              `json:"solutions,omitempty"`
	Replacement string                `json:"replacement_state,omitempty"`
	CreatedAt   time.Time             `json:"created_at"`
	UpdatedAt   time.Time             `json:"updated_at"`
	ResolvedAt  time.Time             `json:"resolved_at,omitzero"`
	ClosedAt    time.Time             `json:"closed_at,omitzero"`
	MergedInto  string                `json:"merged_into,omitempty"`
}

func toSelf(t *store.Ticket) selfView {
	v := selfView{ID: t.ID, Channel: t.Channel, Category: t.Category, Class: t.Class, Subject: t.Subject, State: t.State,
		Requester: t.Requester, Links: t.Links, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, ResolvedAt: t.ResolvedAt,
		ClosedAt: t.ClosedAt, MergedInto: t.MergedInto}
	for _, w := range t.WorkLog {
		if w.Solution != "" {
			v.Solutions = append(v.Solutions, w.Solution)
		}
	}
	return v
}

func (d *Desk) selfTickets(w http.ResponseWriter, r *http.Request) error {
	u, err := d.selfAuth(r)
	if err != nil {
		return err
	}
	var out []selfView
	err = d.st.View(r.Context(), func(tx *store.Tx) error {
		fn := func(t *store.Ticket) error {
			if u.sees(t) {
				out = append(out, toSelf(t))
			}
			return nil
		}
		if u.Org != "" {
			return tx.TicketsByOrg(u.Org, fn)
		}
		return tx.TicketsBySubscriber(u.Subscriber, fn)
	})
	if err != nil {
		return err
	}
	if out == nil {
		out = []selfView{}
	}
	return httpapi.WritePage(w, out, "")
}

func (d *Desk) selfTicket(w http.ResponseWriter, r *http.Request) error {
	u, err := d.selfAuth(r)
	if err != nil {
		return err
	}
	t, err := d.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if !u.sees(t) {
		// The same answer as for a ticket that does not exist: another
		// organisation's ticket numbers are not revealed either.
		return httpapi.NotFound("ticket %q does not exist", t.ID)
	}
	v := toSelf(t)
	v.Replacement = d.replacementState(r.Context(), t)
	return httpapi.WriteJSON(w, http.StatusOK, v)
}

// selfCreate opens a web ticket for the caller.
func (d *Desk) selfCreate(w http.ResponseWriter, r *http.Request) error {
	u, err := d.selfAuth(r)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	c, err := ParseCreate(b)
	if err != nil {
		return err
	}
	if c.Join != "" {
		t, err := d.Get(r.Context(), c.Join)
		if err != nil {
			return err
		}
		if !u.sees(t) {
			return httpapi.NotFound("ticket %q does not exist", c.Join)
		}
	}
	c.Channel = "web"
	// The requester is the caller, whatever the body says.
	c.Requester.OrgID, c.Requester.SubscriberID = u.Org, u.Subscriber
	if u.Org != "" {
		c.Requester.Kind = "organisation"
	}
	c.Links.Orgs = nil
	res, err := d.Create(r.Context(), u.id(), c)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, map[string]any{"ticket": toSelf(res.Ticket), "duplicates": res.Duplicates, "joined": res.Joined})
}

// selfRequest is an RA request as its organisation sees it.
type selfRequest struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	State      string    `json:"state"`
	Subject    string    `json:"subject,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	DueAt      time.Time `json:"due_at,omitzero"`
	DoneAt     time.Time `json:"done_at,omitzero"`
	Serial     string    `json:"serial,omitempty"`
}

func (d *Desk) selfRequests(w http.ResponseWriter, r *http.Request) error {
	u, err := d.selfAuth(r)
	if err != nil {
		return err
	}
	out := []selfRequest{}
	err = d.st.View(r.Context(), func(tx *store.Tx) error {
		return tx.EachRARequest(func(q *store.RARequest) error {
			if (u.Org != "" && q.OrgID == u.Org) || (u.Subscriber != "" && q.SubscriberID == u.Subscriber) {
				out = append(out, selfRequest{ID: q.ID, Kind: q.Kind, State: q.State, Subject: q.Subject, ReceivedAt: q.ReceivedAt,
					DueAt: q.DueAt, DoneAt: q.DoneAt, Serial: hex.EncodeToString(q.Serial)})
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	return httpapi.WritePage(w, out, "")
}

func (d *Desk) selfCerts(w http.ResponseWriter, r *http.Request) error {
	u, err := d.selfAuth(r)
	if err != nil {
		return err
	}
	out := []httpapi.CertView{}
	err = d.st.View(r.Context(), func(tx *store.Tx) error {
		fn := func(c *store.Cert) error {
			out = append(out, httpapi.ViewCert(c, httpapi.CertViewOptions{Now: d.now(), Org: u.Org, PEM: true}))
			return nil
		}
		if u.Org != "" {
			return tx.CertsByOrg(u.Org, fn)
		}
		return tx.CertsBySubscriber(u.Subscriber, fn)
	})
	if err != nil {
		return err
	}
	return httpapi.WritePage(w, out, "")
}
