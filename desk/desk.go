// Package desk is the service desk (SPEC Art. 5-6, 15-26): tickets with
// their channel, requester, category tree, incident class, group and
// assignee, the state machine and work log; SLA clocks on 5x8 and 7x24
// calendars with hand-over, warnings and breaches; escalation, major-quality
// feedback, on-site and complaint forms; USBKey replacement through the RA;
// satisfaction surveys; self-service for subscribers and organisations'
// administrators; reports. Every change is in the audit log.
//
// It does not hold the knowledge base (package desk/kb) nor the token
// replacement workflow (package token): it reaches them through the
// ArticleSearcher and Replacements interfaces that server wiring fills.
package desk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/workday"
	"github.com/certcenter/certcenter/store"
)

// ArticleHit is one knowledge base article found for a ticket.
type ArticleHit struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Lang     string  `json:"lang,omitempty"`
	Category string  `json:"category,omitempty"`
	Score    float64 `json:"score"`
	Snippet  string  `json:"snippet,omitempty"`
}

// ArticleSearcher searches the knowledge base (package desk/kb) for agents
// working on a ticket. lang is "zh", "en" or "" (any).
type ArticleSearcher interface {
	Search(ctx context.Context, query, lang string, limit int) ([]ArticleHit, error)
}

// ReplacementRequest is what a confirmed USBKey replacement ticket asks the
// RA for (SPEC Art. 25).
type ReplacementRequest struct {
	Ticket      string
	OrgID       string
	Subscriber  string
	CertSerials []string
	// Token is the USBKey replaced, NewToken the one from stock, Cause
	// lost, damaged or exchanged, CSR (PEM) made on the new token; the RA
	// checks them.
	Token    string
	NewToken string
	Cause    string
	CSR      string
	Reason   string
	// Principal is the support engineer who confirmed it; Actor its ID.
	Principal *httpapi.Principal
	Actor     string
}

// Replacements opens RA USBKey replacement requests and reads their state
// (package token's replacement kind, filled in server wiring).
type Replacements interface {
	OpenReplacement(ctx context.Context, r ReplacementRequest) (requestID string, err error)
	ReplacementState(ctx context.Context, requestID string) (string, error)
}

// Options configure the desk.
type Options struct {
	Store  *store.Store
	Audit  *audit.Log
	Config config.Desk
	// Calendar gives the working days of 5x8 clocks; the RA's calendar.
	// Default workday.Default().
	Calendar *workday.Calendar
	Auth     *httpapi.Authenticator
	Logger   *slog.Logger
	// Registerer receives the desk's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// MaxBodyBytes limits JSON request bodies; attachments may be as large
	// as Config.AttachmentMaxBytes. Default 1 MiB.
	MaxBodyBytes int64
	// Articles searches the knowledge base; nil answers the route 501.
	Articles ArticleSearcher
	// Replacements opens USBKey replacements; nil answers the route 501.
	Replacements Replacements
}

// Desk serves the service desk API and evaluates SLA clocks.
type Desk struct {
	opts       Options
	st         *store.Store
	audit      *audit.Log
	cfg        config.Desk
	log        *slog.Logger
	now        func() time.Time
	office     officeHours
	categories map[string]bool
	allowed    map[string]bool
	m          *metrics
	apiMetrics *httpapi.Metrics

	// mu serialises the desk's read-modify-write transactions (desk
	// traffic is small; a conflict retry would redo the audit append).
	mu sync.Mutex
	// evalMu serialises evaluations; evalFrom is the clock of the last
	// complete one (zero: read the due index from its start).
	evalMu   sync.Mutex
	evalFrom time.Time
}

// New returns the desk.
func New(o Options) (*Desk, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Calendar == nil {
		o.Calendar = workday.Default()
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	start, end, err := config.ParseOfficeHours(o.Config.OfficeHours)
	if err != nil {
		return nil, fmt.Errorf("desk.office_hours: %w", err)
	}
	d := &Desk{opts: o, st: o.Store, audit: o.Audit, cfg: o.Config, log: o.Logger.With("component", "desk"), now: o.Now,
		office: officeHours{cal: o.Calendar, start: start, end: end}, categories: map[string]bool{}, allowed: map[string]bool{}}
	for _, c := range o.Config.Categories {
		for p := c; p != ""; {
			d.categories[p] = true
			i := strings.LastIndexByte(p, '/')
			if i < 0 {
				break
			}
			p = p[:i]
		}
	}
	for _, t := range o.Config.AttachmentTypes {
		d.allowed[t] = true
	}
	d.m = newMetrics()
	if o.Registerer != nil {
		if err := o.Registerer.Register(d.m); err != nil {
			return nil, fmt.Errorf("registering desk metrics: %w", err)
		}
		if d.apiMetrics, err = httpapi.NewMetrics(o.Registerer, "desk"); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Run evaluates the SLA clocks every Config.EvaluateInterval until ctx ends.
func (d *Desk) Run(ctx context.Context) error {
	every := d.cfg.EvaluateInterval.D()
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := d.Evaluate(ctx); err != nil && ctx.Err() == nil {
			d.log.Error("evaluating SLA clocks failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Register mounts the routes on mux. Attachment uploads may be as large as
// desk.attachment_max_bytes; the handler checks the exact limit.
func (d *Desk) Register(mux *http.ServeMux) {
	limit := max(d.opts.MaxBodyBytes, int64(d.cfg.AttachmentMaxBytes)+1)
	routes := d.Routes()
	for i, rt := range routes {
		if rt.Pattern == attachPattern && rt.Method == http.MethodPost {
			continue
		}
		h := rt.Handler
		routes[i].Handler = func(w http.ResponseWriter, r *http.Request) error {
			r.Body = http.MaxBytesReader(w, r.Body, d.opts.MaxBodyBytes)
			return h(w, r)
		}
	}
	httpapi.Register(mux, routes, httpapi.Mount{Auth: d.opts.Auth, Log: d.log, MaxBodyBytes: limit, Metrics: d.apiMetrics})
}

// errConflict and friends are returned by ticket operations; handlers map
// them through httpapi.
var (
	// ErrTransition is a state change the table does not allow.
	ErrTransition = errors.New("transition not allowed")
)

// update runs fn in one store transaction under the desk's lock, with an
// audit appender whose entries commit with the change and are mirrored to
// the log after the commit.
func (d *Desk) update(ctx context.Context, fn func(tx *store.Tx, log func(audit.Record) error) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var entries []*store.AuditEntry
	err := d.st.Update(ctx, func(tx *store.Tx) error {
		entries = entries[:0]
		return fn(tx, func(rec audit.Record) error {
			e, err := d.audit.AppendTx(tx, rec)
			if err == nil {
				entries = append(entries, e)
			}
			return err
		})
	})
	if err == nil {
		for _, e := range entries {
			d.audit.Logged(e)
		}
	}
	return err
}

// readTicket reads a ticket, mapping absence to a 404.
func readTicket(tx *store.Tx, id string) (*store.Ticket, error) {
	t, err := tx.Ticket(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.NotFound("ticket %q does not exist", id)
	}
	return t, err
}
