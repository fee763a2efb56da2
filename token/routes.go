package token

import (
	"net/http"

	"github.com/certcenter/certcenter/internal/httpapi"
)

// Routes lists the inventory's endpoints. Unlock and replacement are RA
// requests: their routes are the RA's.
func (s *Service) Routes() []httpapi.Route {
	keepers := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleSupportEngineer}}
	reportersAccess := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleSupportEngineer, httpapi.RoleServiceAgent}}
	// Certificate administrators read their organisation's tokens.
	readers := httpapi.Access{Roles: []string{httpapi.RoleRAOfficer, httpapi.RoleSupportEngineer, httpapi.RoleServiceAgent, httpapi.RoleCAOperator, httpapi.RoleAuditor}, Admins: true}
	return []httpapi.Route{
		{Method: "POST", Pattern: "/api/v1/tokens", Handler: s.handleAdd, Access: keepers},
		{Method: "GET", Pattern: "/api/v1/tokens", Handler: s.handleList, Access: readers},
		{Method: "GET", Pattern: "/api/v1/tokens/{serial}", Handler: s.handleShow, Access: readers},
		{Method: "POST", Pattern: "/api/v1/tokens/{serial}/personalise", Handler: s.handlePersonalise, Access: keepers},
		{Method: "POST", Pattern: "/api/v1/tokens/{serial}/state", Handler: s.handleReport, Access: reportersAccess},
		{Method: "POST", Pattern: "/api/v1/tokens/{serial}/credential", Handler: s.handleCredential, Access: keepers},
	}
}

func principal(r *http.Request) *httpapi.Principal {
	p, _ := httpapi.PrincipalFrom(r.Context())
	return p
}

func (s *Service) handleAdd(w http.ResponseWriter, r *http.Request) error {
	var in AddRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	t, err := s.Add(r.Context(), principal(r).ID(), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, ViewOf(t))
}

func (s *Service) handlePersonalise(w http.ResponseWriter, r *http.Request) error {
	var in PersonaliseRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	out, err := s.Personalise(r.Context(), principal(r).ID(), r.PathValue("serial"), in)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) handleReport(w http.ResponseWriter, r *http.Request) error {
	var in StateRequest
	if err := httpapi.DecodeJSON(r, &in); err != nil {
		return err
	}
	t, err := s.Report(r.Context(), principal(r).ID(), r.PathValue("serial"), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(t))
}

func (s *Service) handleShow(w http.ResponseWriter, r *http.Request) error {
	t, err := s.Get(r.Context(), r.PathValue("serial"))
	if err != nil {
		return err
	}
	if p := principal(r); p.Admin != nil && p.Admin.OrgID != t.OrgID {
		// Another organisation's token is answered as absent.
		return httpapi.NotFound("token %s is not in the inventory", t.Serial)
	}
	return httpapi.WriteJSON(w, http.StatusOK, ViewOf(t))
}

func (s *Service) handleList(w http.ResponseWriter, r *http.Request) error {
	limit, after, err := httpapi.Page(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	query := Query{Holder: q.Get("holder"), Org: q.Get("org"), State: q.Get("state"), After: after, Limit: limit}
	if p := principal(r); p.Admin != nil {
		if query.Org != "" && query.Org != p.Admin.OrgID {
			return httpapi.Forbidden("you are a certificate administrator of %s, not of %s", p.Admin.OrgID, query.Org)
		}
		if query.Holder == "" {
			query.Org = p.Admin.OrgID
		}
	}
	ts, next, err := s.List(r.Context(), query)
	if err != nil {
		return err
	}
	items := make([]View, 0, len(ts))
	for _, t := range ts {
		if p := principal(r); p.Admin != nil && t.OrgID != p.Admin.OrgID {
			continue
		}
		items = append(items, ViewOf(t))
	}
	return httpapi.WritePage(w, items, next)
}

func (s *Service) handleCredential(w http.ResponseWriter, r *http.Request) error {
	out, err := s.ReleaseCredential(r.Context(), principal(r).ID(), r.PathValue("serial"))
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, out)
}
