package desk

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

// Clock kinds, as warnings, breaches and metrics name them.
const (
	ClockResponse = "response"
	ClockResolve  = "resolve"
	ClockHandover = "handover"
	ClockFeedback = "quality_feedback"
)

// calendarOf is the service calendar of a ticket: 7x24 for emergencies and
// major incidents, 5x8 otherwise (SPEC Art. 18).
func calendarOf(t *store.Ticket) string {
	if t.Emergency || t.Class == "major" {
		return Cal7x24
	}
	return Cal5x8
}

func (d *Desk) clock(t *store.Ticket) businessClock {
	if t.SLA.Calendar == Cal7x24 {
		return allHours{}
	}
	return d.office
}

func (d *Desk) target(class string) config.DeskTarget {
	switch class {
	case "major":
		return d.cfg.Targets.Major
	case "serious":
		return d.cfg.Targets.Serious
	}
	return d.cfg.Targets.General
}

// startClocks sets the calendar, targets and dues of t counted from start.
func (d *Desk) startClocks(t *store.Ticket, start time.Time) {
	tg := d.target(t.Class)
	t.SLA.Calendar = calendarOf(t)
	t.SLA.ResponseTarget, t.SLA.ResolveTarget = tg.Response.D(), tg.Resolution.D()
	clk := d.clock(t)
	t.SLA.ResponseDue = clk.Add(start, t.SLA.ResponseTarget)
	t.SLA.ResolveDue = clk.Add(start, t.SLA.ResolveTarget)
}

// pending is one deadline a ticket still has to meet; key names it in
// Warned and Breaches (kind@unix, so a new deadline of the same kind is
// warned about again).
type pending struct {
	kind string
	due  time.Time
	key  string
	// feedback is the quality feedback form's index, or -1.
	feedback int
	// lead is how long before due the warning comes: desk.warn_before, but
	// at most half the clock's length, so a short clock (a 15-minute
	// hand-over, a 30-minute response) is not warned about as it starts.
	lead time.Duration
}

func dueKey(kind string, due time.Time) string { return kind + "@" + strconv.FormatInt(due.Unix(), 10) }

// pendings lists the deadlines of t not yet met nor breached. A ticket
// waiting for the customer has none: its clocks are paused.
func pendings(t *store.Ticket, warnBefore, handover time.Duration) []pending {
	if !t.Open || !t.SLA.PausedAt.IsZero() {
		return nil
	}
	var out []pending
	add := func(kind string, due time.Time, fb int, length time.Duration) {
		if due.IsZero() {
			return
		}
		k := dueKey(kind, due)
		if breached(t, k) {
			return
		}
		out = append(out, pending{kind: kind, due: due, key: k, feedback: fb, lead: min(warnBefore, length/2)})
	}
	if t.SLA.RespondedAt.IsZero() {
		add(ClockResponse, t.SLA.ResponseDue, -1, t.SLA.ResponseTarget)
	}
	add(ClockResolve, t.SLA.ResolveDue, -1, t.SLA.ResolveTarget)
	add(ClockHandover, t.SLA.HandoverDue, -1, handover)
	for i, f := range t.Feedback {
		if f.Result == "" && !f.Overdue {
			add(ClockFeedback, f.Deadline, i, f.Deadline.Sub(f.At))
		}
	}
	return out
}

func (d *Desk) pendings(t *store.Ticket) []pending {
	return pendings(t, d.cfg.WarnBefore.D(), d.cfg.Handover.D())
}

func breached(t *store.Ticket, key string) bool {
	for _, b := range t.SLA.Breaches {
		if b.Kind == key {
			return true
		}
	}
	return false
}

// refreshDue sets t.NextDue to the earliest instant evaluation has work on
// t: a warning to give or a deadline to record as breached; an instant
// already past is written as now, so that every entry of the due index is
// at or after the time it was written, and evaluation can start its scan
// shortly before the previous one (evalFrom).
func (d *Desk) refreshDue(t *store.Ticket, now time.Time) {
	var next time.Time
	for _, p := range d.pendings(t) {
		at := p.due
		if !slices.Contains(t.SLA.Warned, p.key) {
			at = p.due.Add(-p.lead)
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if !next.IsZero() && next.Before(now) {
		next = now
	}
	t.NextDue = next
}

// responded stops the response clock, recording a breach the loop had not
// yet seen.
func (d *Desk) responded(t *store.Ticket, now time.Time) {
	if !t.SLA.RespondedAt.IsZero() {
		return
	}
	t.SLA.RespondedAt = now
	d.lateBreach(t, ClockResponse, t.SLA.ResponseDue, now)
}

func (d *Desk) resolved(t *store.Ticket, now time.Time) {
	d.lateBreach(t, ClockResolve, t.SLA.ResolveDue, now)
}

// handedOver ends a pending hand-over: the receiving group took the ticket.
func (d *Desk) handedOver(t *store.Ticket, now time.Time) {
	if t.SLA.HandoverDue.IsZero() {
		return
	}
	d.lateBreach(t, ClockHandover, t.SLA.HandoverDue, now)
	t.SLA.HandoverDue, t.SLA.HandoverGroup = time.Time{}, ""
}

func (d *Desk) lateBreach(t *store.Ticket, kind string, due, now time.Time) {
	if due.IsZero() || !now.After(due) {
		return
	}
	k := dueKey(kind, due)
	if breached(t, k) {
		return
	}
	t.SLA.Breaches = append(t.SLA.Breaches, store.TicketBreach{Kind: k, Due: due, At: now})
	d.m.breaches.WithLabelValues(kind).Inc()
}

// resumeClocks ends a wait for the customer: the business time spent
// waiting does not count, so each deadline still ahead when the wait began
// moves on by the business time that was left of it then.
func (d *Desk) resumeClocks(t *store.Ticket, now time.Time) {
	p := t.SLA.PausedAt
	if p.IsZero() {
		return
	}
	clk := d.clock(t)
	t.SLA.PausedFor += clk.Between(p, now)
	shift := func(due *time.Time) {
		if due.IsZero() || !due.After(p) {
			return
		}
		*due = clk.Add(now, clk.Between(p, *due))
	}
	if t.SLA.RespondedAt.IsZero() {
		shift(&t.SLA.ResponseDue)
	}
	shift(&t.SLA.ResolveDue)
	shift(&t.SLA.HandoverDue)
	t.SLA.PausedAt = time.Time{}
}

// Evaluate records the warnings and breaches that are due. It reads the
// tickets whose next deadline has come from the store's due index, so its
// cost is the number of tickets with work, not the number of tickets. It
// returns how many tickets it changed.
func (d *Desk) Evaluate(ctx context.Context) (int, error) {
	now := d.now()
	d.evalMu.Lock()
	defer d.evalMu.Unlock()
	// Entries before the previous run's time were handled by it (they were
	// moved on); the margin covers writes whose clock read came before that
	// run and whose commit came after its scan.
	var from time.Time
	if !d.evalFrom.IsZero() {
		from = d.evalFrom.Add(-evalMargin)
	}
	var ids []string
	if err := d.st.View(ctx, func(tx *store.Tx) error {
		return tx.TicketsDue(from, now, func(id string, _ time.Time) error {
			ids = append(ids, id)
			return nil
		})
	}); err != nil {
		return 0, fmt.Errorf("reading due tickets: %w", err)
	}
	d.m.evaluations.Inc()
	n := 0
	// Tickets are evaluated in batches, one transaction (one fsync) each.
	const batch = 100
	for len(ids) > 0 {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		chunk := ids[:min(batch, len(ids))]
		ids = ids[len(chunk):]
		changed := 0
		err := d.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
			changed = 0
			now := d.now()
			for _, id := range chunk {
				t, err := tx.Ticket(id)
				if err != nil {
					return err
				}
				recs := d.evaluateTicket(t, now)
				d.refreshDue(t, now)
				if err := tx.PutTicket(t); err != nil {
					return err
				}
				for _, r := range recs {
					if err := log(r); err != nil {
						return err
					}
				}
				if len(recs) > 0 {
					changed++
				}
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("evaluating tickets %s to %s: %w", chunk[0], chunk[len(chunk)-1], err)
		}
		n += changed
	}
	d.evalFrom = now
	return n, nil
}

// evalMargin is how far before the previous evaluation the next one starts
// reading the due index: longer than any desk transaction takes between
// reading the clock and committing.
const evalMargin = 5 * time.Minute

// evaluateTicket records on t the warnings and breaches due at now and
// returns their audit records. Metrics are counted here: a transaction
// retried after a conflict may count twice, which a counter of rare events
// tolerates better than missing one.
func (d *Desk) evaluateTicket(t *store.Ticket, now time.Time) []audit.Record {
	var recs []audit.Record
	for _, p := range d.pendings(t) {
		switch {
		case !now.Before(p.due):
			t.SLA.Breaches = append(t.SLA.Breaches, store.TicketBreach{Kind: p.key, Due: p.due, At: now})
			if p.feedback >= 0 {
				t.Feedback[p.feedback].Overdue = true
			}
			event(t, now, "system", "sla.breach", "", "", p.kind+" due "+p.due.UTC().Format(time.RFC3339))
			recs = append(recs, audit.Record{Actor: "system", Action: "desk.sla_breach", Object: "ticket/" + t.ID,
				Details: map[string]string{"clock": p.kind, "due": p.due.UTC().Format(time.RFC3339), "group": t.Group}})
			d.m.breaches.WithLabelValues(p.kind).Inc()
		case !slices.Contains(t.SLA.Warned, p.key) && !now.Before(p.due.Add(-p.lead)):
			t.SLA.Warned = append(t.SLA.Warned, p.key)
			event(t, now, "system", "sla.warning", "", "", p.kind+" due "+p.due.UTC().Format(time.RFC3339))
			recs = append(recs, audit.Record{Actor: "system", Action: "desk.sla_warning", Object: "ticket/" + t.ID,
				Details: map[string]string{"clock": p.kind, "due": p.due.UTC().Format(time.RFC3339), "group": t.Group}})
			d.m.warnings.WithLabelValues(p.kind).Inc()
		}
	}
	return recs
}
