package desk_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// TestDuplicatesMerged: a second call about the same certificate and
// category warns of the open ticket; merging keeps both histories, and the
// merged ticket refuses further work.
func TestDuplicatesMerged(t *testing.T) {
	f := newFixture(t, time.Date(2026, 4, 14, 10, 0, 0, 0, cst), nil)
	agent := f.staff("agent1", "service_agent")
	cert := f.env.Issue(testenv.IssueOptions{CN: "Li Si"})
	first := newTicket("certificate_use/verification_fails", "verification fails")
	first["links"] = map[string]any{"certificates": []string{cert.SerialHex()}}
	var a desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", first, &a)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+a.ID+"/work", map[string]any{"symptom": "red cross in the client"}, nil)
	f.must(agent, 201, "POST", "/api/v1/tickets/"+a.ID+"/attachments?name=shot.png",
		append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 64)...), nil)

	// Another caller (by fax), same certificate and category.
	f.env.Clock.Advance(time.Hour)
	second := newTicket("certificate_use/verification_fails", "still fails")
	second["channel"] = "fax"
	second["requester"] = map[string]any{"kind": "person", "name": "Wang Wu", "phone": "+86 10 5555 0199"}
	second["links"] = map[string]any{"certificates": []string{strings.ToUpper(cert.SerialHex())}}
	var b desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", second, &b)
	if len(b.Duplicates) != 1 || b.Duplicates[0] != a.ID || b.Warning == "" {
		t.Fatalf("duplicates = %v warning %q", b.Duplicates, b.Warning)
	}
	// Same requester, other category: no duplicate. Same requester and
	// category: the requester's phone finds it.
	other := newTicket("token_use/driver", "driver")
	var c desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", other, &c)
	if len(c.Duplicates) != 0 {
		t.Fatalf("other category: duplicates %v", c.Duplicates)
	}
	var dups struct{ Duplicates []string }
	f.must(agent, 200, "GET", "/api/v1/tickets/"+b.ID+"/duplicates", nil, &dups)
	if len(dups.Duplicates) != 1 || dups.Duplicates[0] != a.ID {
		t.Fatalf("GET duplicates = %v", dups.Duplicates)
	}

	var merged desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+b.ID+"/merge", map[string]any{"into": a.ID}, &merged)
	if merged.ID != a.ID || len(merged.MergedFrom) != 1 || merged.MergedFrom[0] != b.ID {
		t.Fatalf("merged = %s from %v", merged.ID, merged.MergedFrom)
	}
	fromB := 0
	for _, e := range merged.History {
		if e.Ticket == b.ID {
			fromB++
		}
	}
	if fromB != len(f.ticket(b.ID).History)-1 || fromB == 0 {
		t.Fatalf("merged history holds %d of %s's events", fromB, b.ID)
	}
	src := f.ticket(b.ID)
	if src.MergedInto != a.ID || src.Open || src.State != desk.StateClosed || src.History[0].Action != "create" {
		t.Fatalf("source after merge: %+v", src)
	}
	// Never twice: the merged ticket takes no more work, and its duplicate
	// is gone from the index.
	f.must(agent, 409, "POST", "/api/v1/tickets/"+b.ID+"/work", map[string]any{"note": "x"}, nil)
	f.must(agent, 409, "POST", "/api/v1/tickets/"+b.ID+"/merge", map[string]any{"into": a.ID}, nil)
	f.must(agent, 200, "GET", "/api/v1/tickets/"+a.ID+"/duplicates", nil, &dups)
	if len(dups.Duplicates) != 0 {
		t.Fatalf("after the merge, duplicates of %s = %v", a.ID, dups.Duplicates)
	}
	// A third call joins the open ticket instead of opening one.
	var joined desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets", map[string]any{"join": a.ID, "channel": "hotline", "description": "called again"}, &joined)
	if !joined.Joined || joined.ID != a.ID || joined.History[len(joined.History)-1].Action != "contact" {
		t.Fatalf("join = %+v", joined.History[len(joined.History)-1])
	}
}

// TestSelfServiceIsolation: each organisation's administrator and each
// subscriber sees their own tickets, RA requests and certificates, and
// nobody else's.
func TestSelfServiceIsolation(t *testing.T) {
	f := newFixture(t, time.Date(2026, 4, 14, 10, 0, 0, 0, cst), nil)
	agent := f.staff("agent1", "service_agent")
	adminA, adminB := f.org("org-a"), f.org("org-b")
	subCert := f.env.Issue(testenv.IssueOptions{CN: "Zhao Liu", SubscriberID: "sub-zl"})
	subscriber := f.env.Client(f.srv, &testenv.Credential{Cert: subCert, TLS: f.env.TLSCert(subCert)})
	certA := f.env.Issue(testenv.IssueOptions{CN: "server a"})
	certB := f.env.Issue(testenv.IssueOptions{CN: "server b"})
	ctx := context.Background()
	if err := f.env.Store.Update(ctx, func(tx *store.Tx) error {
		for _, x := range []struct {
			org, req string
			serial   []byte
		}{{"org-a", "req-a", certA.Serial}, {"org-b", "req-b", certB.Serial}} {
			if err := tx.PutOrgCert(x.org, x.serial); err != nil {
				return err
			}
			if err := tx.PutRARequest(&store.RARequest{ID: x.req, Kind: "issue", OrgID: x.org, State: "pending_review", ReceivedAt: f.env.Clock.Now()}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	mk := func(org, sub string) string {
		body := newTicket("online_platform/download_fails", "download fails for "+org+sub)
		r := map[string]any{"kind": "organisation", "name": "x", "phone": "1"}
		if org != "" {
			r["org"] = org
		}
		if sub != "" {
			r["kind"], r["subscriber"] = "person", sub
		}
		body["requester"] = r
		var v desk.TicketView
		f.must(agent, 201, "POST", "/api/v1/tickets", body, &v)
		return v.ID
	}
	tA, tB, tS := mk("org-a", ""), mk("org-b", ""), mk("", "sub-zl")

	type page struct {
		Items []struct {
			ID     string `json:"id"`
			Serial string `json:"serial"`
		} `json:"items"`
	}
	ids := func(p page) []string {
		var out []string
		for _, it := range p.Items {
			out = append(out, it.ID+it.Serial)
		}
		return out
	}
	var p page
	f.must(adminA, 200, "GET", "/api/v1/self/tickets", nil, &p)
	if got := ids(p); len(got) != 1 || got[0] != tA {
		t.Fatalf("org-a sees tickets %v; want [%s]", got, tA)
	}
	f.must(adminB, 200, "GET", "/api/v1/self/tickets", nil, &p)
	if got := ids(p); len(got) != 1 || got[0] != tB {
		t.Fatalf("org-b sees tickets %v; want [%s]", got, tB)
	}
	f.must(subscriber, 200, "GET", "/api/v1/self/tickets", nil, &p)
	if got := ids(p); len(got) != 1 || got[0] != tS {
		t.Fatalf("subscriber sees tickets %v; want [%s]", got, tS)
	}
	f.must(adminA, 200, "GET", "/api/v1/self/tickets/"+tA, nil, nil)
	for _, c := range []struct {
		name   string
		client *http.Client
		id     string
	}{{"org-a asks org-b's", adminA, tB}, {"org-b asks org-a's", adminB, tA}, {"subscriber asks org-a's", subscriber, tA}, {"org-a asks the subscriber's", adminA, tS}} {
		if st, raw := f.call(c.client, "GET", "/api/v1/self/tickets/"+c.id, nil, nil); st != 404 || !strings.Contains(raw, "does not exist") {
			t.Errorf("%s: %d %s; want 404", c.name, st, raw)
		}
	}
	var rq page
	f.must(adminA, 200, "GET", "/api/v1/self/requests", nil, &rq)
	if got := ids(rq); len(got) != 1 || !strings.HasPrefix(got[0], "req-a") {
		t.Fatalf("org-a sees requests %v", got)
	}
	var cp page
	f.must(adminB, 200, "GET", "/api/v1/self/certificates", nil, &cp)
	if got := ids(cp); len(got) != 1 || got[0] != certB.SerialHex() {
		t.Fatalf("org-b sees certificates %v; want [%s]", got, certB.SerialHex())
	}
	f.must(subscriber, 200, "GET", "/api/v1/self/certificates", nil, &cp)
	if got := ids(cp); len(got) != 1 || got[0] != subCert.SerialHex() {
		t.Fatalf("subscriber sees certificates %v", got)
	}
	// A web ticket by org-a is org-a's whatever the body claims.
	body := newTicket("online_platform/renewal_fails", "renewal fails")
	body["requester"] = map[string]any{"kind": "organisation", "name": "A", "org": "org-b"}
	body["links"] = map[string]any{"organisations": []string{"org-b"}}
	var created struct {
		Ticket struct {
			ID        string                `json:"id"`
			Channel   string                `json:"channel"`
			Requester store.TicketRequester `json:"requester"`
		} `json:"ticket"`
	}
	f.must(adminA, 201, "POST", "/api/v1/self/tickets", body, &created)
	if created.Ticket.Requester.OrgID != "org-a" || created.Ticket.Channel != "web" {
		t.Fatalf("self-created ticket = %+v", created.Ticket)
	}
	f.must(adminB, 404, "GET", "/api/v1/self/tickets/"+created.Ticket.ID, nil, nil)
	// Staff and strangers are refused.
	f.must(agent, 403, "GET", "/api/v1/self/tickets", nil, nil)
	f.must(f.env.Client(f.srv, nil), 401, "GET", "/api/v1/self/tickets", nil, nil)
	// And organisations do not reach the staff routes.
	f.must(adminA, 403, "GET", "/api/v1/tickets/"+tA, nil, nil)
}
