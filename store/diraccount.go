package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Directory account key layout:
//
//	ldapacct\0<id>    directory account
var pDirAccount = []byte("ldapacct\x00")

// KindDirAccount is the Change of a written directory account; its key is the ID.
const KindDirAccount Kind = "ldap-account"

// DirAccount is a directory account of a health information system (SPEC
// Art. 14): it binds with a password and reads the people of the
// organisations its managing organisation approved. It authenticates with
// a password (simple bind), a client certificate (SASL EXTERNAL over TLS),
// or either. The service accounts of ldap.accounts are configuration, not
// records.
type DirAccount struct {
	ID string `json:"id"`
	// DN is the bind DN as given; the directory compares it normalized.
	DN string `json:"dn"`
	// PasswordHash is a bcrypt hash; empty for an account that binds only
	// with its client certificate.
	PasswordHash string `json:"password_hash"`
	// ClientCertKey is ClientCertKey of the client certificate's public
	// key (SubjectPublicKeyInfo) that binds with SASL EXTERNAL; empty for
	// none. The key, not the certificate: a certificate renewed on the
	// same key keeps binding, and revocation and expiry are checked on
	// the certificate presented. ClientCertSubject is for people reading
	// the record.
	ClientCertKey     string `json:"client_cert_key,omitempty"`
	ClientCertSubject string `json:"client_cert_subject,omitempty"`
	// Orgs are the IDs of the RA organisations whose entries it reads.
	Orgs []string `json:"orgs"`
	// AllAttributes returns every published attribute, not only
	// ldap.public_attributes.
	AllAttributes bool `json:"all_attributes,omitempty"`
	// SizeLimit and TimeLimitSeconds tighten the directory's limits for it;
	// zero keeps them.
	SizeLimit        int `json:"size_limit,omitempty"`
	TimeLimitSeconds int `json:"time_limit_seconds,omitempty"`
	// ExpiresAt ends it; a bind after it fails.
	ExpiresAt time.Time `json:"expires_at"`
	// ApprovedBy is who approved it ("staff:<id>", "admin:<id>"), and
	// Request the RA request it came from, if any.
	ApprovedBy string    `json:"approved_by"`
	Request    string    `json:"request,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	Revoked    bool      `json:"revoked,omitempty"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	RevokedBy  string    `json:"revoked_by,omitempty"`
}

// RALDAPAccess is a request for a directory account for an organisation's
// system, made by its certificate administrator and approved in the RA;
// its execution creates the DirAccount. The password is kept only as its
// hash: the requester chose it and knows it.
type RALDAPAccess struct {
	AccountID     string `json:"account_id"`
	DN            string `json:"dn"`
	PasswordHash  string `json:"password_hash"`
	ValidDays     int    `json:"valid_days"`
	AllAttributes bool   `json:"all_attributes,omitempty"`
	// ClientCertKey and ClientCertSubject as in DirAccount.
	ClientCertKey     string `json:"client_cert_key,omitempty"`
	ClientCertSubject string `json:"client_cert_subject,omitempty"`
}

// ClientCertKey is how a directory account names its client certificate:
// the hex SHA-256 of the certificate's SubjectPublicKeyInfo (the pin of
// RFC 7469, in hex).
func ClientCertKey(rawSPKI []byte) string {
	h := sha256.Sum256(rawSPKI)
	return hex.EncodeToString(h[:])
}

// Usable says whether the account may bind at now.
func (a *DirAccount) Usable(now time.Time) bool {
	return !a.Revoked && now.Before(a.ExpiresAt)
}

// InsertDirAccount writes a new directory account; ErrExists if the ID is taken.
func (tx *Tx) InsertDirAccount(a *DirAccount) error {
	if err := tx.insertRA(pDirAccount, a.ID, a, "directory account"); err != nil {
		return err
	}
	tx.changed(KindDirAccount, a.ID)
	return nil
}

// PutDirAccount overwrites a directory account (a revocation).
func (tx *Tx) PutDirAccount(a *DirAccount) error {
	b, err := encode(a)
	if err != nil {
		return fmt.Errorf("encoding directory account %s: %w", a.ID, err)
	}
	if err := tx.set(cat(pDirAccount, []byte(a.ID)), b); err != nil {
		return fmt.Errorf("writing directory account %s: %w", a.ID, err)
	}
	tx.changed(KindDirAccount, a.ID)
	return nil
}

// DirAccount reads a directory account.
func (tx *Tx) DirAccount(id string) (*DirAccount, error) {
	var a DirAccount
	return &a, tx.readRA(pDirAccount, id, &a, "directory account")
}

// EachDirAccount streams every directory account in ID order.
func (tx *Tx) EachDirAccount(fn func(*DirAccount) error) error {
	return tx.scan(pDirAccount, nil, true, func(k, v []byte) error {
		var a DirAccount
		if err := decode(v, &a); err != nil {
			return fmt.Errorf("decoding directory account %q: %w", k[len(pDirAccount):], err)
		}
		return fn(&a)
	})
}
