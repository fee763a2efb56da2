package ra

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/http"
	"regexp"
	"slices"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

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
	if !idRE.MatchString(o.ID) {
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
		return log(audit.Record{Actor: c.id(), Action: "ra.org.create", Object: "org/" + o.ID, Details: map[string]string{"name": o.Name, "parent": o.Parent}})
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
			if c.admin == nil || o.ID == c.admin.OrgID || o.ParentID == c.admin.OrgID {
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

type credentialRequest struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	Role  string `json:"role,omitempty"`
	// CSR is the holder's PEM certificate request: their key never leaves them.
	CSR string `json:"csr"`
}

type credentialResponse struct {
	ID          string `json:"id"`
	Org         string `json:"org,omitempty"`
	Role        string `json:"role,omitempty"`
	Serial      string `json:"serial"`
	Certificate string `json:"certificate"`
	CA          string `json:"ca"`
}

// issueCredential issues a cert-admin profile certificate for a client that
// authenticates to the API and signs applications.
func (r *RA) issueCredential(req *http.Request, cr *credentialRequest, subject pkix.Name, org string) (*store.Cert, *x509.Certificate, error) {
	if !idRE.MatchString(cr.ID) {
		return nil, nil, httpapi.BadRequest("id %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", cr.ID)
	}
	if cr.Name == "" || len(cr.Name) > maxFieldLen {
		return nil, nil, httpapi.BadRequest("name is required (at most %d bytes)", maxFieldLen)
	}
	csr, err := parsePEMCSR(cr.CSR)
	if err != nil {
		return nil, nil, toAPI(err)
	}
	ir := ca.IssueRequest{CSR: csr, Profile: ca.ProfileCertAdmin, Subject: &subject}
	if cr.Email != "" {
		ir.EmailAddresses = []string{cr.Email}
	}
	cert, err := r.auth.Issue(req.Context(), ir)
	if err != nil {
		return nil, nil, toAPI(err)
	}
	iss := r.issuerCert(cert.Issuer)
	return cert, iss, nil
}

func (r *RA) issuerCert(name string) *x509.Certificate {
	for _, iss := range r.auth.Issuers() {
		if iss.Name == name {
			return iss.Cert
		}
	}
	return nil
}

func credential(id, org, role string, c *store.Cert, iss *x509.Certificate) credentialResponse {
	out := credentialResponse{ID: id, Org: org, Role: role, Serial: c.SerialHex(),
		Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.DER}))}
	if iss != nil {
		out.CA = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.Raw}))
	}
	return out
}

func (r *RA) createCertAdmin(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	var cr credentialRequest
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
	cert, iss, err := r.issueCredential(req, &cr, pkix.Name{CommonName: cr.Name, Organization: []string{org.Name}, OrganizationalUnit: []string{"certificate administrator"}}, orgID)
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
		return log(audit.Record{Actor: c.id(), Action: "ra.admin.create", Object: "admin/" + cr.ID, Details: map[string]string{"org": orgID, "serial": cert.SerialHex()}})
	})
	if err != nil {
		r.revokeOrphan(req, cert)
		return toAPI(err)
	}
	return httpapi.WriteJSON(w, http.StatusCreated, credential(cr.ID, orgID, "", cert, iss))
}

// revokeOrphan revokes a credential whose holder record could not be stored,
// so no valid certificate authenticates nobody.
func (r *RA) revokeOrphan(req *http.Request, cert *store.Cert) {
	if _, err := r.auth.Revoke(req.Context(), cert.Serial, ca.ReasonCessationOfOperation); err != nil {
		r.log.Error("revoking orphan credential", "serial", cert.SerialHex(), "err", err)
	}
}

var staffRoles = []string{httpapi.RoleAdmin, httpapi.RoleRAOfficer, httpapi.RoleCAOperator, httpapi.RoleServiceAgent, httpapi.RoleAuditor, httpapi.RoleMetrics}

func (r *RA) createStaff(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	var cr credentialRequest
	if err := httpapi.DecodeJSON(req, &cr); err != nil {
		return err
	}
	if !slices.Contains(staffRoles, cr.Role) {
		return httpapi.BadRequest("role %q is not one of %v", cr.Role, staffRoles)
	}
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		if taken, err := tx.StaffIDTaken(cr.ID); err != nil {
			return err
		} else if taken {
			return httpapi.Conflict("staff member %s exists", cr.ID)
		}
		return nil
	}); err != nil {
		return err
	}
	subj := pkix.Name{CommonName: cr.Name, OrganizationalUnit: []string{cr.Role}}
	if iss := r.auth.Issuers(); len(iss) > 0 {
		subj.Organization = iss[0].Cert.Subject.Organization
	}
	cert, iss, err := r.issueCredential(req, &cr, subj, "")
	if err != nil {
		return err
	}
	c := callerFrom(ctx)
	staff := &store.Staff{ID: cr.ID, Name: cr.Name, Role: cr.Role, CertSerials: [][]byte{cert.Serial}, CreatedAt: r.now().UTC()}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		if taken, err := tx.StaffIDTaken(cr.ID); err != nil {
			return err
		} else if taken {
			return httpapi.Conflict("staff member %s exists", cr.ID)
		}
		if err := tx.PutStaff(staff); err != nil {
			return err
		}
		return log(audit.Record{Actor: c.id(), Action: "staff.create", Object: "staff/" + cr.ID, Details: map[string]string{"role": cr.Role, "serial": cert.SerialHex()}})
	})
	if err != nil {
		r.revokeOrphan(req, cert)
		return toAPI(err)
	}
	return httpapi.WriteJSON(w, http.StatusCreated, credential(cr.ID, "", cr.Role, cert, iss))
}
