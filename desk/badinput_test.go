package desk_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/store"
)

// snapshot is what a refused request must leave as it was: every ticket's
// stored form.
func snapshot(t *testing.T, st *store.Store) string {
	t.Helper()
	var b strings.Builder
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachTicket(func(tk *store.Ticket) error {
			j, _ := json.Marshal(tk)
			b.Write(j)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBadInput: each refused request answers 4xx with a reason and changes
// nothing.
func TestBadInput(t *testing.T) {
	f := newFixture(t, time.Date(2026, 4, 14, 10, 0, 0, 0, cst), func(c *config.Desk) { c.AttachmentMaxBytes = 2048 })
	agent := f.staff("agent1", "service_agent")
	other := f.org("org-b")
	f.org("org-a")
	body := newTicket("token_use/pin_locked", "PIN locked")
	body["requester"] = map[string]any{"kind": "organisation", "name": "A", "org": "org-a"}
	var tk desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", body, &tk)
	var closedT desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("token_use/driver", "closed one"), &closedT)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+closedT.ID+"/work", map[string]any{"solution": "reinstall"}, nil)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+closedT.ID+"/transition", map[string]any{"to": "resolved"}, nil)
	var closed desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+closedT.ID+"/transition", map[string]any{"to": "closed"}, &closed)
	anon := f.env.Client(f.srv, nil)
	f.must(anon, 200, "POST", "/api/v1/surveys/"+closed.SurveyLink.Token, map[string]any{"score": 4}, nil)

	html := []byte("<!DOCTYPE html><html><body><script>alert(1)</script></body></html>")
	exe := append([]byte("MZ\x90\x00\x03\x00\x00\x00"), bytes.Repeat([]byte{0xff}, 100)...)
	big := append([]byte("%PDF-1.4\n"), bytes.Repeat([]byte("a"), 4096)...)
	id := tk.ID
	cases := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		reason string
	}{
		{"unknown category", "POST", "/api/v1/tickets", newTicket("certificate_use/nonsense", "x"), 400, "not in the category tree"},
		{"unknown channel", "POST", "/api/v1/tickets", func() map[string]any { b := newTicket("complaint", "x"); b["channel"] = "pigeon"; return b }(), 400, "channel"},
		{"unknown class", "POST", "/api/v1/tickets", func() map[string]any { b := newTicket("complaint", "x"); b["class"] = "huge"; return b }(), 400, "class"},
		{"unknown field", "POST", "/api/v1/tickets", `{"channel":"hotline","category":"complaint","subject":"x","colour":"red"}`, 400, "unknown field"},
		{"requester without contact", "POST", "/api/v1/tickets", `{"channel":"hotline","category":"complaint","subject":"x","requester":{"kind":"person","name":"n"}}`, 400, "contact"},
		{"linked certificate unknown", "POST", "/api/v1/tickets", func() map[string]any {
			b := newTicket("complaint", "x")
			b["links"] = map[string]any{"certificates": []string{"0badc0de"}}
			return b
		}(), 400, "does not exist"},
		{"requester organisation unknown", "POST", "/api/v1/tickets", func() map[string]any {
			b := newTicket("complaint", "x")
			b["requester"] = map[string]any{"kind": "organisation", "name": "n", "org": "nowhere"}
			return b
		}(), 400, "does not exist"},
		{"transition not allowed", "POST", "/api/v1/tickets/" + id + "/transition", map[string]any{"to": "closed"}, 409, "may not become closed"},
		{"transition to no state", "POST", "/api/v1/tickets/" + id + "/transition", map[string]any{"to": "sleeping"}, 400, "not a state"},
		{"resolve without solution", "POST", "/api/v1/tickets/" + id + "/transition", map[string]any{"to": "resolved"}, 400, "solution"},
		{"assign to unknown group", "POST", "/api/v1/tickets/" + id + "/assign", map[string]any{"group": "kitchen"}, 400, "group"},
		{"assign to unknown staff", "POST", "/api/v1/tickets/" + id + "/assign", map[string]any{"group": "hotline_agent", "assignee": "ghost"}, 400, "does not exist"},
		{"escalate backwards", "POST", "/api/v1/tickets/" + id + "/escalations", map[string]any{"product": "p", "user": "u", "symptom": "s", "time_limit": time.Date(2026, 5, 1, 0, 0, 0, 0, cst), "to_group": "hotline_agent"}, 400, "not a group after"},
		{"escalation form incomplete", "POST", "/api/v1/tickets/" + id + "/escalations", map[string]any{"product": "p"}, 400, "needs product"},
		{"attachment too large", "POST", "/api/v1/tickets/" + id + "/attachments?name=big.pdf", big, 413, "attachment_max_bytes"},
		{"attachment of refused type named .pdf", "POST", "/api/v1/tickets/" + id + "/attachments?name=report.pdf", html, 415, "text/html"},
		{"attachment executable named .png", "POST", "/api/v1/tickets/" + id + "/attachments?name=shot.png", exe, 415, "not on desk.attachment_types"},
		{"empty attachment", "POST", "/api/v1/tickets/" + id + "/attachments", []byte{}, 400, "empty"},
		{"unknown ticket", "POST", "/api/v1/tickets/T99999999/work", map[string]any{"note": "x"}, 404, "does not exist"},
		{"merge into itself", "POST", "/api/v1/tickets/" + id + "/merge", map[string]any{"into": id}, 400, "itself"},
		{"survey link used twice", "POST", "/api/v1/surveys/" + closed.SurveyLink.Token, map[string]any{"score": 1}, 409, "already answered"},
		{"survey score out of range", "POST", "/api/v1/surveys/" + closed.SurveyLink.Token, map[string]any{"score": 9}, 400, "score"},
		{"survey phone answer of an open ticket", "POST", "/api/v1/tickets/" + id + "/survey", map[string]any{"score": 3, "channel": "phone"}, 409, "surveys follow closing"},
		{"on-site report of no form", "POST", "/api/v1/tickets/" + id + "/onsite/1/report", map[string]any{"process": "p", "finished": true}, 403, "may not"},
	}
	for _, c := range cases {
		t.Run("fail/"+c.name, func(t *testing.T) {
			before := snapshot(t, f.env.Store)
			client := agent
			if strings.HasPrefix(c.path, "/api/v1/surveys/") {
				client = anon
			}
			st, raw := f.call(client, c.method, c.path, c.body, nil)
			if st != c.status || !strings.Contains(raw, c.reason) {
				t.Fatalf("%d %s; want %d with %q", st, raw, c.status, c.reason)
			}
			if after := snapshot(t, f.env.Store); after != before {
				t.Fatal("a refused request changed the tickets")
			}
		})
	}
	t.Run("fail/self-service user asks another organisation's ticket", func(t *testing.T) {
		before := snapshot(t, f.env.Store)
		if st, raw := f.call(other, "GET", "/api/v1/self/tickets/"+id, nil, nil); st != 404 {
			t.Fatalf("%d %s", st, raw)
		}
		if st, raw := f.call(other, "POST", "/api/v1/self/tickets", map[string]any{"join": id, "description": "me too"}, nil); st != 404 {
			t.Fatalf("joining another organisation's ticket: %d %s", st, raw)
		}
		if snapshot(t, f.env.Store) != before {
			t.Fatal("changed")
		}
	})
}
