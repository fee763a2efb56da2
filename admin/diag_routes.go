package admin

import (
	"errors"
	"net/http"

	"github.com/certcenter/certcenter/internal/httpapi"
)

// diagError maps what the store does not hold to a 404.
func diagError(err error) error {
	if errors.Is(err, ErrNoSuchCert) || errors.Is(err, ErrNoSuchOrg) {
		return httpapi.NotFound("%v", err)
	}
	return err
}

func (a *API) diagCert(w http.ResponseWriter, r *http.Request) error {
	serial, err := httpapi.ParseSerial(r.PathValue("serial"))
	if err != nil {
		return err
	}
	d, err := a.diag.Cert(r.Context(), serial)
	if err != nil {
		return diagError(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, d)
}

func (a *API) diagOrg(w http.ResponseWriter, r *http.Request) error {
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
	d, err := a.diag.Org(r.Context(), r.PathValue("org"), limit, after)
	if err != nil {
		return diagError(err)
	}
	return httpapi.WriteJSON(w, http.StatusOK, d)
}

func (a *API) diagTargets(w http.ResponseWriter, r *http.Request) error {
	d, err := a.diag.TargetList(r.Context())
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, d)
}
