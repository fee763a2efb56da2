package store

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestTicketIndexes: PutTicket keeps the requester, certificate,
// organisation and due indexes in step with the ticket, and TicketsDue
// returns only what is due, earliest first.
func TestTicketIndexes(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	t0 := time.Date(2026, 4, 14, 10, 0, 0, 0, time.UTC)
	mk := func(id string, due time.Time) *Ticket {
		return &Ticket{ID: id, State: "new", Open: true, Category: "c", NextDue: due, CreatedAt: t0,
			Requester: TicketRequester{Kind: "organisation", Name: "A", OrgID: "org-a"}, Links: TicketLinks{Certs: []string{"0a"}}}
	}
	put := func(tk *Ticket) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { return tx.PutTicket(tk) }); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := mk("T1", t0.Add(2*time.Hour)), mk("T2", t0.Add(time.Hour)), mk("T3", time.Time{})
	put(a)
	put(b)
	put(c)
	ids := func(fn func(tx *Tx, f func(*Ticket) error) error) []string {
		var out []string
		if err := s.View(ctx, func(tx *Tx) error {
			return fn(tx, func(tk *Ticket) error { out = append(out, tk.ID); return nil })
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	due := func(until time.Time) []string {
		var out []string
		if err := s.View(ctx, func(tx *Tx) error {
			return tx.TicketsDue(time.Time{}, until, func(id string, _ time.Time) error { out = append(out, id); return nil })
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := due(t0.Add(90 * time.Minute)); !slices.Equal(got, []string{"T2"}) {
		t.Fatalf("due at +90m = %v", got)
	}
	if got := due(t0.Add(2 * time.Hour)); !slices.Equal(got, []string{"T2", "T1"}) {
		t.Fatalf("due at +2h = %v", got)
	}
	var fromLater []string
	if err := s.View(ctx, func(tx *Tx) error {
		return tx.TicketsDue(t0.Add(90*time.Minute), t0.Add(2*time.Hour), func(id string, _ time.Time) error { fromLater = append(fromLater, id); return nil })
	}); err != nil || !slices.Equal(fromLater, []string{"T1"}) {
		t.Fatalf("due from +90m to +2h = %v (%v)", fromLater, err)
	}
	byReq := func(tx *Tx, f func(*Ticket) error) error { return tx.OpenTicketsByRequester("org:org-a", "c", f) }
	byCert := func(tx *Tx, f func(*Ticket) error) error { return tx.OpenTicketsByCert("0A", "C", f) }
	byOrg := func(tx *Tx, f func(*Ticket) error) error { return tx.TicketsByOrg("org-a", f) }
	if got := ids(byReq); !slices.Equal(got, []string{"T1", "T2", "T3"}) {
		t.Fatalf("by requester = %v", got)
	}
	other := func(tx *Tx, f func(*Ticket) error) error { return tx.OpenTicketsByRequester("org:org-a", "d", f) }
	if got := ids(other); len(got) != 0 {
		t.Fatalf("by requester in another category = %v", got)
	}
	// Closing T2 takes it out of the due, requester and certificate
	// indexes, not the organisation's.
	b.Open, b.State, b.NextDue = false, "closed", time.Time{}
	put(b)
	if got := due(t0.Add(3 * time.Hour)); !slices.Equal(got, []string{"T1"}) {
		t.Fatalf("due after closing T2 = %v", got)
	}
	if got := ids(byCert); !slices.Equal(got, []string{"T1", "T3"}) {
		t.Fatalf("by certificate = %v", got)
	}
	if got := ids(byOrg); !slices.Equal(got, []string{"T1", "T2", "T3"}) {
		t.Fatalf("by organisation = %v", got)
	}
	// A new deadline moves the ticket in the due index.
	a.NextDue = t0.Add(5 * time.Hour)
	put(a)
	if got := due(t0.Add(3 * time.Hour)); len(got) != 0 {
		t.Fatalf("due after moving T1 = %v", got)
	}
	page, next, err := func() ([]*Ticket, string, error) {
		var p []*Ticket
		var n string
		err := s.View(ctx, func(tx *Tx) error {
			var err error
			p, n, err = tx.TicketPage("", 2, nil)
			return err
		})
		return p, n, err
	}()
	if err != nil || len(page) != 2 || next != "T2" {
		t.Fatalf("page = %d next %q err %v", len(page), next, err)
	}
}
