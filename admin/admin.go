// Package admin serves the admin HTTP API for CA operators and the service
// desk: certificate lookup and revocation, store status, and (as their issues
// land) tickets, knowledge base, diagnostics and the audit log. It does not
// issue: issuance belongs to the RA workflows.
package admin

import (
	"bytes"
	"context"
	"encoding/pem"
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

// Options configure the API.
type Options struct {
	Store     *store.Store
	Authority Authority
	Auth      *httpapi.Authenticator
	Logger    *slog.Logger
	// Audit receives one record per state change, in the change's transaction.
	Audit AuditLog
	// MaxBodyBytes limits request bodies (config api.max_body_bytes).
	MaxBodyBytes int64
}

// API is the admin HTTP API.
type API struct {
	opts Options
	log  *slog.Logger
}

// New returns the API.
func New(opts Options) *API {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	return &API{opts: opts, log: opts.Logger.With("component", "admin")}
}

// Route is one endpoint of the API.
type Route struct {
	Method, Pattern string
	handle          httpapi.HandlerFunc
	roles           []string
}

// Routes lists the API's endpoints (the OpenAPI document is checked against it).
func (a *API) Routes() []Route {
	readers := []string{httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent, httpapi.RoleAuditor}
	return []Route{
		{"GET", "/api/v1/certs", a.listCerts, readers},
		{"GET", "/api/v1/certs/{serial}", a.showCert, readers},
		{"POST", "/api/v1/certs/{serial}/revoke", a.revokeCert, []string{httpapi.RoleCAOperator}},
		{"GET", "/api/v1/status", a.status, readers},
	}
}

// Register mounts the routes on mux.
func (a *API) Register(mux *http.ServeMux) {
	for _, rt := range a.Routes() {
		fn := rt.handle
		limited := func(w http.ResponseWriter, r *http.Request) error {
			r.Body = http.MaxBytesReader(w, r.Body, a.opts.MaxBodyBytes)
			return fn(w, r)
		}
		mux.Handle(rt.Method+" "+rt.Pattern, a.opts.Auth.Require(httpapi.Handle(a.log, limited), rt.roles...))
	}
}

// CertView is the JSON form of a certificate.
type CertView struct {
	Serial       string    `json:"serial"`
	Issuer       string    `json:"issuer"`
	Subject      string    `json:"subject"`
	CommonName   string    `json:"cn"`
	Profile      string    `json:"profile"`
	SubscriberID string    `json:"subscriber,omitempty"`
	Status       string    `json:"status"`
	NotBefore    time.Time `json:"not_before"`
	NotAfter     time.Time `json:"not_after"`
	RevokedAt    time.Time `json:"revoked_at,omitzero"`
	Reason       string    `json:"reason,omitempty"`
	PEM          string    `json:"pem,omitempty"`
}

func viewOf(c *store.Cert, withPEM bool) CertView {
	v := CertView{
		Serial: c.SerialHex(), Issuer: c.Issuer, Subject: c.Subject, CommonName: c.CommonName,
		Profile: c.Profile, SubscriberID: c.SubscriberID, Status: c.Status.String(),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter,
	}
	if c.Status == store.StatusRevoked {
		v.RevokedAt = c.RevokedAt
		v.Reason = ca.Reason(c.Reason).String()
	}
	if withPEM {
		v.PEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}))
	}
	return v
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
			return errFull
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
	if err != nil && !errors.Is(err, errFull) {
		return err
	}
	resp := map[string]any{"items": out}
	if more {
		resp["next"] = out[len(out)-1].Serial
	}
	return httpapi.WriteJSON(w, http.StatusOK, resp)
}

var errFull = errors.New("page full")

func (a *API) showCert(w http.ResponseWriter, r *http.Request) error {
	serial, err := httpapi.ParseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	c, err := a.opts.Authority.Cert(r.Context(), serial)
	if errors.Is(err, ca.ErrNotFound) {
		return httpapi.NotFound("no certificate with serial %x", serial)
	}
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
	switch {
	case errors.Is(err, ca.ErrNotFound):
		return httpapi.NotFound("no certificate with serial %x", serial)
	case errors.Is(err, store.ErrAlreadyRevoked):
		return httpapi.Conflict("certificate %x is already revoked", serial)
	case errors.Is(err, ca.ErrRefused):
		return httpapi.Conflict("%v", err)
	case errors.Is(err, ca.ErrBadRequest):
		return httpapi.BadRequest("%v", err)
	case err != nil:
		return err
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
