package admin

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Directory accounts (SPEC Art. 14): health information systems that bind
// to the directory and read the people of the organisations approved for
// them. CA operators manage them here; the directory checks them at every
// bind (store.DirAccount) and a bound connection at its next operation, so
// a revocation holds at once. An account binds with a password, with a
// client certificate (SASL EXTERNAL over TLS), or either.

// LDAPAccountRequest creates a directory account.
type LDAPAccountRequest struct {
	ID string `json:"id"`
	DN string `json:"dn"`
	// Orgs are RA organisation IDs whose people the account reads.
	Orgs []string `json:"orgs"`
	// ExpiresAt ends the account; ValidDays is the alternative, from now.
	ExpiresAt        time.Time `json:"expires_at,omitzero"`
	ValidDays        int       `json:"valid_days,omitempty"`
	AllAttributes    bool      `json:"all_attributes,omitempty"`
	SizeLimit        int       `json:"size_limit,omitempty"`
	TimeLimitSeconds int       `json:"time_limit_seconds,omitempty"`
	// Password, if empty, is generated and returned once, unless the
	// account has a client certificate: then it binds only with that.
	Password string `json:"password,omitempty"`
	ClientCertInput
}

// ClientCertInput names the client certificate an account binds with by
// SASL EXTERNAL: the certificate (PEM), or the key it pins
// (store.ClientCertKey: hex SHA-256 of its SubjectPublicKeyInfo).
type ClientCertInput struct {
	ClientCert    string `json:"client_cert,omitempty"`
	ClientCertKey string `json:"client_cert_key,omitempty"`
}

// key checks the input and returns the key and the certificate's subject
// ("" when only the key was given); empty when neither is given.
func (in ClientCertInput) key() (key, subject string, err error) {
	if in.ClientCert != "" {
		blk, _ := pem.Decode([]byte(in.ClientCert))
		if blk == nil || blk.Type != "CERTIFICATE" {
			return "", "", httpapi.BadRequest("client_cert must be a PEM certificate")
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return "", "", httpapi.BadRequest("client_cert: %v", err)
		}
		key, subject = store.ClientCertKey(c.RawSubjectPublicKeyInfo), c.Subject.String()
	}
	if in.ClientCertKey != "" {
		k := strings.ToLower(in.ClientCertKey)
		if b, err := hex.DecodeString(k); err != nil || len(b) != 32 {
			return "", "", httpapi.BadRequest("client_cert_key must be 64 hex digits: the SHA-256 of the certificate's SubjectPublicKeyInfo")
		}
		if key != "" && key != k {
			return "", "", httpapi.BadRequest("client_cert_key is not the key of client_cert")
		}
		key = k
	}
	return key, subject, nil
}

// LDAPAccountView is a directory account as the API shows it (no hash).
type LDAPAccountView struct {
	ID               string    `json:"id"`
	DN               string    `json:"dn"`
	Orgs             []string  `json:"orgs"`
	AllAttributes    bool      `json:"all_attributes,omitempty"`
	SizeLimit        int       `json:"size_limit,omitempty"`
	TimeLimitSeconds int       `json:"time_limit_seconds,omitempty"`
	ExpiresAt        time.Time `json:"expires_at"`
	ApprovedBy       string    `json:"approved_by"`
	Request          string    `json:"request,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	Status           string    `json:"status"` // active, expired, revoked
	RevokedAt        time.Time `json:"revoked_at,omitzero"`
	RevokedBy        string    `json:"revoked_by,omitempty"`
	// Password is returned once, by the creation that generated it.
	Password string `json:"password,omitempty"`
	// Auth is how it binds: "password", "client_cert" or both.
	Auth              []string `json:"auth"`
	ClientCertKey     string   `json:"client_cert_key,omitempty"`
	ClientCertSubject string   `json:"client_cert_subject,omitempty"`
}

func viewLDAPAccount(a *store.DirAccount, now time.Time) LDAPAccountView {
	st := "active"
	switch {
	case a.Revoked:
		st = "revoked"
	case !now.Before(a.ExpiresAt):
		st = "expired"
	}
	auth := []string{}
	if a.PasswordHash != "" {
		auth = append(auth, "password")
	}
	if a.ClientCertKey != "" {
		auth = append(auth, "client_cert")
	}
	return LDAPAccountView{ID: a.ID, DN: a.DN, Orgs: a.Orgs, AllAttributes: a.AllAttributes, SizeLimit: a.SizeLimit,
		TimeLimitSeconds: a.TimeLimitSeconds, ExpiresAt: a.ExpiresAt, ApprovedBy: a.ApprovedBy, Request: a.Request,
		CreatedAt: a.CreatedAt, Status: st, RevokedAt: a.RevokedAt, RevokedBy: a.RevokedBy,
		Auth: auth, ClientCertKey: a.ClientCertKey, ClientCertSubject: a.ClientCertSubject}
}

var accountID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// maxAccountDays bounds an account's life: access is re-approved at least
// every few years.
const maxAccountDays = 3 * 366

func (a *API) listLDAPAccounts(w http.ResponseWriter, req *http.Request) error {
	now := a.opts.Now()
	out := []LDAPAccountView{}
	if err := a.opts.Store.View(req.Context(), func(tx *store.Tx) error {
		return tx.EachDirAccount(func(d *store.DirAccount) error {
			out = append(out, viewLDAPAccount(d, now))
			return nil
		})
	}); err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusOK, map[string]any{"accounts": out})
}

func (a *API) createLDAPAccount(w http.ResponseWriter, req *http.Request) error {
	var r LDAPAccountRequest
	if err := httpapi.DecodeJSON(req, &r); err != nil {
		return err
	}
	p, _ := httpapi.PrincipalFrom(req.Context())
	acct, password, err := NewLDAPAccount(r, a.opts.Now())
	if err != nil {
		return err
	}
	acct.ApprovedBy = p.ID()
	var entry *store.AuditEntry
	if err := a.opts.Store.Update(req.Context(), func(tx *store.Tx) error {
		if err := CheckLDAPAccount(tx, acct); err != nil {
			return err
		}
		if err := tx.InsertDirAccount(acct); err != nil {
			if errors.Is(err, store.ErrExists) {
				return httpapi.Conflict("directory account %s exists", acct.ID)
			}
			return err
		}
		var err error
		entry, err = a.opts.Audit.AppendTx(tx, audit.Record{Actor: p.ID(), Action: "ldap_account.create", Object: "ldap-account/" + acct.ID,
			Details: map[string]string{"dn": acct.DN, "orgs": strings.Join(acct.Orgs, ","), "expires_at": acct.ExpiresAt.Format(time.RFC3339),
				"client_cert_key": acct.ClientCertKey}})
		return err
	}); err != nil {
		return err
	}
	a.opts.Audit.Logged(entry)
	a.log.Info("directory account created", "id", acct.ID, "dn", acct.DN, "orgs", acct.Orgs, "by", p.ID())
	v := viewLDAPAccount(acct, a.opts.Now())
	v.Password = password
	return httpapi.WriteJSON(w, http.StatusCreated, v)
}

func (a *API) revokeLDAPAccount(w http.ResponseWriter, req *http.Request) error {
	id := req.PathValue("id")
	p, _ := httpapi.PrincipalFrom(req.Context())
	var entry *store.AuditEntry
	var acct *store.DirAccount
	if err := a.opts.Store.Update(req.Context(), func(tx *store.Tx) error {
		var err error
		if acct, err = tx.DirAccount(id); errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("no directory account %s", id)
		} else if err != nil {
			return err
		}
		if acct.Revoked {
			return httpapi.Conflict("directory account %s is already revoked", id)
		}
		acct.Revoked, acct.RevokedAt, acct.RevokedBy = true, a.opts.Now().UTC(), p.ID()
		if err := tx.PutDirAccount(acct); err != nil {
			return err
		}
		entry, err = a.opts.Audit.AppendTx(tx, audit.Record{Actor: p.ID(), Action: "ldap_account.revoke", Object: "ldap-account/" + id,
			Details: map[string]string{"dn": acct.DN}})
		return err
	}); err != nil {
		return err
	}
	a.opts.Audit.Logged(entry)
	a.log.Info("directory account revoked", "id", id, "by", p.ID())
	return httpapi.WriteJSON(w, http.StatusOK, viewLDAPAccount(acct, a.opts.Now()))
}

// setLDAPAccountCert sets the client certificate an account binds with by
// SASL EXTERNAL (a system's new certificate): a connection bound with the
// old one loses the account at its next operation.
func (a *API) setLDAPAccountCert(w http.ResponseWriter, req *http.Request) error {
	id := req.PathValue("id")
	var in ClientCertInput
	if err := httpapi.DecodeJSON(req, &in); err != nil {
		return err
	}
	key, subject, err := in.key()
	if err != nil {
		return err
	}
	if key == "" {
		return httpapi.BadRequest("give client_cert (PEM) or client_cert_key")
	}
	p, _ := httpapi.PrincipalFrom(req.Context())
	var entry *store.AuditEntry
	var acct *store.DirAccount
	if err := a.opts.Store.Update(req.Context(), func(tx *store.Tx) error {
		var err error
		if acct, err = tx.DirAccount(id); errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("no directory account %s", id)
		} else if err != nil {
			return err
		}
		if acct.Revoked {
			return httpapi.Conflict("directory account %s is revoked", id)
		}
		old := acct.ClientCertKey
		acct.ClientCertKey, acct.ClientCertSubject = key, subject
		if err := CheckLDAPAccount(tx, acct); err != nil {
			return err
		}
		if err := tx.PutDirAccount(acct); err != nil {
			return err
		}
		entry, err = a.opts.Audit.AppendTx(tx, audit.Record{Actor: p.ID(), Action: "ldap_account.set_cert", Object: "ldap-account/" + id,
			Details: map[string]string{"client_cert_key": key, "previous": old, "subject": subject}})
		return err
	}); err != nil {
		return err
	}
	a.opts.Audit.Logged(entry)
	a.log.Info("directory account client certificate set", "id", id, "key", key, "by", p.ID())
	return httpapi.WriteJSON(w, http.StatusOK, viewLDAPAccount(acct, a.opts.Now()))
}

// NewLDAPAccount checks a request and makes the account record, with a
// generated password when the request has none; it does not store it.
// The RA's execution of an approved access request makes its accounts
// with the same rules through store records, so both paths agree.
func NewLDAPAccount(r LDAPAccountRequest, now time.Time) (*store.DirAccount, string, error) {
	if !accountID.MatchString(r.ID) {
		return nil, "", httpapi.BadRequest("id %q: 1-64 of a-z 0-9 . _ -, starting with a letter or digit", r.ID)
	}
	if _, err := ldap.ParseDN(r.DN); err != nil || !strings.Contains(r.DN, "=") {
		return nil, "", httpapi.BadRequest("dn %q is not a DN like cn=his,o=hospital", r.DN)
	}
	if len(r.Orgs) == 0 {
		return nil, "", httpapi.BadRequest("orgs: name at least one organisation whose entries the account reads")
	}
	exp := r.ExpiresAt
	switch {
	case !exp.IsZero() && r.ValidDays != 0:
		return nil, "", httpapi.BadRequest("give expires_at or valid_days, not both")
	case exp.IsZero() && (r.ValidDays < 1 || r.ValidDays > maxAccountDays):
		return nil, "", httpapi.BadRequest("valid_days must be between 1 and %d (or give expires_at)", maxAccountDays)
	case exp.IsZero():
		exp = now.AddDate(0, 0, r.ValidDays)
	case !exp.After(now) || exp.After(now.AddDate(0, 0, maxAccountDays)):
		return nil, "", httpapi.BadRequest("expires_at must be in the next %d days", maxAccountDays)
	}
	if r.SizeLimit < 0 || r.TimeLimitSeconds < 0 {
		return nil, "", httpapi.BadRequest("size_limit and time_limit_seconds must not be negative")
	}
	certKey, certSubject, err := r.key()
	if err != nil {
		return nil, "", err
	}
	password := r.Password
	switch {
	case password == "" && certKey != "":
		// binds with its certificate only
	case password == "":
		password = rand.Text()
	case len(password) < 16 || len(password) > 72:
		return nil, "", httpapi.BadRequest("password must have 16 to 72 characters (or be left out to have one generated)")
	}
	hash, generated := []byte(nil), ""
	if password != "" {
		if hash, err = bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost); err != nil {
			return nil, "", err
		}
		if r.Password == "" {
			generated = password
		}
	}
	return &store.DirAccount{ID: r.ID, DN: r.DN, PasswordHash: string(hash), Orgs: r.Orgs, AllAttributes: r.AllAttributes,
		SizeLimit: r.SizeLimit, TimeLimitSeconds: r.TimeLimitSeconds, ExpiresAt: exp.UTC(), CreatedAt: now.UTC(),
		ClientCertKey: certKey, ClientCertSubject: certSubject}, generated, nil
}

// CheckLDAPAccount checks an account against the store: its organisations
// exist and no other live account has its DN or its client certificate.
func CheckLDAPAccount(tx *store.Tx, acct *store.DirAccount) error {
	for _, o := range acct.Orgs {
		if _, err := tx.Org(o); errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("orgs: no organisation %s", o)
		} else if err != nil {
			return err
		}
	}
	want, _ := ldap.ParseDN(acct.DN)
	return tx.EachDirAccount(func(d *store.DirAccount) error {
		if d.Revoked || d.ID == acct.ID {
			return nil
		}
		if dn, err := ldap.ParseDN(d.DN); err == nil && dn.EqualFold(want) {
			return httpapi.Conflict("directory account %s already binds as %s", d.ID, d.DN)
		}
		if acct.ClientCertKey != "" && d.ClientCertKey == acct.ClientCertKey {
			return httpapi.Conflict("directory account %s already binds with this client certificate's key", d.ID)
		}
		return nil
	})
}
