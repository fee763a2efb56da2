package admin

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"net/http"
	"slices"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// createStaff enrols a staff member: it issues their API credential from
// the CSR they sent and records them with their role.
func (a *API) createStaff(w http.ResponseWriter, req *http.Request) error {
	ctx := req.Context()
	if a.opts.Credentials == nil {
		return httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "staff enrolment is not configured")
	}
	var cr httpapi.CredentialRequest
	if err := httpapi.DecodeJSON(req, &cr); err != nil {
		return err
	}
	if !slices.Contains(httpapi.StaffRoles, cr.Role) {
		return httpapi.BadRequest("role %q is not one of %v", cr.Role, httpapi.StaffRoles)
	}
	if err := a.opts.Store.View(ctx, func(tx *store.Tx) error { return staffIDFree(tx, cr.ID) }); err != nil {
		return err
	}
	subj := pkix.Name{CommonName: cr.Name, OrganizationalUnit: []string{cr.Role}}
	if iss := a.opts.Credentials.Issuers(); len(iss) > 0 {
		subj.Organization = iss[0].Cert.Subject.Organization
	}
	cert, err := httpapi.IssueCredential(ctx, a.opts.Credentials, &cr, subj)
	if err != nil {
		return err
	}
	p, _ := httpapi.PrincipalFrom(ctx)
	staff := &store.Staff{ID: cr.ID, Name: cr.Name, Role: cr.Role, CertSerials: [][]byte{cert.Serial}, CreatedAt: a.opts.Now().UTC()}
	var entry *store.AuditEntry
	err = a.opts.Store.Update(ctx, func(tx *store.Tx) error {
		if err := staffIDFree(tx, cr.ID); err != nil {
			return err
		}
		if err := tx.PutStaff(staff); err != nil {
			return err
		}
		var err error
		entry, err = a.opts.Audit.AppendTx(tx, audit.Record{Actor: p.ID(), Action: "staff.create", Object: "staff/" + cr.ID,
			Details: map[string]string{"role": cr.Role, "serial": cert.SerialHex()}})
		return err
	})
	if err != nil {
		a.revokeOrphan(ctx, cert)
		return err
	}
	a.opts.Audit.Logged(entry)
	return httpapi.WriteJSON(w, http.StatusCreated, httpapi.NewCredential(a.opts.Credentials, cr.ID, "", cr.Role, cert))
}

func staffIDFree(tx *store.Tx, id string) error {
	if taken, err := tx.StaffIDTaken(id); err != nil {
		return err
	} else if taken {
		return httpapi.Conflict("staff member %s exists", id)
	}
	return nil
}

// revokeOrphan revokes a credential whose holder record could not be stored,
// so no valid certificate authenticates nobody.
func (a *API) revokeOrphan(ctx context.Context, cert *store.Cert) {
	if _, err := a.opts.Credentials.Revoke(ctx, cert.Serial, ca.ReasonCessationOfOperation); err != nil {
		a.log.Error("revoking orphan credential", "serial", cert.SerialHex(), "err", err)
	}
}

// verifyAudit checks the audit log's hash chain: 200 with the report when
// it holds, 409 with the report when it is broken.
func (a *API) verifyAudit(w http.ResponseWriter, req *http.Request) error {
	if a.opts.Verifier == nil {
		return httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "audit verification is not configured")
	}
	rep, err := a.opts.Verifier.Verify(req.Context())
	if err != nil && !errors.Is(err, audit.ErrBroken) {
		return err
	}
	status := http.StatusOK
	if err != nil {
		status = http.StatusConflict
	}
	return httpapi.WriteJSON(w, status, rep)
}
