package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// RA key layout:
//
//	ra\0org\0<id>                          organisation
//	ra\0adm\0<id>                          certificate administrator
//	ra\0app\0<id>                          signed application
//	ra\0req\0<id>                          request
//	i\0raadmcert\0<serial>                 administrator by client certificate serial (value: id)
//	i\0raappsum\0<sha256>                  application by digest of its signed bytes (value: id)
//	i\0raopen\0<duplicate key>             open request holding that key (value: id)
//	i\0orgcert\0<org>\0<serial>            certificates issued to an organisation
//	i\0certorg\0<serial>                   organisation of a certificate (value: org)
//	i\0rasuper\0<serial>                   certificate that renewed it (value: serial)
var (
	pOrg        = []byte("ra\x00org\x00")
	pCertAdmin  = []byte("ra\x00adm\x00")
	pRAApp      = []byte("ra\x00app\x00")
	pRAReq      = []byte("ra\x00req\x00")
	pIdxAdmCert = []byte("i\x00raadmcert\x00")
	pIdxAppSum  = []byte("i\x00raappsum\x00")
	pIdxRAOpen  = []byte("i\x00raopen\x00")
	pIdxOrgCert = []byte("i\x00orgcert\x00")
	pIdxCertOrg = []byte("i\x00certorg\x00")
	pIdxRASuper = []byte("i\x00rasuper\x00")
)

// KindRARequest is the Change of a written RA request; its key is the ID.
const KindRARequest Kind = "ra-request"

// Org is a subscriber organisation (unit). In multi-level mode its
// applications need the approval of its superior organisation before the CA
// reviews them (SPEC Art. 9).
type Org struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	ParentID   string    `json:"parent,omitempty"`
	MultiLevel bool      `json:"multi_level,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// CertAdmin is an organisation's certificate administrator, authenticated by
// a certificate of the cert-admin profile (SPEC Art. 8).
type CertAdmin struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org"`
	Name        string    `json:"name"`
	Email       string    `json:"email,omitempty"`
	CertSerials [][]byte  `json:"cert_serials"`
	CreatedAt   time.Time `json:"created_at"`
}

// RAApplication is one submitted document: the signed bytes are kept as
// received for non-repudiation, with the requests made from it.
type RAApplication struct {
	ID    string `json:"id"`
	OrgID string `json:"org"`
	Kind  string `json:"kind"`
	// SubmittedBy is "admin:<id>" or "staff:<id>".
	SubmittedBy string `json:"submitted_by"`
	// Signed is the CMS SignedData (empty for a walk-in application entered by
	// RA staff), SignerSerial the certificate that signed it.
	Signed       []byte    `json:"signed,omitempty"`
	SignerSerial []byte    `json:"signer_serial,omitempty"`
	Digest       []byte    `json:"digest,omitempty"`
	Content      []byte    `json:"content"`
	Requests     []string  `json:"requests"`
	ReceivedAt   time.Time `json:"received_at"`
}

// RAPerson is the subject of a request.
type RAPerson struct {
	Name         string `json:"name"`
	Email        string `json:"email,omitempty"`
	UID          string `json:"uid,omitempty"`
	SerialNumber string `json:"serial_number,omitempty"`
	OrgUnit      string `json:"org_unit,omitempty"`
}

// RALeader is the approval of the organisation's leader that an
// application carries (SPEC Art. 8.2). The scanned document itself stays in
// the application's content; the request keeps its digest.
type RALeader struct {
	Name           string `json:"name"`
	Date           string `json:"date"`
	DocumentSHA256 string `json:"document_sha256,omitempty"`
	DocumentType   string `json:"document_type,omitempty"`
	DocumentSize   int    `json:"document_size,omitempty"`
}

// RAAction is one act on a request: an approval, a rejection, a transition.
type RAAction struct {
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	State   string    `json:"state"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// RAStep is one approval step and the approvals it collected.
type RAStep struct {
	Name      string     `json:"name"`
	Need      int        `json:"need"`
	Approvals []RAAction `json:"approvals,omitempty"`
}

// RARequest is one certificate business request (issue, renew, revoke) and
// its state machine, owned by package ra.
type RARequest struct {
	ID            string   `json:"id"`
	Kind          string   `json:"kind"`
	OrgID         string   `json:"org"`
	ApplicationID string   `json:"application,omitempty"`
	State         string   `json:"state"`
	Profile       string   `json:"profile,omitempty"`
	Subject       string   `json:"subject,omitempty"`
	Person        RAPerson `json:"person"`
	CSR           []byte   `json:"csr,omitempty"`
	// NotAfter is the absolute end of validity that requests stored before
	// ValidDays carried; it is read only to migrate them.
	NotAfter time.Time `json:"not_after,omitzero"`
	// ValidDays is the validity the application asked for, counted from
	// issuance (approval may come days after submission); 0 is the
	// profile's validity.
	ValidDays int `json:"valid_days,omitempty"`
	// TargetSerial is the certificate renewed or revoked.
	TargetSerial []byte `json:"target_serial,omitempty"`
	Cause        string `json:"cause,omitempty"`
	Reason       int    `json:"reason,omitempty"`
	// Serial is the certificate issued for this request.
	Serial []byte `json:"serial,omitempty"`
	// SigningSerial is the serial the request is about to sign, written in
	// its own transaction before the Authority is called: execution after a
	// crash finds the certificate by it instead of signing a second one.
	SigningSerial []byte `json:"signing_serial,omitempty"`
	// Attempts counts failed executions; at ra.max_attempts the request
	// fails. LastError is the last failure's message.
	Attempts  int    `json:"attempts,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// OldRevoked says a renewal's superseded certificate was revoked after
	// delivery (ra.supersede_policy revoke).
	OldRevoked   bool       `json:"old_revoked,omitempty"`
	SubscriberID string     `json:"subscriber,omitempty"`
	Steps        []RAStep   `json:"steps,omitempty"`
	Step         int        `json:"step"`
	History      []RAAction `json:"history"`
	SubmittedBy  string     `json:"submitted_by"`
	ReceivedAt   time.Time  `json:"received_at"`
	// DueAt is the CA's deadline, counted from CAReceivedAt, when the
	// request reached the CA (after a superior's review in multi-level
	// mode); zero while the superior reviews.
	DueAt        time.Time `json:"due_at,omitzero"`
	CAReceivedAt time.Time `json:"ca_received_at,omitzero"`
	DoneAt       time.Time `json:"done_at,omitzero"`
	// DuplicateKey identifies what may be pending only once (subject and
	// profile, or the certificate to revoke); Open says the request still
	// holds it.
	DuplicateKey string `json:"duplicate_key,omitempty"`
	Open         bool   `json:"open"`

	// Leader is the leader's approval the application carried.
	Leader *RALeader `json:"leader,omitempty"`
	// LDAPAccess is what a directory access request asks for (kind ldap_access).
	LDAPAccess *RALDAPAccess `json:"ldap_access,omitempty"`
	// Escrow is what an encryption certificate or key recovery request
	// asks for (kinds encryption_cert, key_recovery).
	Escrow *RAEscrow `json:"escrow,omitempty"`
	// Token is what a token unlock or replacement request is about.
	Token *RAToken `json:"token,omitempty"`
}

// ---- organisations and administrators ----

// ErrExists is returned when creating a record whose ID is taken.
var ErrExists = errors.New("already exists")

// InsertOrg writes a new organisation.
func (tx *Tx) InsertOrg(o *Org) error {
	return tx.insertRA(pOrg, o.ID, o, "organisation")
}

// Org reads an organisation.
func (tx *Tx) Org(id string) (*Org, error) {
	var o Org
	return &o, tx.readRA(pOrg, id, &o, "organisation")
}

// PutOrg overwrites an existing organisation (a rename); ErrNotFound if
// there is none. Records that name it hold its ID, which does not change.
func (tx *Tx) PutOrg(o *Org) error {
	if _, err := tx.Org(o.ID); err != nil {
		return err
	}
	b, err := encode(o)
	if err != nil {
		return fmt.Errorf("encoding organisation %s: %w", o.ID, err)
	}
	if err := tx.set(cat(pOrg, []byte(o.ID)), b); err != nil {
		return fmt.Errorf("writing organisation %s: %w", o.ID, err)
	}
	return nil
}

// EachOrg streams every organisation in ID order.
func (tx *Tx) EachOrg(fn func(*Org) error) error {
	return tx.scan(pOrg, nil, true, func(k, v []byte) error {
		var o Org
		if err := decode(v, &o); err != nil {
			return fmt.Errorf("decoding organisation %q: %w", k[len(pOrg):], err)
		}
		return fn(&o)
	})
}

// InsertCertAdmin writes a new certificate administrator and indexes their
// certificates.
func (tx *Tx) InsertCertAdmin(a *CertAdmin) error {
	if err := tx.insertRA(pCertAdmin, a.ID, a, "certificate administrator"); err != nil {
		return err
	}
	for _, s := range a.CertSerials {
		if err := tx.set(cat(pIdxAdmCert, s), []byte(a.ID)); err != nil {
			return fmt.Errorf("writing administrator index %s: %w", a.ID, err)
		}
	}
	return nil
}

// PutCertAdmin rewrites an existing certificate administrator and indexes
// every one of their certificates (a renewed credential adds one).
func (tx *Tx) PutCertAdmin(a *CertAdmin) error {
	if ok, err := tx.exists(cat(pCertAdmin, []byte(a.ID))); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("certificate administrator %s: %w", a.ID, ErrNotFound)
	}
	b, err := encode(a)
	if err != nil {
		return fmt.Errorf("encoding certificate administrator %s: %w", a.ID, err)
	}
	if err := tx.set(cat(pCertAdmin, []byte(a.ID)), b); err != nil {
		return fmt.Errorf("writing certificate administrator %s: %w", a.ID, err)
	}
	for _, s := range a.CertSerials {
		if err := tx.set(cat(pIdxAdmCert, s), []byte(a.ID)); err != nil {
			return fmt.Errorf("writing administrator index %s: %w", a.ID, err)
		}
	}
	return nil
}

// CertAdmin reads a certificate administrator.
func (tx *Tx) CertAdmin(id string) (*CertAdmin, error) {
	var a CertAdmin
	return &a, tx.readRA(pCertAdmin, id, &a, "certificate administrator")
}

// CertAdminByCert finds the administrator a certificate serial belongs to.
func (tx *Tx) CertAdminByCert(serial []byte) (*CertAdmin, error) {
	id, err := tx.get(cat(pIdxAdmCert, serial))
	if err != nil {
		return nil, fmt.Errorf("finding administrator for certificate %x: %w", serial, err)
	}
	return tx.CertAdmin(string(id))
}

// CertAdminsOf streams the administrators of an organisation.
func (tx *Tx) CertAdminsOf(org string, fn func(*CertAdmin) error) error {
	return tx.scan(pCertAdmin, nil, true, func(k, v []byte) error {
		var a CertAdmin
		if err := decode(v, &a); err != nil {
			return fmt.Errorf("decoding administrator %q: %w", k[len(pCertAdmin):], err)
		}
		if a.OrgID != org {
			return nil
		}
		return fn(&a)
	})
}

// ---- applications and requests ----

// InsertRAApplication writes a new application. A document whose digest was
// seen before is refused with ErrExists (a replayed submission).
func (tx *Tx) InsertRAApplication(a *RAApplication) error {
	if len(a.Digest) > 0 {
		k := cat(pIdxAppSum, a.Digest)
		if id, err := tx.get(k); err == nil {
			return fmt.Errorf("the same signed document is application %s: %w", id, ErrExists)
		}
		if err := tx.set(k, []byte(a.ID)); err != nil {
			return err
		}
	}
	return tx.insertRA(pRAApp, a.ID, a, "application")
}

// RAApplication reads an application.
func (tx *Tx) RAApplication(id string) (*RAApplication, error) {
	var a RAApplication
	return &a, tx.readRA(pRAApp, id, &a, "application")
}

// OpenRARequest returns the ID of the open request holding a duplicate key,
// or ErrNotFound.
func (tx *Tx) OpenRARequest(dupKey string) (string, error) {
	id, err := tx.get(cat(pIdxRAOpen, fold(dupKey)))
	if err != nil {
		return "", err
	}
	return string(id), nil
}

// PutRARequest writes a request and keeps the open-duplicate index in step:
// the key is held while r.Open, and refused with ErrExists if another open
// request holds it.
func (tx *Tx) PutRARequest(r *RARequest) error {
	if r.ID == "" {
		return errors.New("request without ID")
	}
	if old, err := tx.RARequest(r.ID); err == nil && old.Open && old.DuplicateKey != "" &&
		(!r.Open || !strings.EqualFold(old.DuplicateKey, r.DuplicateKey)) {
		if err := tx.txn.Delete(cat(pIdxRAOpen, fold(old.DuplicateKey))); err != nil {
			return err
		}
	}
	if r.Open && r.DuplicateKey != "" {
		k := cat(pIdxRAOpen, fold(r.DuplicateKey))
		if id, err := tx.get(k); err == nil && string(id) != r.ID {
			return fmt.Errorf("request %s is already open for %s: %w", id, r.DuplicateKey, ErrExists)
		}
		if err := tx.set(k, []byte(r.ID)); err != nil {
			return err
		}
	}
	v, err := encode(r)
	if err != nil {
		return fmt.Errorf("encoding request %s: %w", r.ID, err)
	}
	if err := tx.set(cat(pRAReq, []byte(r.ID)), v); err != nil {
		return fmt.Errorf("writing request %s: %w", r.ID, err)
	}
	tx.changed(KindRARequest, r.ID)
	return nil
}

// RARequest reads a request.
func (tx *Tx) RARequest(id string) (*RARequest, error) {
	var r RARequest
	return &r, tx.readRA(pRAReq, id, &r, "request")
}

// EachRARequest streams every request in ID order.
func (tx *Tx) EachRARequest(fn func(*RARequest) error) error {
	return tx.scan(pRAReq, nil, true, func(k, v []byte) error {
		var r RARequest
		if err := decode(v, &r); err != nil {
			return fmt.Errorf("decoding request %q: %w", k[len(pRAReq):], err)
		}
		return fn(&r)
	})
}

// ---- certificates of organisations ----

// PutOrgCert records that a certificate was issued to an organisation.
func (tx *Tx) PutOrgCert(org string, serial []byte) error {
	if err := tx.set(cat(pIdxOrgCert, []byte(org), serial), nil); err != nil {
		return fmt.Errorf("writing organisation index for %x: %w", serial, err)
	}
	return tx.set(cat(pIdxCertOrg, serial), []byte(org))
}

// CertOrg returns the organisation a certificate was issued to, or ErrNotFound.
func (tx *Tx) CertOrg(serial []byte) (string, error) {
	b, err := tx.get(cat(pIdxCertOrg, serial))
	return string(b), err
}

// PutSupersededBy records that certificate old was renewed by certificate
// renewed: old is superseded, whether or not it is revoked.
func (tx *Tx) PutSupersededBy(old, renewed []byte) error {
	if err := tx.set(cat(pIdxRASuper, old), renewed); err != nil {
		return fmt.Errorf("recording that %x supersedes %x: %w", renewed, old, err)
	}
	return nil
}

// SupersededBy returns the certificate that renewed serial, or ErrNotFound.
func (tx *Tx) SupersededBy(serial []byte) ([]byte, error) {
	return tx.get(cat(pIdxRASuper, serial))
}

// CertsByOrg streams the certificates of an organisation in serial order.
func (tx *Tx) CertsByOrg(org string, fn func(*Cert) error) error {
	return tx.certsUnder(cat(pIdxOrgCert, []byte(org), nil), fn)
}

func (tx *Tx) insertRA(prefix []byte, id string, v any, what string) error {
	if id == "" {
		return fmt.Errorf("%s without ID", what)
	}
	k := cat(prefix, []byte(id))
	if ok, err := tx.exists(k); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%s %s: %w", what, id, ErrExists)
	}
	b, err := encode(v)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", what, id, err)
	}
	if err := tx.set(k, b); err != nil {
		return fmt.Errorf("writing %s %s: %w", what, id, err)
	}
	return nil
}

func (tx *Tx) readRA(prefix []byte, id string, v any, what string) error {
	b, err := tx.get(cat(prefix, []byte(id)))
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", what, id, err)
	}
	if err := decode(b, v); err != nil {
		return fmt.Errorf("decoding %s %s: %w", what, id, err)
	}
	return nil
}

// StaffIDTaken reports whether a staff record with this ID exists (PutStaff
// overwrites, so creators check first).
func (tx *Tx) StaffIDTaken(id string) (bool, error) {
	return tx.exists(cat(pStaff, []byte(id)))
}
