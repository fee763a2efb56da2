package ra

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Directory access requests (SPEC Art. 14): an organisation's certificate
// administrator asks for a directory account for one of its systems; the
// managing organisation approves it through the same levels, Decide and
// audit log as certificate requests (steps.go); execution creates the
// store.DirAccount, which the directory checks at every bind.

// LDAPAccessRequest is what the certificate administrator sends.
type LDAPAccessRequest struct {
	Org string `json:"org"`
	// Account is the account's ID, DN its bind DN.
	Account string `json:"account"`
	DN      string `json:"dn"`
	// Password is chosen by the requester and kept only as a bcrypt hash.
	// It may be left out when ClientCert is given: the system then binds
	// only with its certificate (SASL EXTERNAL over TLS).
	Password string `json:"password,omitempty"`
	// ClientCert is the PEM certificate the system binds with; its public
	// key is what the account keeps (store.ClientCertKey).
	ClientCert    string `json:"client_cert,omitempty"`
	ValidDays     int    `json:"valid_days"`
	AllAttributes bool   `json:"all_attributes,omitempty"`
}

var ldapAccountID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// maxLDAPAccessDays bounds an account's life, as the admin API does.
const maxLDAPAccessDays = 3 * 366

// SubmitLDAPAccess stores a directory access request from c, who must be a
// certificate administrator of the organisation.
func (r *RA) SubmitLDAPAccess(ctx context.Context, c *caller, in LDAPAccessRequest) (*store.RARequest, error) {
	switch {
	case c == nil || c.Admin == nil:
		return nil, httpapi.Forbidden("only an organisation's certificate administrator requests directory access for its systems")
	case c.Admin.OrgID != in.Org:
		return nil, httpapi.Forbidden("you are a certificate administrator of %s, not of %s", c.Admin.OrgID, in.Org)
	case !ldapAccountID.MatchString(in.Account):
		return nil, httpapi.BadRequest("account %q: 1-64 of a-z 0-9 . _ -, starting with a letter or digit", in.Account)
	case in.Password == "" && in.ClientCert == "":
		return nil, httpapi.BadRequest("give a password (16 to 72 characters), a client_cert (PEM), or both")
	case in.Password != "" && (len(in.Password) < 16 || len(in.Password) > 72):
		return nil, httpapi.BadRequest("password must have 16 to 72 characters")
	case in.ValidDays < 1 || in.ValidDays > maxLDAPAccessDays:
		return nil, httpapi.BadRequest("valid_days must be between 1 and %d", maxLDAPAccessDays)
	}
	if _, err := ldap.ParseDN(in.DN); err != nil || !strings.Contains(in.DN, "=") {
		return nil, httpapi.BadRequest("dn %q is not a DN like cn=his,o=hospital", in.DN)
	}
	var certKey, certSubject string
	if in.ClientCert != "" {
		blk, _ := pem.Decode([]byte(in.ClientCert))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return nil, httpapi.BadRequest("client_cert must be a PEM certificate")
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, httpapi.BadRequest("client_cert: %v", err)
		}
		certKey, certSubject = store.ClientCertKey(cert.RawSubjectPublicKeyInfo), cert.Subject.String()
	}
	var hash []byte
	if in.Password != "" {
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(in.Password), bcrypt.DefaultCost); err != nil {
			return nil, err
		}
	}
	now := r.now()
	var rq *store.RARequest
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		org, err := namedOrg(tx, in.Org)
		if err != nil {
			return err
		}
		if _, err := tx.DirAccount(in.Account); err == nil {
			return httpapi.Conflict("directory account %s exists", in.Account)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		n, err := r.st.Next("ra-request")
		if err != nil {
			return err
		}
		rq = &store.RARequest{
			ID: fmt.Sprintf("req-%06d", n), Kind: KindLDAPAccess, OrgID: org.ID, Subject: in.DN,
			SubmittedBy: c.ID(), ReceivedAt: now.UTC(), Open: true, DuplicateKey: "ldap_access\x00" + in.Account,
			LDAPAccess: &store.RALDAPAccess{AccountID: in.Account, DN: in.DN, PasswordHash: string(hash), ValidDays: in.ValidDays, AllAttributes: in.AllAttributes,
				ClientCertKey: certKey, ClientCertSubject: certSubject},
		}
		rq.Steps = stepsFor(r.cfg, KindLDAPAccess, org)
		if err := r.move(rq, rq.Steps[0].Name, c.ID(), "submit", "received"); err != nil {
			return err
		}
		if err := r.put(tx, rq); errors.Is(err, store.ErrExists) {
			id, _ := tx.OpenRARequest(rq.DuplicateKey)
			return httpapi.Conflict("directory account %s is already requested in %s", in.Account, id)
		} else if err != nil {
			return err
		}
		return log(audit.Record{Actor: c.ID(), Action: "ra.submit", Object: "request/" + rq.ID, Details: map[string]string{
			"kind": rq.Kind, "org": org.ID, "account": in.Account, "dn": in.DN, "due_at": dueString(rq.DueAt), "client_cert_key": certKey}})
	})
	if err != nil {
		return nil, err
	}
	r.m.submitted.WithLabelValues(rq.Kind).Inc()
	return rq, nil
}

// grantAccess executes an approved directory access request: it creates
// the account, approved by the last approver, in the transaction that
// records the request granted. A request whose account already exists
// from this request (a crash after the commit) is granted as it is.
func (r *RA) grantAccess(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	var refused string
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateGranting || rq.LDAPAccess == nil {
			return nil
		}
		la := rq.LDAPAccess
		if old, err := tx.DirAccount(la.AccountID); err == nil && old.Request != rq.ID {
			refused = fmt.Sprintf("directory account %s was created otherwise meanwhile", la.AccountID)
			return nil
		}
		approver := ""
		for _, s := range rq.Steps {
			for _, a := range s.Approvals {
				approver = a.Actor
			}
		}
		now := r.now().UTC()
		acct := &store.DirAccount{ID: la.AccountID, DN: la.DN, PasswordHash: la.PasswordHash, Orgs: []string{rq.OrgID},
			AllAttributes: la.AllAttributes, ExpiresAt: now.AddDate(0, 0, la.ValidDays), ApprovedBy: approver, Request: rq.ID, CreatedAt: now,
			ClientCertKey: la.ClientCertKey, ClientCertSubject: la.ClientCertSubject}
		if err := tx.InsertDirAccount(acct); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		if err := r.move(rq, StateGranted, "system", "grant", "directory account "+la.AccountID+" created"); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "ldap_account.create", Object: "ldap-account/" + la.AccountID, Details: map[string]string{
			"request": rq.ID, "dn": la.DN, "orgs": rq.OrgID, "approved_by": approver, "client_cert_key": la.ClientCertKey}})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("granting directory access for request %s: %w", rq.ID, err))
	}
	if refused != "" {
		return r.fail(ctx, rq, refused)
	}
	return rq, nil
}

func (r *RA) submitLDAPAccess(w http.ResponseWriter, req *http.Request) error {
	var in LDAPAccessRequest
	if err := httpapi.DecodeJSON(req, &in); err != nil {
		return err
	}
	rq, err := r.SubmitLDAPAccess(req.Context(), callerFrom(req.Context()), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, r.view(rq))
}
