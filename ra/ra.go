// Package ra is the registration authority: subscriber organisations and
// their certificate administrators, CMS-signed applications, the request
// state machine with multi-level approval, issuance and delivery, renewal
// reminders and one-time downloads, revocation requests, certificate query
// and download, all over the mutual-TLS HTTP API, with working-day deadlines
// and every state change in the hash-chained audit log (SPEC Art. 7-11, 14).
//
// It signs nothing itself: certificates are issued and revoked through the
// Authority, whose events drive OCSP, CRLs and publishing.
package ra

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/workday"
	"github.com/certcenter/certcenter/store"
)

// Authority is what the RA needs of the CA.
type Authority interface {
	Issue(ctx context.Context, req ca.IssueRequest) (*store.Cert, error)
	Revoke(ctx context.Context, serial []byte, reason ca.Reason) (*store.Cert, error)
	Issuers() []*ca.Issuer
}

// Options configure the RA.
type Options struct {
	Store     *store.Store
	Authority Authority
	Audit     *audit.Log
	Config    config.RA
	// Calendar decides deadlines; default CalendarFrom(Config).
	Calendar *workday.Calendar
	Logger   *slog.Logger
	// Registerer receives the RA's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// HTTPClient delivers webhooks; default a client with Config.Webhook.Timeout.
	HTTPClient *http.Client
	// MaxBodyBytes limits request bodies. Default 1 MiB.
	MaxBodyBytes int64
	// RepairInterval is how often Run finishes requests left issuing or
	// revoking; it bounds how long a CA outage or a failed write delays a
	// request past its working-day deadline. Default 1m.
	RepairInterval time.Duration
	// Auth authenticates API callers; default one on Store and Now.
	Auth *httpapi.Authenticator
	// ExecuteTimeout bounds one execution of an approved request (issue or
	// revoke and record it), which runs detached from the HTTP request that
	// triggered it. Default 1m.
	ExecuteTimeout time.Duration
	// Escrow makes and recovers the keys of encryption certificates
	// (escrow.go); nil answers those routes 501.
	Escrow KeyEscrow
	// Tokens unlocks USBKeys (package token); nil refuses unlock requests.
	Tokens Tokens
	// Recoverer recovers an encryption key onto a replacing USBKey; nil:
	// through Escrow (token_escrow.go), or with no Escrow either the step
	// is skipped and the request says so.
	Recoverer KeyRecoverer
}

// RA serves the RA API and runs its background jobs.
type RA struct {
	opts   Options
	st     *store.Store
	auth   Authority
	audit  *audit.Log
	cfg    config.RA
	cal    *workday.Calendar
	log    *slog.Logger
	now    func() time.Time
	notify *notifier
	m      *metrics
	// apiMetrics counts the API's errors by route.
	apiMetrics *httpapi.Metrics

	// mu serialises the RA's own read-modify-write transactions, so that
	// concurrent approvals of one request do not race (RA traffic is small).
	mu sync.Mutex
	// remindMu keeps two reminder runs from overlapping.
	remindMu sync.Mutex
	// executing holds the claims of requests being carried out.
	executing claims
}

// CalendarFrom builds the working-day calendar the configuration describes.
func CalendarFrom(c config.RA) (*workday.Calendar, error) {
	var o workday.Options
	if c.Calendar.Builtin == "cn" || c.Calendar.Builtin == "cn-2026" {
		o.Statutory = workday.China()
	}
	if c.Calendar.OverridesFile != "" {
		ov, err := workday.ReadOverrides(c.Calendar.OverridesFile)
		if err != nil {
			return nil, fmt.Errorf("ra.calendar.overrides_file: %w", err)
		}
		o.Overrides = ov
	}
	for _, s := range c.Calendar.Holidays {
		d, err := workday.ParseDate(s)
		if err != nil {
			return nil, fmt.Errorf("ra.calendar.holidays: %w", err)
		}
		o.Holidays = append(o.Holidays, d)
	}
	for _, s := range c.Calendar.MakeupWorkdays {
		d, err := workday.ParseDate(s)
		if err != nil {
			return nil, fmt.Errorf("ra.calendar.makeup_workdays: %w", err)
		}
		o.MakeupWorkdays = append(o.MakeupWorkdays, d)
	}
	o.Location = time.FixedZone(fmt.Sprintf("UTC%+d", c.Calendar.UTCOffsetHours), c.Calendar.UTCOffsetHours*3600)
	return workday.New(o), nil
}

// New returns the RA.
func New(o Options) (*RA, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Config.MaxAttempts < 1 {
		o.Config.MaxAttempts = 5
	}
	if o.Config.SupersedePolicy == "" {
		o.Config.SupersedePolicy = "revoke"
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.RepairInterval <= 0 {
		o.RepairInterval = time.Minute
	}
	if o.ExecuteTimeout <= 0 {
		o.ExecuteTimeout = time.Minute
	}
	if o.Audit == nil {
		o.Audit = audit.New(audit.Options{Store: o.Store, Logger: o.Logger, Now: o.Now})
	}
	if o.Calendar == nil {
		cal, err := CalendarFrom(o.Config)
		if err != nil {
			return nil, err
		}
		o.Calendar = cal
	}
	if o.Auth == nil {
		o.Auth = &httpapi.Authenticator{Store: o.Store, Now: o.Now, Log: o.Logger}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Config.Webhook.Timeout.D()}
	}
	r := &RA{
		opts: o, st: o.Store, auth: o.Authority, audit: o.Audit, cfg: o.Config, cal: o.Calendar,
		log: o.Logger.With("component", "ra"), now: o.Now,
	}
	if r.opts.Recoverer == nil && r.opts.Escrow != nil {
		r.opts.Recoverer = escrowRecoverer{r}
	}
	r.notify = newNotifier(o.Config, o.HTTPClient)
	r.m = newMetrics(r)
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.m); err != nil {
			return nil, fmt.Errorf("registering RA metrics: %w", err)
		}
		var err error
		if r.apiMetrics, err = httpapi.NewMetrics(o.Registerer, "ra"); err != nil {
			return nil, fmt.Errorf("registering RA API metrics: %w", err)
		}
	}
	return r, nil
}

// Run repairs what a crash left in flight, then until ctx is done repairs
// every Options.RepairInterval (a request a CA outage left issuing must not
// wait a day for the reminder job) and runs the reminder job every
// Config.ReminderInterval.
func (r *RA) Run(ctx context.Context) error {
	if r.noChannel() {
		r.log.Warn("no notification channel configured (ra.smtp.addr, ra.webhook.url): reminders and renewal links are only kept in the outbox, GET /api/v1/notifications or `certcenter ra notifications`")
	}
	r.Repair(ctx)
	r.DeliverPending(ctx)
	r.remind(ctx)
	remind := time.NewTicker(r.cfg.ReminderInterval.D())
	defer remind.Stop()
	repair := time.NewTicker(r.opts.RepairInterval)
	defer repair.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-repair.C:
			r.Repair(ctx)
			r.DeliverPending(ctx)
		case <-remind.C:
			r.remind(ctx)
		}
	}
}

func (r *RA) remind(ctx context.Context) {
	if _, err := r.RunReminders(ctx); err != nil && ctx.Err() == nil {
		r.log.Error("renewal reminders failed", "err", err)
	}
}

// Route is one endpoint of the RA API, listed for the OpenAPI check.
type Route = httpapi.Route

// Routes lists the RA's endpoints.
func (r *RA) Routes() []httpapi.Route {
	readers := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent, httpapi.RoleAuditor, httpapi.RoleRecoveryOfficer}, Admins: true}
	adminOnly := httpapi.Access{}
	staffAndAdmins := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator}, Admins: true}
	// Recovery officers decide judicial recoveries, support engineers the
	// USBKey replacements (steps.go says which).
	deciders := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleRecoveryOfficer, httpapi.RoleSupportEngineer}, Admins: true}
	downloaders := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent}, Admins: true}
	tokenRequesters := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleSupportEngineer}, Admins: true}
	return append([]httpapi.Route{
		{Method: "POST", Pattern: "/api/v1/ra/orgs", Handler: r.createOrg, Access: adminOnly},
		{Method: "GET", Pattern: "/api/v1/ra/orgs", Handler: r.listOrgs, Access: readers},
		{Method: "POST", Pattern: "/api/v1/ra/orgs/{org}/admins", Handler: r.createCertAdmin, Access: adminOnly},
		{Method: "POST", Pattern: "/api/v1/applications", Handler: r.submit, Access: staffAndAdmins},
		{Method: "POST", Pattern: "/api/v1/ra/ldap-access", Handler: r.submitLDAPAccess, Access: httpapi.Access{Admins: true}},
		{Method: "GET", Pattern: "/api/v1/applications/{id}", Handler: r.showApplication, Access: readers},
		{Method: "GET", Pattern: "/api/v1/requests", Handler: r.listRequests, Access: readers},
		{Method: "GET", Pattern: "/api/v1/requests/{id}", Handler: r.showRequest, Access: readers},
		{Method: "POST", Pattern: "/api/v1/requests/{id}/approve", Handler: r.approve, Access: deciders},
		{Method: "POST", Pattern: "/api/v1/requests/{id}/reject", Handler: r.reject, Access: deciders},
		{Method: "GET", Pattern: "/api/v1/requests/{id}/certificate", Handler: r.downloadRequestCert, Access: downloaders},
		{Method: "GET", Pattern: "/api/v1/downloads/{token}", Handler: r.downloadOnce, Access: httpapi.Access{Public: true}},
		{Method: "GET", Pattern: "/api/v1/ra/certificates", Handler: r.queryCerts, Access: readers},
		{Method: "GET", Pattern: "/api/v1/ra/certificates/{serial}", Handler: r.downloadCert, Access: readers},
		{Method: "POST", Pattern: "/api/v1/ra/reminders/run", Handler: r.runReminders, Access: adminOnly},
		{Method: "GET", Pattern: "/api/v1/notifications", Handler: r.listNotifications, Access: readers},
		{Method: "POST", Pattern: "/api/v1/ra/token-unlock", Handler: r.submitUnlock, Access: tokenRequesters},
		{Method: "POST", Pattern: "/api/v1/ra/token-unlock/{serial}/authorisation", Handler: r.fetchUnlockHandler, Access: tokenRequesters},
		{Method: "POST", Pattern: "/api/v1/ra/token-replace", Handler: r.submitReplace, Access: tokenRequesters},
	}, r.escrowRoutes()...)
}

// Register mounts the routes on mux.
func (r *RA) Register(mux *http.ServeMux) {
	httpapi.Register(mux, r.Routes(), httpapi.Mount{Auth: r.opts.Auth, Log: r.log, MaxBodyBytes: r.opts.MaxBodyBytes, Metrics: r.apiMetrics})
}

// caller is the authenticated client: a staff member or a certificate
// administrator of an organisation.
type caller = httpapi.Principal

func callerFrom(ctx context.Context) *caller {
	c, _ := httpapi.PrincipalFrom(ctx)
	return c
}

// update runs fn in a store transaction under the RA lock and mirrors the
// audit entries it appended to the log after the commit.
func (r *RA) update(ctx context.Context, fn func(tx *store.Tx, log func(audit.Record) error) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var entries []*store.AuditEntry
	err := r.st.Update(ctx, func(tx *store.Tx) error {
		entries = entries[:0]
		return fn(tx, func(rec audit.Record) error {
			e, err := r.audit.AppendTx(tx, rec)
			if err == nil {
				entries = append(entries, e)
			}
			return err
		})
	})
	if err == nil {
		for _, e := range entries {
			r.audit.Logged(e)
		}
	}
	return err
}
