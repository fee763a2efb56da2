// Package admin serves the admin HTTP API for CA operators and the service
// desk: certificate lookup and revocation, store status, staff enrolment,
// audit log verification, and (as their issues land) tickets, knowledge
// base and diagnostics. It issues nothing but staff credentials: subscriber
// certificates belong to the RA workflows. Its routes are httpapi.Routes,
// mounted by httpapi.Register like the RA's.
package admin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Authority is what the admin API needs of the CA.
type Authority interface {
	RevokeWith(ctx context.Context, serial []byte, reason ca.Reason, also func(*store.Tx, *store.Cert) error) (*store.Cert, error)
	Cert(ctx context.Context, serial []byte) (*store.Cert, error)
}

// AuditLog records state changes in the tamper-evident audit log.
type AuditLog interface {
	AppendTx(tx *store.Tx, r audit.Record) (*store.AuditEntry, error)
	Logged(e *store.AuditEntry)
}

// AuditVerifier checks the audit log's hash chain.
type AuditVerifier interface {
	Verify(ctx context.Context) (audit.Report, error)
}

// Options configure the API.
type Options struct {
	Store     *store.Store
	Authority Authority
	// Credentials issues staff credentials (POST /api/v1/ra/staff); nil
	// answers that route 501.
	Credentials CredentialAuthority
	Auth        *httpapi.Authenticator
	Logger      *slog.Logger
	// Audit receives one record per state change, in the change's transaction.
	Audit AuditLog
	// Verifier checks the audit log (GET /api/v1/ra/audit/verify); default
	// Audit if it can.
	Verifier AuditVerifier
	// MaxBodyBytes limits request bodies (config api.max_body_bytes).
	MaxBodyBytes int64
	// Metrics counts the API's errors; nil counts nothing.
	Metrics *httpapi.Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Diagnostics are the sources of GET /api/v1/diagnostics/...
	Diagnostics Diagnostics
	// Publishing pauses, resumes and resyncs publishing targets (POST
	// /api/v1/diagnostics/targets/{name}/...); nil: no targets (404).
	Publishing TargetControl
}

// CredentialAuthority is what enrolling staff needs of the CA: issue the
// credential, and revoke it if its holder cannot be stored.
type CredentialAuthority interface {
	httpapi.CredentialAuthority
	Revoke(ctx context.Context, serial []byte, reason ca.Reason) (*store.Cert, error)
}

// API is the admin HTTP API.
type API struct {
	opts Options
	log  *slog.Logger
	diag *Diagnoser
}

// New returns the API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if v, ok := opts.Audit.(AuditVerifier); ok && opts.Verifier == nil {
		opts.Verifier = v
	}
	return &API{opts: opts, log: opts.Logger.With("component", "admin"), diag: NewDiagnoser(opts.Store, opts.Diagnostics, opts.Now)}
}

// Route is one endpoint of the API.
type Route = httpapi.Route

// Routes lists the API's endpoints (the OpenAPI document is checked against
// them). Staff enrolment and audit verification keep the /api/v1/ra/ paths
// clients already use.
func (a *API) Routes() []httpapi.Route {
	readers := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent, httpapi.RoleAuditor}}
	operators := httpapi.Access{Roles: []string{httpapi.RoleCAOperator}}
	return []httpapi.Route{
		{Method: "GET", Pattern: "/api/v1/certs", Handler: a.listCerts, Access: readers},
		{Method: "GET", Pattern: "/api/v1/certs/{serial}", Handler: a.showCert, Access: readers},
		{Method: "POST", Pattern: "/api/v1/certs/{serial}/revoke", Handler: a.revokeCert, Access: httpapi.Access{Roles: []string{httpapi.RoleCAOperator}}},
		{Method: "GET", Pattern: "/api/v1/status", Handler: a.status, Access: readers},
		{Method: "POST", Pattern: "/api/v1/ra/staff", Handler: a.createStaff, Access: httpapi.Access{}},
		{Method: "GET", Pattern: "/api/v1/ra/audit/verify", Handler: a.verifyAudit, Access: httpapi.Access{Roles: []string{httpapi.RoleAuditor}}},
		{Method: "GET", Pattern: "/api/v1/diagnostics/certificates/{serial}", Handler: a.diagCert, Access: readers},
		{Method: "GET", Pattern: "/api/v1/diagnostics/organisations/{org}", Handler: a.diagOrg, Access: readers},
		{Method: "GET", Pattern: "/api/v1/diagnostics/targets", Handler: a.diagTargets, Access: readers},
		{Method: "POST", Pattern: "/api/v1/diagnostics/targets/{name}/pause", Handler: a.targetOp("pause"), Access: operators},
		{Method: "POST", Pattern: "/api/v1/diagnostics/targets/{name}/resume", Handler: a.targetOp("resume"), Access: operators},
		{Method: "POST", Pattern: "/api/v1/diagnostics/targets/{name}/resync", Handler: a.targetOp("resync"), Access: operators},
		{Method: "GET", Pattern: "/api/v1/ldap/accounts", Handler: a.listLDAPAccounts, Access: operators},
		{Method: "POST", Pattern: "/api/v1/ldap/accounts", Handler: a.createLDAPAccount, Access: operators},
		{Method: "POST", Pattern: "/api/v1/ldap/accounts/{id}/revoke", Handler: a.revokeLDAPAccount, Access: operators},
		{Method: "PUT", Pattern: "/api/v1/ldap/accounts/{id}/client-cert", Handler: a.setLDAPAccountCert, Access: operators},
	}
}

// Register mounts the routes on mux.
func (a *API) Register(mux *http.ServeMux) {
	httpapi.Register(mux, a.Routes(), httpapi.Mount{Auth: a.opts.Auth, Log: a.log, MaxBodyBytes: a.opts.MaxBodyBytes, Metrics: a.opts.Metrics})
}

// CertView is the JSON form of a certificate.
type CertView = httpapi.CertView

// viewOf is a certificate as the admin API shows it: valid or revoked, the
// store's status (an expired certificate is valid until it is revoked).
func viewOf(c *store.Cert, withPEM bool) CertView {
	return httpapi.ViewCert(c, httpapi.CertViewOptions{PEM: withPEM})
}

func (a *API) listCerts(w http.ResponseWriter, r *http.Request) error {
	limit, afterHex, err := httpapi.Page(r)
	if err != nil {
		return err
	}
	var after []byte
	if afterHex != "" {
		if after, err = httpapi.ParseSerial(afterHex); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	status := q.Get("status")
	if status != "" && status != "valid" && status != "revoked" {
		return httpapi.BadRequest("status must be valid or revoked")
	}
	out := []CertView{}
	more := false
	// collect takes certificates in serial order (every index below is
	// ordered by serial within its key), skips up to the cursor, and stops
	// one past the page so the answer knows whether there is a next page.
	collect := func(c *store.Cert) error {
		if after != nil && bytes.Compare(c.Serial, after) <= 0 {
			return nil
		}
		if status != "" && c.Status.String() != status {
			return nil
		}
		if len(out) == limit {
			more = true
			return httpapi.ErrPageFull
		}
		out = append(out, viewOf(c, false))
		return nil
	}
	err = a.opts.Store.View(r.Context(), func(tx *store.Tx) error {
		switch {
		case q.Get("cn") != "":
			return tx.CertsByCommonName(q.Get("cn"), collect)
		case q.Get("subscriber") != "":
			return tx.CertsBySubscriber(q.Get("subscriber"), collect)
		}
		start := after
		for {
			page, next, err := tx.CertPage(start, limit+1)
			if err != nil {
				return err
			}
			for _, c := range page {
				if err := collect(c); err != nil {
					return err
				}
			}
			if next == nil {
				return nil
			}
			start = next
		}
	})
	if err != nil && !errors.Is(err, httpapi.ErrPageFull) {
		return err
	}
	next := ""
	if more {
		next = out[len(out)-1].Serial
	}
	return httpapi.WritePage(w, out, next)
}

func (a *API) showCert(w http.ResponseWriter, r *http.Request) error {
	serial, err := httpapi.ParseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	c, err := a.opts.Authority.Cert(r.Context(), serial)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, viewOf(c, true))
}

type revokeRequest struct {
	Reason  string `json:"reason"`
	Comment string `json:"comment,omitempty"`
}

func (a *API) revokeCert(w http.ResponseWriter, r *http.Request) error {
	serial, err := httpapi.ParseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	var req revokeRequest
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Reason == "" {
		req.Reason = "unspecified"
	}
	reason, err := ca.ParseReason(req.Reason)
	if err != nil {
		return httpapi.BadRequest("%v", err)
	}
	p, _ := httpapi.PrincipalFrom(r.Context())
	var entry *store.AuditEntry
	c, err := a.opts.Authority.RevokeWith(r.Context(), serial, reason, func(tx *store.Tx, c *store.Cert) error {
		var err error
		entry, err = a.opts.Audit.AppendTx(tx, audit.Record{
			Actor: "staff:" + p.Staff.ID, Action: "cert.revoke", Object: "cert/" + c.SerialHex(),
			Details: map[string]string{"issuer": c.Issuer, "reason": reason.String(), "comment": req.Comment},
		})
		return err
	})
	if err != nil {
		return err // the CA's errors name the serial
	}
	a.opts.Audit.Logged(entry)
	return httpapi.WriteJSON(w, http.StatusOK, viewOf(c, false))
}

func (a *API) status(w http.ResponseWriter, r *http.Request) error {
	var counts store.Counts
	if err := a.opts.Store.View(r.Context(), func(tx *store.Tx) error {
		var err error
		counts, err = tx.Counts()
		return err
	}); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, counts)
}
