package ra

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/http"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

type orgRequest struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Parent     string `json:"parent,omitempty"`
	MultiLevel bool   `json:"multi_level,omitempty"`
}

func (r *RA) createOrg(w http.ResponseWriter, req *http.Request) error {
	var o orgRequest
	if err := httpapi.DecodeJSON(req, &o); err != nil {
		return err
	}
	if !httpapi.IDPattern.MatchString(o.ID) {
		return httpapi.BadRequest("id %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", o.ID)
	}
	if o.Name == "" || len(o.Name) > maxFieldLen {
		return httpapi.BadRequest("name is required (at most %d bytes)", maxFieldLen)
	}
	if o.MultiLevel && o.Parent == "" {
		return httpapi.BadRequest("a multi-level organisation needs a parent (its superior)")
	}
	c := callerFrom(req.Context())
	rec := &store.Org{ID: o.ID, Name: o.Name, ParentID: o.Parent, MultiLevel: o.MultiLevel, CreatedAt: r.now().UTC()}
	err := r.update(req.Context(), func(tx *store.Tx, log func(audit.Record) error) error {
		if o.Parent != "" {
			if _, err := tx.Org(o.Parent); err != nil {
				return httpapi.BadRequest("parent organisation %q does not exist", o.Parent)
			}
		}
		if err := tx.InsertOrg(rec); err != nil {
			return err
		}
		return log(audit.Record{Actor: c.ID(), Action: "ra.org.create", Object: "org/" + o.ID, Details: map[string]string{"name": o.Name, "parent": o.Parent}})
	})
	if err != nil {
		return toAPI(err)
	}
	return httpapi.WriteJSON(w, http.StatusCreated, rec)
}

func (r *RA) listOrgs(w http.ResponseWriter, req *http.Request) error {
	c := callerFrom(req.Context())
	out := []*store.Org{}
	err := r.st.View(req.Context(), func(tx *store.Tx) error {
		return tx.EachOrg(func(o *store.Org) error {
			if c.Admin == nil || o.ID == c.Admin.OrgID || o.ParentID == c.Admin.OrgID {
				out = append(out, o)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"items": out})
}

func (r *RA) issuerCert(name string) *x509.Certificate {
	return httpapi.IssuerCert(r.auth.Issuers(), name)
}

func (r *RA) createCertAdmin(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	var cr httpapi.CredentialRequest
	if err := httpapi.DecodeJSON(req, &cr); err != nil {
		return err
	}
	orgID := req.PathValue("org")
	var org *store.Org
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if org, err = tx.Org(orgID); err != nil {
			return httpapi.NotFound("no organisation %s", orgID)
		}
		if _, err := tx.CertAdmin(cr.ID); err == nil {
			return httpapi.Conflict("certificate administrator %s exists", cr.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	cert, err := httpapi.IssueCredential(ctx, r.auth, &cr, pkix.Name{CommonName: cr.Name, Organization: []string{org.Name}, OrganizationalUnit: []string{"certificate administrator"}})
	if err != nil {
		return err
	}
	c := callerFrom(ctx)
	adm := &store.CertAdmin{ID: cr.ID, OrgID: orgID, Name: cr.Name, Email: cr.Email, CertSerials: [][]byte{cert.Serial}, CreatedAt: r.now().UTC()}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		if err := tx.InsertCertAdmin(adm); err != nil {
			return err
		}
		if err := tx.PutOrgCert(orgID, cert.Serial); err != nil {
			return err
		}
		return log(audit.Record{Actor: c.ID(), Action: "ra.admin.create", Object: "admin/" + cr.ID, Details: map[string]string{"org": orgID, "serial": cert.SerialHex()}})
	})
	if err != nil {
		r.revokeOrphan(req, cert)
		return toAPI(err)
	}
	return httpapi.WriteJSON(w, http.StatusCreated, httpapi.NewCredential(r.auth, cr.ID, orgID, "", cert))
}

// revokeOrphan revokes a credential whose holder record could not be stored,
// so no valid certificate authenticates nobody.
func (r *RA) revokeOrphan(req *http.Request, cert *store.Cert) {
	if _, err := r.auth.Revoke(req.Context(), cert.Serial, ca.ReasonCessationOfOperation); err != nil {
		r.log.Error("revoking orphan credential", "serial", cert.SerialHex(), "err", err)
	}
}

// namedOrg reads the organisation a request names; one that does not exist
// is the requester's mistake (400), not a missing resource.
func namedOrg(tx *store.Tx, id string) (*store.Org, error) {
	org, err := tx.Org(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.BadRequest("organisation %q does not exist", id)
	}
	return org, err
}
