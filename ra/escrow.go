package ra

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Encryption certificates and key recovery (SPEC Art. 4, 13). A person's
// encryption certificate is paired with their signing certificate: the RA
// has the key pair made and escrowed by the KeyEscrow (token/escrow,
// wrapped under the signer's key-encryption key), issues the certificate
// through the Authority, and hands the key to its holder through a
// one-time download link. A key recovery is a request like any other:
// submitted signed by the organisation's certificate administrator and
// approved by an RA officer, or, for a judicial recovery, approved by M
// distinct recovery officers with a case reference (steps.go); its
// deadline is ra.escrow.recovery_deadline_days working days.

// Kinds and states of escrow requests.
const (
	KindEncryptionCert   = "encryption_cert"
	KindKeyRecovery      = "key_recovery"
	KindJudicialRecovery = "judicial_recovery"
	// StateEscrowing: an approved encryption certificate request whose key
	// is being made and certified.
	StateEscrowing = "escrowing"
	// StateRecoveryReview: a judicial recovery waiting for its recovery
	// officers.
	StateRecoveryReview = "recovery_review"
	// StateRecovering: an approved recovery whose key is being checked;
	// then recovered, and delivered once its link is used.
	StateRecovering = "recovering"
	StateRecovered  = "recovered"
)

// KeyEscrow is what the RA needs of the key escrow; server/wire_escrow.go
// fills it with token/escrow. Its refusals wrap ErrNoEscrowedKey,
// ErrEscrowDamaged or ErrRecipient.
type KeyEscrow interface {
	// Generate makes and escrows a key pair under serial, or returns the
	// public key already escrowed there.
	Generate(ctx context.Context, serial []byte, alg signer.Algorithm, signingSerial []byte, request string) (crypto.PublicKey, error)
	// Paired returns the signing certificate serial's key is paired with.
	Paired(ctx context.Context, serial []byte) ([]byte, error)
	// Check unwraps serial's key and checks it against its certificate.
	Check(ctx context.Context, serial []byte) error
	// Deliver packages serial's key: "cms" to recipient, or "pkcs12".
	Deliver(ctx context.Context, serial []byte, format string, recipient *x509.Certificate) (*KeyDelivery, error)
}

// KeyDelivery is a key packaged for its holder: ciphertext only.
type KeyDelivery struct {
	ContentType string
	Body        []byte
	// Password opens a PKCS#12; made for this delivery and kept nowhere.
	Password string
}

// Refusals of the KeyEscrow.
var (
	ErrNoEscrowedKey = errors.New("no escrowed key for this certificate")
	ErrEscrowDamaged = errors.New("the escrowed key record is damaged and does not unwrap")
	ErrRecipient     = errors.New("the recipient certificate cannot receive this delivery")
)

// escrowError maps the KeyEscrow's refusals to API errors.
func escrowError(err error) error {
	switch {
	case errors.Is(err, ErrNoEscrowedKey):
		return httpapi.NotFound("%v", err)
	case errors.Is(err, ErrEscrowDamaged):
		return httpapi.Errorf(http.StatusUnprocessableEntity, "escrow_damaged", "%v", err)
	case errors.Is(err, ErrRecipient):
		return httpapi.BadRequest("%v", err)
	}
	return err
}

func (r *RA) needEscrow() error {
	if r.opts.Escrow == nil {
		return httpapi.Errorf(http.StatusNotImplemented, "not_configured", "key escrow is not configured on this server")
	}
	return nil
}

// EncryptionCertRequest asks for an encryption certificate paired with a
// person's signing certificate.
type EncryptionCertRequest struct {
	Org string `json:"org"`
	// SigningSerial is the holder's signing certificate (hex).
	SigningSerial string `json:"signing_serial"`
	// Algorithm is rsa-2048 or ecdsa-p256; default ra.escrow.key_algorithm.
	Algorithm string `json:"algorithm,omitempty"`
	// Delivery is cms or pkcs12; default ra.escrow.delivery.
	Delivery string `json:"delivery,omitempty"`
}

// KeyRecoveryRequest asks for an escrowed key back.
type KeyRecoveryRequest struct {
	Org string `json:"org"`
	// Serial is the encryption certificate's (hex).
	Serial string `json:"serial"`
	Reason string `json:"reason"`
	// Delivery is cms or pkcs12; default ra.escrow.delivery.
	Delivery string `json:"delivery,omitempty"`
	// Recipient is the valid RSA signing certificate a CMS delivery is
	// enveloped to (hex); default the one the key is paired with.
	Recipient string `json:"recipient,omitempty"`
	// Judicial asks for a recovery ordered by a court or another
	// authority, which needs CaseReference and M recovery officers.
	Judicial      bool   `json:"judicial,omitempty"`
	CaseReference string `json:"case_reference,omitempty"`
}

// EscrowSubmission is an escrow request as it arrived: a CMS SignedData of
// the JSON (a certificate administrator's), or the JSON (staff's).
type EscrowSubmission struct {
	Body []byte
	JSON bool
}

// signedContent checks the form of a submission and returns its content
// and signer (nil for staff JSON). Whether the signer may act for the
// organisation is checked in the transaction.
func (r *RA) signedContent(c *caller, s EscrowSubmission, v any) (*x509.Certificate, error) {
	content := s.Body
	var signed *Signed
	switch {
	case s.JSON && c.Admin != nil:
		return nil, httpapi.BadRequest("a certificate administrator's request must be a CMS SignedData made with their certificate (Content-Type application/pkcs7-mime)")
	case !s.JSON:
		var err error
		if signed, err = ParseSigned(s.Body, r.now()); err != nil {
			return nil, toAPI(err)
		}
		if err := r.checkChain(signed, r.now()); err != nil {
			return nil, err
		}
		content = signed.Content
	}
	if raw, ok := v.(*json.RawMessage); ok {
		*raw = content
	} else if err := strictJSON(content, v); err != nil {
		return nil, err
	}
	if signed == nil {
		return nil, nil
	}
	return signed.Signer, nil
}

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return httpapi.BadRequest("invalid JSON: %v", err)
	}
	if dec.More() {
		return httpapi.BadRequest("trailing data after the JSON document")
	}
	return nil
}

// mayActFor checks that c (and the document's signer) may request for org:
// its certificate administrator, or (for an encryption certificate) the
// holder signing with the signing certificate itself; staff sign nothing.
func (r *RA) mayActFor(tx *store.Tx, c *caller, signerCert *x509.Certificate, org string, holder []byte) error {
	if c.Admin != nil && c.Admin.OrgID != org {
		return httpapi.Forbidden("you are a certificate administrator of %s, not of %s", c.Admin.OrgID, org)
	}
	if signerCert == nil {
		return nil
	}
	if holder != nil && string(signerCert.SerialNumber.Bytes()) == string(holder) {
		return nil
	}
	return r.checkSigner(tx, signerCert, org)
}

// validCert reads serial, which must be org's, valid now, and of profile
// (if not empty).
func (r *RA) validCert(tx *store.Tx, serial []byte, org, profile, what string) (*store.Cert, *x509.Certificate, error) {
	c, err := tx.Cert(serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, httpapi.BadRequest("no %s with serial %x", what, serial)
	} else if err != nil {
		return nil, nil, err
	}
	if owner, err := tx.CertOrg(serial); err != nil || owner != org {
		return nil, nil, httpapi.Forbidden("%s %x was not issued to organisation %s", what, serial, org)
	}
	if profile != "" && c.Profile != profile {
		return nil, nil, httpapi.BadRequest("certificate %x is a %s certificate, not a %s", serial, c.Profile, what)
	}
	if c.Status == store.StatusRevoked {
		return nil, nil, httpapi.Conflict("%s %x is revoked", what, serial)
	}
	if r.now().After(c.NotAfter) {
		return nil, nil, httpapi.Conflict("%s %x has expired", what, serial)
	}
	x, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, nil, fmt.Errorf("parsing certificate %x: %w", serial, err)
	}
	return c, x, nil
}

func deliveryFormat(f string, cfg config.RAEscrow) (string, error) {
	if f == "" {
		f = cfg.Delivery
	}
	if f != "cms" && f != "pkcs12" {
		return "", httpapi.BadRequest("delivery %q is not one of cms, pkcs12", f)
	}
	return f, nil
}

// parseEncryptionCert decodes and checks an encryption certificate request
// (outside input: FuzzEscrowRequests), filling the defaults of cfg.
func parseEncryptionCert(b []byte, cfg config.RAEscrow) (*EncryptionCertRequest, []byte, error) {
	var in EncryptionCertRequest
	if err := strictJSON(b, &in); err != nil {
		return nil, nil, err
	}
	if in.Org == "" {
		return nil, nil, httpapi.BadRequest("org is required")
	}
	signing, err := httpapi.ParseSerial(in.SigningSerial)
	if err != nil {
		return nil, nil, err
	}
	if in.Algorithm == "" {
		in.Algorithm = cfg.KeyAlgorithm
	}
	if in.Algorithm != string(signer.RSA2048) && in.Algorithm != string(signer.ECDSAP256) {
		return nil, nil, httpapi.BadRequest("algorithm %q is not one of rsa-2048, ecdsa-p256", in.Algorithm)
	}
	if in.Delivery, err = deliveryFormat(in.Delivery, cfg); err != nil {
		return nil, nil, err
	}
	return &in, signing, nil
}

// parseKeyRecovery decodes and checks a key recovery request (outside
// input: FuzzEscrowRequests): the certificate, the recipient if named, a
// reason, and a case reference exactly for a judicial recovery.
func parseKeyRecovery(b []byte, cfg config.RAEscrow) (in *KeyRecoveryRequest, serial, recipient []byte, err error) {
	in = &KeyRecoveryRequest{}
	if err := strictJSON(b, in); err != nil {
		return nil, nil, nil, err
	}
	if in.Org == "" {
		return nil, nil, nil, httpapi.BadRequest("org is required")
	}
	if serial, err = httpapi.ParseSerial(in.Serial); err != nil {
		return nil, nil, nil, err
	}
	if in.Delivery, err = deliveryFormat(in.Delivery, cfg); err != nil {
		return nil, nil, nil, err
	}
	in.Reason, in.CaseReference = strings.TrimSpace(in.Reason), strings.TrimSpace(in.CaseReference)
	for name, v := range map[string]string{"reason": in.Reason, "case_reference": in.CaseReference} {
		if len(v) > maxFieldLen || strings.ContainsAny(v, "\x00\r\n") || !utf8.ValidString(v) {
			return nil, nil, nil, httpapi.BadRequest("%s: at most %d bytes of UTF-8 on one line", name, maxFieldLen)
		}
	}
	switch {
	case in.Reason == "":
		return nil, nil, nil, httpapi.BadRequest("reason is required: why the key is to be recovered")
	case in.Judicial && in.CaseReference == "":
		return nil, nil, nil, httpapi.BadRequest("a judicial recovery needs case_reference: the court's or authority's file number")
	case !in.Judicial && in.CaseReference != "":
		return nil, nil, nil, httpapi.BadRequest("case_reference goes with judicial: true")
	}
	if in.Recipient != "" {
		if recipient, err = httpapi.ParseSerial(in.Recipient); err != nil {
			return nil, nil, nil, err
		}
	}
	return in, serial, recipient, nil
}

// cmsRecipient checks that a CMS delivery can be enveloped to x.
func cmsRecipient(x *x509.Certificate) error {
	if _, ok := x.PublicKey.(*rsa.PublicKey); !ok {
		return httpapi.BadRequest("signing certificate %x has a %s key: CMS delivery needs an RSA one (github.com/smallstep/pkcs7 does RSA key transport only); ask for delivery pkcs12",
			x.SerialNumber.Bytes(), x.PublicKeyAlgorithm)
	}
	return nil
}

// SubmitEncryptionCert stores a request for an encryption certificate
// paired with a valid personal signing certificate of the organisation.
func (r *RA) SubmitEncryptionCert(ctx context.Context, c *caller, s EscrowSubmission) (*store.RARequest, error) {
	if err := r.needEscrow(); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	signerCert, err := r.signedContent(c, s, &raw)
	if err != nil {
		return nil, err
	}
	in, signing, err := parseEncryptionCert(raw, r.cfg.Escrow)
	if err != nil {
		return nil, err
	}
	format := in.Delivery
	now := r.now()
	var rq *store.RARequest
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		org, err := namedOrg(tx, in.Org)
		if err != nil {
			return err
		}
		if err := r.mayActFor(tx, c, signerCert, org.ID, signing); err != nil {
			return err
		}
		sc, sx, err := r.validCert(tx, signing, org.ID, ca.ProfilePersonalSigning, "personal signing certificate")
		if err != nil {
			return err
		}
		if format == "cms" {
			if err := cmsRecipient(sx); err != nil {
				return err
			}
		}
		n, err := r.st.Next("ra-request")
		if err != nil {
			return err
		}
		rq = &store.RARequest{
			ID: fmt.Sprintf("req-%06d", n), Kind: KindEncryptionCert, OrgID: org.ID, Profile: ca.ProfilePersonalEncryption,
			Subject: sc.Subject, TargetSerial: signing, SubscriberID: sc.SubscriberID, SubmittedBy: c.ID(), ReceivedAt: now.UTC(), Open: true,
			DuplicateKey: KindEncryptionCert + "\x00" + hex.EncodeToString(signing),
			Escrow:       &store.RAEscrow{Algorithm: in.Algorithm, Format: format, Recipient: signing},
		}
		if sub, err := tx.Subscriber(sc.SubscriberID); err == nil {
			rq.Person = store.RAPerson{Name: sub.CommonName, Email: sub.Email, UID: sub.UID, SerialNumber: sub.SerialNumber, OrgUnit: sub.OrgUnit}
		}
		return r.storeEscrowRequest(tx, log, rq, org, c, map[string]string{"signing_serial": hex.EncodeToString(signing), "algorithm": in.Algorithm, "delivery": format})
	})
	if err != nil {
		return nil, toAPI(err)
	}
	r.m.submitted.WithLabelValues(rq.Kind).Inc()
	return rq, nil
}

func (r *RA) storeEscrowRequest(tx *store.Tx, log func(audit.Record) error, rq *store.RARequest, org *store.Org, c *caller, details map[string]string) error {
	rq.Steps = stepsFor(r.cfg, rq.Kind, org)
	if err := r.move(rq, rq.Steps[0].Name, c.ID(), "submit", "received"); err != nil {
		return err
	}
	if err := r.put(tx, rq); errors.Is(err, store.ErrExists) {
		id, _ := tx.OpenRARequest(rq.DuplicateKey)
		return httpapi.Conflict("a %s for certificate %x is already pending as request %s", rq.Kind, rq.TargetSerial, id)
	} else if err != nil {
		return err
	}
	details["kind"], details["org"], details["due_at"] = rq.Kind, org.ID, dueString(rq.DueAt)
	return log(audit.Record{Actor: c.ID(), Action: "ra.submit", Object: "request/" + rq.ID, Details: details})
}

// SubmitKeyRecovery stores a key recovery request, after checking that the
// certificate's key is escrowed and unwraps. A refusal for the key's sake
// is audited; nothing else is written.
func (r *RA) SubmitKeyRecovery(ctx context.Context, c *caller, s EscrowSubmission) (*store.RARequest, error) {
	if err := r.needEscrow(); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	signerCert, err := r.signedContent(c, s, &raw)
	if err != nil {
		return nil, err
	}
	in, serial, recipient, err := parseKeyRecovery(raw, r.cfg.Escrow)
	if err != nil {
		return nil, err
	}
	if !in.Judicial && c.Admin == nil {
		return nil, httpapi.Forbidden("a key recovery is submitted signed by the organisation's certificate administrator; staff submit judicial recoveries only")
	}
	format := in.Delivery
	kind := KindKeyRecovery
	if in.Judicial {
		kind = KindJudicialRecovery
	}
	// The key must be there and open before anyone is asked to approve.
	paired, err := r.opts.Escrow.Paired(ctx, serial)
	if err == nil {
		err = r.opts.Escrow.Check(ctx, serial)
	}
	if err != nil {
		if errors.Is(err, ErrNoEscrowedKey) || errors.Is(err, ErrEscrowDamaged) {
			r.auditRefusal(ctx, c, "certificate/"+hex.EncodeToString(serial), kind, err)
		}
		return nil, escrowError(err)
	}
	if recipient == nil && format == "cms" {
		recipient = paired
	}
	now := r.now()
	var rq *store.RARequest
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		org, err := namedOrg(tx, in.Org)
		if err != nil {
			return err
		}
		if err := r.mayActFor(tx, c, signerCert, org.ID, nil); err != nil {
			return err
		}
		ec, err := tx.Cert(serial)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("no certificate with serial %x", serial)
		} else if err != nil {
			return err
		}
		if owner, err := tx.CertOrg(serial); err != nil || owner != org.ID {
			return httpapi.Forbidden("certificate %x was not issued to organisation %s", serial, org.ID)
		}
		if format == "cms" {
			// A revoked signing key may be in other hands (a lost token):
			// the recovered key goes only to a valid certificate.
			_, rx, err := r.validCert(tx, recipient, org.ID, "", "recipient signing certificate")
			if err != nil {
				return err
			}
			if err := cmsRecipient(rx); err != nil {
				return err
			}
		}
		if kind == KindJudicialRecovery {
			if err := r.enoughRecoveryOfficers(tx); err != nil {
				return err
			}
		}
		n, err := r.st.Next("ra-request")
		if err != nil {
			return err
		}
		rq = &store.RARequest{
			ID: fmt.Sprintf("req-%06d", n), Kind: kind, OrgID: org.ID, Profile: ec.Profile, Subject: ec.Subject, TargetSerial: serial,
			SubscriberID: ec.SubscriberID, SubmittedBy: c.ID(), ReceivedAt: now.UTC(), Open: true,
			DuplicateKey: kind + "\x00" + hex.EncodeToString(serial),
			Escrow:       &store.RAEscrow{Format: format, Recipient: recipient, Judicial: in.Judicial, CaseReference: in.CaseReference, Reason: in.Reason},
		}
		details := map[string]string{"serial": hex.EncodeToString(serial), "reason": in.Reason, "delivery": format}
		if in.Judicial {
			details["case_reference"] = in.CaseReference
		}
		if recipient != nil {
			details["recipient"] = hex.EncodeToString(recipient)
		}
		return r.storeEscrowRequest(tx, log, rq, org, c, details)
	})
	if err != nil {
		return nil, toAPI(err)
	}
	r.m.submitted.WithLabelValues(rq.Kind).Inc()
	return rq, nil
}

// enoughRecoveryOfficers refuses a judicial recovery that could never
// gather its M approvals.
func (r *RA) enoughRecoveryOfficers(tx *store.Tx) error {
	n := 0
	if err := tx.EachStaff(func(s *store.Staff) error {
		if s.Role == httpapi.RoleRecoveryOfficer {
			n++
		}
		return nil
	}); err != nil {
		return err
	}
	if m := r.cfg.Escrow.JudicialApprovals; n < m {
		return httpapi.Conflict("%d recovery officers are enrolled; a judicial recovery needs %d to approve (ra.escrow.judicial_approvals)", n, m)
	}
	return nil
}

// auditRefusal records a refused escrow operation: the refusal is the
// audit trail's, even though nothing else changes.
func (r *RA) auditRefusal(ctx context.Context, c *caller, object, what string, why error) {
	actor := "link"
	if c != nil {
		actor = c.ID()
	}
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		return log(audit.Record{Actor: actor, Action: "escrow.refuse", Object: object, Details: map[string]string{"operation": what, "reason": why.Error()}})
	})
	if err != nil {
		r.log.Error("auditing a refused escrow operation", "object", object, "err", err)
	}
}
