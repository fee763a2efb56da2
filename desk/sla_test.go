package desk_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/desk"
	"github.com/certcenter/certcenter/store"
)

func hasBreach(t *store.Ticket, clock string) bool {
	for _, b := range t.SLA.Breaches {
		if strings.HasPrefix(b.Kind, clock+"@") {
			return true
		}
	}
	return false
}

func hasWarning(t *store.Ticket, clock string) bool {
	return slices.ContainsFunc(t.SLA.Warned, func(k string) bool { return strings.HasPrefix(k, clock+"@") })
}

// TestSLA5x8WeekendAndHoliday: a general ticket opened at 15:00 on Friday
// 3 April 2026 has 4 business hours to a response: two that afternoon,
// then Saturday, Sunday and Qingming (Monday 6 April) do not count, so the
// response is due at 11:00 on Tuesday 7 April. Nothing is recorded over
// the holiday; the warning comes 30 minutes before, the breach after.
func TestSLA5x8WeekendAndHoliday(t *testing.T) {
	start := time.Date(2026, 4, 3, 15, 0, 0, 0, cst)
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	var tk desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("certificate_use/cannot_read", "cannot read"), &tk)
	wantResp := time.Date(2026, 4, 7, 11, 0, 0, 0, cst)
	if tk.SLA.Calendar != desk.Cal5x8 || !tk.SLA.ResponseDue.Equal(wantResp) {
		t.Fatalf("response due %v on %s; want %v on 5x8", tk.SLA.ResponseDue.In(cst), tk.SLA.Calendar, wantResp)
	}
	// 40 business hours: Fri 2h, Tue-Fri 7-10 April 32h, Mon 13 April 6h → 15:00.
	if want := time.Date(2026, 4, 13, 15, 0, 0, 0, cst); !tk.SLA.ResolveDue.Equal(want) {
		t.Fatalf("resolve due %v; want %v", tk.SLA.ResolveDue.In(cst), want)
	}
	for _, at := range []time.Time{
		time.Date(2026, 4, 3, 23, 0, 0, 0, cst), time.Date(2026, 4, 4, 12, 0, 0, 0, cst),
		time.Date(2026, 4, 6, 16, 0, 0, 0, cst), time.Date(2026, 4, 7, 10, 29, 0, 0, cst),
	} {
		f.env.Clock.Set(at)
		if n := f.evaluate(); n != 0 {
			t.Fatalf("evaluation at %v changed %d tickets", at, n)
		}
	}
	f.env.Clock.Set(time.Date(2026, 4, 7, 10, 31, 0, 0, cst))
	if n := f.evaluate(); n != 1 {
		t.Fatalf("evaluation before the deadline changed %d tickets; want the warning", n)
	}
	if got := f.ticket(tk.ID); !hasWarning(got, desk.ClockResponse) || hasBreach(got, desk.ClockResponse) {
		t.Fatalf("at 10:31: warned %v breaches %v", got.SLA.Warned, got.SLA.Breaches)
	}
	f.env.Clock.Set(time.Date(2026, 4, 7, 11, 0, 1, 0, cst))
	f.evaluate()
	got := f.ticket(tk.ID)
	if !hasBreach(got, desk.ClockResponse) || f.breaches(desk.ClockResponse) != 1 {
		t.Fatalf("after 11:00: breaches %v (metric %v)", got.SLA.Breaches, f.breaches(desk.ClockResponse))
	}
	// A breach is recorded once.
	f.env.Clock.Advance(time.Hour)
	f.evaluate()
	if got := f.ticket(tk.ID); len(got.SLA.Breaches) != 1 {
		t.Fatalf("breaches recorded again: %v", got.SLA.Breaches)
	}
}

// TestSLA7x24Night: an emergency and a major incident run on 7x24: a
// major ticket opened at 22:00 must be answered by 22:30 and resolved by
// 06:00, through the night.
func TestSLA7x24Night(t *testing.T) {
	start := time.Date(2026, 4, 10, 22, 0, 0, 0, cst) // a Friday night
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	body := newTicket("systems/ocsp", "OCSP not responding")
	body["class"] = "major"
	var major desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", body, &major)
	if major.SLA.Calendar != desk.Cal7x24 || !major.SLA.ResponseDue.Equal(start.Add(30*time.Minute)) ||
		!major.SLA.ResolveDue.Equal(time.Date(2026, 4, 11, 6, 0, 0, 0, cst)) {
		t.Fatalf("major: %s response %v resolve %v", major.SLA.Calendar, major.SLA.ResponseDue.In(cst), major.SLA.ResolveDue.In(cst))
	}
	body = newTicket("systems/ldap", "directory down")
	body["emergency"] = true
	var emergency desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", body, &emergency)
	if emergency.SLA.Calendar != desk.Cal7x24 || !emergency.SLA.ResponseDue.Equal(start.Add(4*time.Hour)) {
		t.Fatalf("emergency general: %s response %v", emergency.SLA.Calendar, emergency.SLA.ResponseDue.In(cst))
	}
	// The major one is answered at 22:20; the emergency one is not.
	f.env.Clock.Set(start.Add(20 * time.Minute))
	f.must(agent, 200, "POST", "/api/v1/tickets/"+major.ID+"/transition", map[string]any{"to": "in_progress"}, nil)
	f.env.Clock.Set(time.Date(2026, 4, 11, 1, 45, 0, 0, cst))
	f.evaluate()
	if got := f.ticket(emergency.ID); hasBreach(got, desk.ClockResponse) || !hasWarning(got, desk.ClockResponse) {
		t.Fatalf("01:45: emergency warned %v breaches %v", got.SLA.Warned, got.SLA.Breaches)
	}
	f.env.Clock.Set(time.Date(2026, 4, 11, 6, 0, 1, 0, cst))
	f.evaluate()
	if got := f.ticket(major.ID); hasBreach(got, desk.ClockResponse) || !hasBreach(got, desk.ClockResolve) {
		t.Fatalf("06:00: major breaches %v", got.SLA.Breaches)
	}
	if got := f.ticket(emergency.ID); !hasBreach(got, desk.ClockResponse) {
		t.Fatalf("06:00: emergency breaches %v", got.SLA.Breaches)
	}
}

// TestSLAPausedWhileWaiting: the business time a ticket waits for the
// customer does not count.
func TestSLAPausedWhileWaiting(t *testing.T) {
	start := time.Date(2026, 4, 14, 9, 0, 0, 0, cst) // Tuesday
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	var tk desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("token_use/driver", "driver"), &tk)
	f.env.Clock.Set(start.Add(time.Hour)) // 10:00
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/transition", map[string]any{"to": "in_progress"}, nil)
	var waiting desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/transition", map[string]any{"to": "waiting_customer"}, &waiting)
	if !waiting.NextDue.IsZero() {
		t.Fatalf("a waiting ticket has a next deadline %v", waiting.NextDue)
	}
	// It waits until 11:00 the next day: 7 business hours on Tuesday
	// (10:00-17:00) and 2 on Wednesday (09:00-11:00).
	f.env.Clock.Set(time.Date(2026, 4, 15, 11, 0, 0, 0, cst))
	if n := f.evaluate(); n != 0 {
		t.Fatalf("a paused ticket was evaluated")
	}
	var resumed desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/transition", map[string]any{"to": "in_progress"}, &resumed)
	if resumed.SLA.PausedFor != 9*time.Hour {
		t.Fatalf("paused for %v; want 9h of business time", resumed.SLA.PausedFor)
	}
	// Resolution was due 40 business hours after Tuesday 09:00: Tuesday to
	// Friday (32h) and Monday 20 April (8h), so Monday 17:00; 9 hours later
	// in business time is Wednesday 22 April 10:00.
	if want := time.Date(2026, 4, 22, 10, 0, 0, 0, cst); !resumed.SLA.ResolveDue.Equal(want) {
		t.Fatalf("resolve due %v; want %v", resumed.SLA.ResolveDue.In(cst), want)
	}
}

// TestHandoverBreach: the group a ticket is passed to has 15 minutes to take
// it (Art. 22); at 16 minutes the breach is recorded and counted.
func TestHandoverBreach(t *testing.T) {
	start := time.Date(2026, 4, 14, 10, 0, 0, 0, cst)
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	eng := f.staff("eng1", "engineer")
	var late, prompt desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("middleware/sign_verify", "late"), &late)
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("middleware/client_platform", "prompt"), &prompt)
	f.env.Clock.Advance(5 * time.Minute)
	for _, id := range []string{late.ID, prompt.ID} {
		f.must(agent, 200, "POST", "/api/v1/tickets/"+id+"/escalations", map[string]any{"product": "middleware", "user": "Zhang San",
			"symptom": "verification fails", "time_limit": start.Add(24 * time.Hour)}, nil)
	}
	if got := f.ticket(late.ID); got.Group != desk.GroupEngineer || !got.SLA.HandoverDue.Equal(start.Add(20*time.Minute)) {
		t.Fatalf("handed over to %s, due %v", got.Group, got.SLA.HandoverDue.In(cst))
	}
	f.env.Clock.Advance(14 * time.Minute)
	f.must(eng, 200, "POST", "/api/v1/tickets/"+prompt.ID+"/transition", map[string]any{"to": "in_progress"}, nil)
	f.env.Clock.Advance(2 * time.Minute) // 16 minutes after the hand-over
	f.evaluate()
	if got := f.ticket(late.ID); !hasBreach(got, desk.ClockHandover) {
		t.Fatalf("late hand-over: breaches %v", got.SLA.Breaches)
	}
	if got := f.ticket(prompt.ID); hasBreach(got, desk.ClockHandover) || !got.SLA.HandoverDue.IsZero() {
		t.Fatalf("prompt hand-over: breaches %v due %v", got.SLA.Breaches, got.SLA.HandoverDue)
	}
	if n := f.breaches(desk.ClockHandover); n != 1 {
		t.Fatalf("handover breach metric = %v", n)
	}
	// Taking it late keeps the one breach.
	var taken desk.TicketView
	f.must(eng, 200, "POST", "/api/v1/tickets/"+late.ID+"/transition", map[string]any{"to": "in_progress"}, &taken)
	if len(taken.SLA.Breaches) != 1 || !taken.SLA.HandoverDue.IsZero() {
		t.Fatalf("taken late: breaches %v", taken.SLA.Breaches)
	}
}

// TestAssignHandsOver: assigning to another group starts the hand-over
// clock and the receiving group's take ends it; a waiting ticket passed on
// no longer waits.
func TestAssignHandsOver(t *testing.T) {
	start := time.Date(2026, 4, 14, 10, 0, 0, 0, cst)
	f := newFixture(t, start, nil)
	agent := f.staff("agent1", "service_agent")
	eng := f.staff("eng1", "engineer")
	var tk desk.TicketView
	f.must(agent, 201, "POST", "/api/v1/tickets", newTicket("token_use/driver", "driver"), &tk)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/transition", map[string]any{"to": "in_progress"}, nil)
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/transition", map[string]any{"to": "waiting_customer"}, nil)
	f.must(agent, 409, "POST", "/api/v1/tickets/"+tk.ID+"/assign", map[string]any{"group": "hotline_agent"}, nil)
	f.must(agent, 400, "POST", "/api/v1/tickets/"+tk.ID+"/assign", map[string]any{"group": "hotline_engineer", "assignee": "agent1"}, nil)
	f.env.Clock.Advance(time.Hour)
	var passed desk.TicketView
	f.must(agent, 200, "POST", "/api/v1/tickets/"+tk.ID+"/assign", map[string]any{"group": "hotline_engineer"}, &passed)
	if passed.State != desk.StateAssigned || passed.Group != desk.GroupEngineer || !passed.SLA.PausedAt.IsZero() ||
		!passed.SLA.HandoverDue.Equal(start.Add(75*time.Minute)) || passed.SLA.PausedFor != time.Hour {
		t.Fatalf("passed on: state %s group %s paused %v for %v handover %v", passed.State, passed.Group, passed.SLA.PausedAt, passed.SLA.PausedFor, passed.SLA.HandoverDue.In(cst))
	}
	var taken desk.TicketView
	f.must(eng, 200, "POST", "/api/v1/tickets/"+tk.ID+"/transition", map[string]any{"to": "in_progress"}, &taken)
	if !taken.SLA.HandoverDue.IsZero() || len(taken.SLA.Breaches) != 0 || taken.Assignee != "eng1" {
		t.Fatalf("taken: %+v", taken.SLA)
	}
}
