package seed

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// MaxBatch bounds the subscribers one API call adds: a call is one HTTP
// request, and the client (`certcenter seed --server`) sends as many as
// it needs. On a running server every certificate's OCSP response is
// signed by the responder's issuance event before the call returns, so a
// batch of this size takes seconds, not minutes.
const MaxBatch = 5000

// AuditLog records each batch in its transaction.
type AuditLog interface {
	AppendTx(tx *store.Tx, r audit.Record) (*store.AuditEntry, error)
	Logged(e *store.AuditEntry)
}

// API serves POST /api/v1/seed: the seed of a running server, where the
// offline `certcenter seed` cannot open the locked data directory.
type API struct {
	Store     *store.Store
	Authority *ca.Authority
	Audit     AuditLog
	Logger    *slog.Logger
}

// Request is the body of POST /api/v1/seed.
type Request struct {
	Count           int     `json:"count"`
	RevokedFraction float64 `json:"revoked_fraction"`
}

// Response reports one call.
type Response struct {
	Subscribers int    `json:"subscribers"`
	Revoked     int    `json:"revoked"`
	First       string `json:"first,omitempty"`
	Last        string `json:"last,omitempty"`
	ElapsedMS   int64  `json:"elapsed_ms"`
}

// Routes lists the seed route for httpapi.Register: CA operators only.
func (a *API) Routes() []httpapi.Route {
	return []httpapi.Route{{Method: "POST", Pattern: "/api/v1/seed", Handler: a.seed,
		Access: httpapi.Access{Roles: []string{httpapi.RoleCAOperator}}}}
}

func (a *API) seed(w http.ResponseWriter, r *http.Request) error {
	var req Request
	if err := httpapi.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Count < 1 || req.Count > MaxBatch {
		return httpapi.BadRequest("count %d must be between 1 and %d per call; send more calls for more", req.Count, MaxBatch)
	}
	if !(req.RevokedFraction >= 0 && req.RevokedFraction <= 1) {
		return httpapi.BadRequest("revoked_fraction %g must be between 0 and 1", req.RevokedFraction)
	}
	p, _ := httpapi.PrincipalFrom(r.Context())
	// A batch's transaction may run again after a conflict: keep the
	// entry of its last run, the one that committed.
	var mu sync.Mutex
	entries := map[string]*store.AuditEntry{}
	res, err := Run(r.Context(), a.Store, a.Authority, Options{
		Count: req.Count, RevokedFraction: req.RevokedFraction,
		// One batch at a time: every batch appends to the audit chain,
		// whose head parallel batches would fight over; the server
		// goes on serving meanwhile.
		Workers: 1,
		OnBatch: func(tx *store.Tx, first, last string, revoked int) error {
			e, err := a.Audit.AppendTx(tx, audit.Record{Actor: p.ID(), Action: "seed.add", Object: "subscribers/" + first + ".." + last,
				Details: map[string]string{"revoked": strconv.Itoa(revoked)}})
			mu.Lock()
			entries[first] = e
			mu.Unlock()
			return err
		},
	})
	for _, e := range entries {
		a.Audit.Logged(e)
	}
	if err != nil {
		return httpapi.APIError(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, Response{Subscribers: res.Subscribers, Revoked: res.Revoked,
		First: res.First, Last: res.Last, ElapsedMS: res.Elapsed.Milliseconds()})
}
