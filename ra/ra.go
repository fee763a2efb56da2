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
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
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
	// ExecuteTimeout bounds one execution of an approved request (issue or
	// revoke and record it), which runs detached from the HTTP request that
	// triggered it. Default 1m.
	ExecuteTimeout time.Duration
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
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Config.Webhook.Timeout.D()}
	}
	r := &RA{
		opts: o, st: o.Store, auth: o.Authority, audit: o.Audit, cfg: o.Config, cal: o.Calendar,
		log: o.Logger.With("component", "ra"), now: o.Now,
	}
	r.notify = newNotifier(o.Config, o.HTTPClient)
	r.m = newMetrics(r)
	if o.Registerer != nil {
		if err := o.Registerer.Register(r.m); err != nil {
			return nil, fmt.Errorf("registering RA metrics: %w", err)
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

// access says who may call a route: staff with one of the roles (admin
// always may), and certificate administrators if admins is set. A nil access
// is a public route (one-time downloads, whose token is the credential).
type access struct {
	roles  []string
	admins bool
}

// Route is one endpoint of the RA API, listed for the OpenAPI check.
type Route struct {
	Method, Pattern string
	h               httpapi.HandlerFunc
	who             *access
}

// Routes lists the RA's endpoints.
func (r *RA) Routes() []Route {
	readers := []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent, httpapi.RoleAuditor}
	adminOnly := &access{}
	reviewers := &access{roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator}, admins: true}
	return []Route{
		{"POST", "/api/v1/ra/orgs", r.createOrg, adminOnly},
		{"GET", "/api/v1/ra/orgs", r.listOrgs, &access{roles: readers, admins: true}},
		{"POST", "/api/v1/ra/orgs/{org}/admins", r.createCertAdmin, adminOnly},
		{"POST", "/api/v1/ra/staff", r.createStaff, adminOnly},
		{"POST", "/api/v1/applications", r.submit, &access{roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator}, admins: true}},
		{"GET", "/api/v1/applications/{id}", r.showApplication, &access{roles: readers, admins: true}},
		{"GET", "/api/v1/requests", r.listRequests, &access{roles: readers, admins: true}},
		{"GET", "/api/v1/requests/{id}", r.showRequest, &access{roles: readers, admins: true}},
		{"POST", "/api/v1/requests/{id}/approve", r.approve, reviewers},
		{"POST", "/api/v1/requests/{id}/reject", r.reject, reviewers},
		{"GET", "/api/v1/requests/{id}/certificate", r.downloadRequestCert, &access{roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent}, admins: true}},
		{"GET", "/api/v1/downloads/{token}", r.downloadOnce, nil},
		{"GET", "/api/v1/ra/certificates", r.queryCerts, &access{roles: readers, admins: true}},
		{"GET", "/api/v1/ra/certificates/{serial}", r.downloadCert, &access{roles: readers, admins: true}},
		{"POST", "/api/v1/ra/reminders/run", r.runReminders, adminOnly},
		{"GET", "/api/v1/notifications", r.listNotifications, &access{roles: readers, admins: true}},
		{"GET", "/api/v1/ra/audit/verify", r.verifyAudit, &access{roles: []string{httpapi.RoleAuditor}}},
	}
}

// Register mounts the routes on mux.
func (r *RA) Register(mux *http.ServeMux) {
	for _, rt := range r.Routes() {
		mux.Handle(rt.Method+" "+rt.Pattern, r.wrap(rt))
	}
}

func (r *RA) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		req.Body = http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes)
		if rt.who != nil {
			c, err := r.authenticate(req)
			if err == nil {
				err = rt.who.allows(c)
			}
			if err != nil {
				httpapi.WriteError(w, req, r.log, err)
				return
			}
			req = req.WithContext(context.WithValue(req.Context(), callerKey{}, c))
		}
		if err := rt.h(w, req); err != nil {
			httpapi.WriteError(w, req, r.log, err)
		}
	})
}

// caller is the authenticated client: a staff member or a certificate
// administrator of an organisation.
type caller struct {
	staff *store.Staff
	admin *store.CertAdmin
	cert  *x509.Certificate
}

func (c *caller) id() string {
	if c.staff != nil {
		return "staff:" + c.staff.ID
	}
	return "admin:" + c.admin.ID
}

func (c *caller) hasRole(roles ...string) bool {
	return c.staff != nil && (c.staff.Role == httpapi.RoleAdmin || slices.Contains(roles, c.staff.Role))
}

type callerKey struct{}

func callerFrom(ctx context.Context) *caller {
	c, _ := ctx.Value(callerKey{}).(*caller)
	return c
}

func (a *access) allows(c *caller) error {
	if c.admin != nil {
		if a.admins {
			return nil
		}
		return httpapi.Forbidden("a certificate administrator may not do this")
	}
	if c.hasRole(a.roles...) {
		return nil
	}
	return httpapi.Forbidden("role %s may not do this", c.staff.Role)
}

// authenticate maps the verified TLS client certificate to a staff member or
// a certificate administrator. The TLS layer checked the chain to our CA;
// here the certificate must also be ours, unrevoked and unexpired.
func (r *RA) authenticate(req *http.Request) (*caller, error) {
	if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 {
		return nil, httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "a client certificate issued by this CA is required")
	}
	leaf := req.TLS.VerifiedChains[0][0]
	c := &caller{cert: leaf}
	err := r.st.View(req.Context(), func(tx *store.Tx) error {
		rec, err := tx.Cert(leaf.SerialNumber.Bytes())
		if err != nil {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %x is not known to this CA", leaf.SerialNumber.Bytes())
		}
		if rec.Status == store.StatusRevoked {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s is revoked", rec.SerialHex())
		}
		if r.now().After(rec.NotAfter) {
			return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s has expired", rec.SerialHex())
		}
		if c.staff, err = tx.StaffByCert(rec.Serial); err == nil {
			return nil
		}
		if c.admin, err = tx.CertAdminByCert(rec.Serial); err == nil {
			return nil
		}
		return httpapi.Errorf(http.StatusUnauthorized, "unauthenticated", "client certificate %s belongs to no staff member or certificate administrator", rec.SerialHex())
	})
	if err != nil {
		return nil, err
	}
	return c, nil
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
