package ra

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// USBKey requests (SPEC Art. 12, 25): unlocking a token whose user PIN is
// forgotten or locked, and replacing a token that is lost, damaged or
// exchanged. Both pass the steps table (steps.go) like certificate
// requests; the token inventory (store.Token) moves in the same
// transactions as the requests. The secrets that unlock a token are made by
// package token inside the signer, through Tokens.

// Kinds of USBKey request.
const (
	KindTokenUnlock  = "token_unlock"
	KindTokenReplace = "token_replace"
)

// Tokens is what the RA needs of the USBKey inventory (package token).
type Tokens interface {
	// UnlockForm says how a token of model is unlocked: "so_pin" or a
	// challenge-response cipher ("sm4-ecb", "3des-ecb", "aes-ecb").
	UnlockForm(model string) (string, error)
	// UnlockAnswer derives, inside the signer, tok's SO PIN, or for a
	// challenge-response model the challenge encrypted under its admin key.
	UnlockAnswer(ctx context.Context, tok *store.Token, challenge []byte) (soPIN string, response []byte, err error)
}

// KeyRecoverer recovers an escrowed encryption key onto a replacing USBKey
// (token/escrow fills it in server wiring). requestID identifies the
// replacement: a retried execution passes the same one, and a recoverer
// must not recover twice for it. The key is delivered for the new signing
// certificate's holder (enveloped to its public key); note says how the
// holder fetches it, and is kept in the request.
type KeyRecoverer interface {
	RecoverOnto(ctx context.Context, requestID string, enc *store.Cert, signing *store.Cert) (note string, err error)
}

// UnlockWarning goes with every unlock authorisation: a wrong SO PIN or a
// wrong answer counts against the token's own retry counter.
const UnlockWarning = "tokens count failed unblock attempts too: a wrong SO PIN or a wrong answer uses up the token's SO retries, and a token whose SO PIN locks cannot be unlocked any more (it must be replaced). Use this authorisation exactly as given; it is issued once."

var tokenSerialRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

// UnlockRequest asks to unlock a USBKey.
type UnlockRequest struct {
	TokenSerial string `json:"token_serial"`
	Comment     string `json:"comment,omitempty"`
}

// ReplaceRequest asks to replace a USBKey.
type ReplaceRequest struct {
	// TokenSerial is the token replaced; NewTokenSerial a token in stock.
	TokenSerial    string `json:"token_serial"`
	NewTokenSerial string `json:"new_token_serial"`
	// Cause: lost (its certificates are revoked as keyCompromise),
	// damaged or exchanged (superseded).
	Cause string `json:"cause"`
	// CSR (PEM) was made on the new token: its signing key never leaves it.
	CSR     string `json:"csr"`
	Comment string `json:"comment,omitempty"`
}

// replaceCauses maps a replacement's cause to the old token's next state
// and the revocation reason of its certificates.
var replaceCauses = map[string]struct {
	state  string
	reason ca.Reason
}{
	"lost":      {store.TokenLost, ca.ReasonKeyCompromise},
	"damaged":   {store.TokenDamaged, ca.ReasonSuperseded},
	"exchanged": {store.TokenRetired, ca.ReasonSuperseded},
}

// tokenRefused records a refused USBKey request in the audit log (it
// changed nothing else) and returns err.
func (r *RA) tokenRefused(ctx context.Context, c *caller, kind, object string, err error) error {
	var ae *httpapi.Error
	if !errors.As(err, &ae) || ae.Status >= 500 {
		return err
	}
	if _, aerr := r.audit.Append(ctx, audit.Record{Actor: c.ID(), Action: "ra.refuse", Object: object, Details: map[string]string{
		"kind": kind, "status": fmt.Sprint(ae.Status), "reason": ae.Message}}); aerr != nil {
		r.log.Error("auditing a refused request", "kind", kind, "object", object, "err", aerr)
	}
	r.m.refused.WithLabelValues(kind).Inc()
	return err
}

// heldToken reads serial from the inventory for c: a token that is not in
// it, or (for a certificate administrator) not held by c's organisation,
// is refused with the reason.
func heldToken(tx *store.Tx, c *caller, serial string) (*store.Token, error) {
	if !tokenSerialRE.MatchString(serial) {
		return nil, httpapi.BadRequest("token serial %q: 1-64 of letters, digits, . _ : -", serial)
	}
	tok, err := tx.Token(serial)
	if errors.Is(err, store.ErrNotFound) {
		return nil, httpapi.BadRequest("token %s is not in the inventory", serial)
	} else if err != nil {
		return nil, err
	}
	if c.Admin != nil && tok.OrgID != c.Admin.OrgID {
		return nil, httpapi.Forbidden("token %s is not held by organisation %s", serial, c.Admin.OrgID)
	}
	if tok.State != store.TokenIssued && tok.State != store.TokenLocked {
		return nil, httpapi.Conflict("token %s is %s, not in a holder's hands", serial, tok.State)
	}
	return tok, nil
}

// tokenRequest makes a USBKey request of kind for tok, at its first level.
func (r *RA) tokenRequest(tx *store.Tx, c *caller, kind string, tok *store.Token, comment string) (*store.RARequest, error) {
	org, err := tx.Org(tok.OrgID)
	if err != nil {
		return nil, fmt.Errorf("reading organisation %s of token %s: %w", tok.OrgID, tok.Serial, err)
	}
	n, err := r.st.Next("ra-request")
	if err != nil {
		return nil, err
	}
	rq := &store.RARequest{
		ID: fmt.Sprintf("req-%06d", n), Kind: kind, OrgID: org.ID, Subject: "USBKey " + tok.Serial,
		Person:      store.RAPerson{Name: tok.HolderName, UID: tok.Holder},
		SubmittedBy: c.ID(), ReceivedAt: r.now().UTC(), Open: true, DuplicateKey: kind + "\x00" + tok.Serial,
		Token: &store.RAToken{Serial: tok.Serial},
	}
	rq.Steps = stepsFor(r.cfg, kind, org)
	if comment == "" {
		comment = "received"
	}
	if err := r.move(rq, rq.Steps[0].Name, c.ID(), "submit", comment); err != nil {
		return nil, err
	}
	return rq, nil
}

// moveToken records a token's move to state by a request.
func (r *RA) moveToken(tx *store.Tx, tok *store.Token, state, actor, request, note string) error {
	now := r.now().UTC()
	tok.History = append(tok.History, store.TokenEvent{At: now, Actor: actor, From: tok.State, State: state, Note: note, Request: request})
	tok.State, tok.UpdatedAt = state, now
	if err := tx.PutToken(tok); errors.Is(err, store.ErrTokenMove) {
		return httpapi.Conflict("%v", err)
	} else if err != nil {
		return err
	}
	return nil
}

// ---- the inventory kept through certificate requests ----

// revokedTokenStates is what a revocation's cause says of the token the
// certificate is on.
var revokedTokenStates = map[string]string{"key_lost": store.TokenLost, "token_damaged": store.TokenDamaged}

// tokenFollowsRevocation records, in the revocation's transaction, that
// the token holding the revoked certificate is lost or damaged when the
// cause says so.
func (r *RA) tokenFollowsRevocation(tx *store.Tx, rq *store.RARequest) error {
	next, ok := revokedTokenStates[rq.Cause]
	if !ok {
		return nil
	}
	tok, err := tx.TokenOfCert(rq.TargetSerial)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if tok.State == next || !store.TokenCanMove(tok.State, next) {
		return nil
	}
	return r.moveToken(tx, tok, next, "system", rq.ID, "certificate "+hex.EncodeToString(rq.TargetSerial)+" revoked: "+rq.Cause)
}

// tokenFollowsRenewal adds a renewed certificate to the token that held
// the one it renews: the renewal's key is made on the holder's USBKey.
func (r *RA) tokenFollowsRenewal(tx *store.Tx, rq *store.RARequest, cert *store.Cert) error {
	tok, err := tx.TokenOfCert(rq.TargetSerial)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if slices.ContainsFunc(tok.Certs, func(s []byte) bool { return string(s) == string(cert.Serial) }) {
		return nil
	}
	tok.Certs = append(tok.Certs, cert.Serial)
	return r.moveToken(tx, tok, tok.State, "system", rq.ID, "renewed certificate "+cert.SerialHex()+" added")
}

// ---- unlock (SPEC Art. 12) ----

// SubmitUnlock stores a request to unlock a USBKey held by c's
// organisation; the token is recorded locked until the unlock is used.
func (r *RA) SubmitUnlock(ctx context.Context, c *caller, in UnlockRequest) (*store.RARequest, error) {
	object := "token/" + in.TokenSerial
	if r.opts.Tokens == nil {
		return nil, httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "USBKey unlock is not configured (the signer cannot derive token secrets)")
	}
	var rq *store.RARequest
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		tok, err := heldToken(tx, c, in.TokenSerial)
		if err != nil {
			return err
		}
		if _, err := r.opts.Tokens.UnlockForm(tok.Model); err != nil {
			return httpapi.Conflict("token %s: %v", tok.Serial, err)
		}
		if rq, err = r.tokenRequest(tx, c, KindTokenUnlock, tok, in.Comment); err != nil {
			return err
		}
		if err := r.put(tx, rq); errors.Is(err, store.ErrExists) {
			id, _ := tx.OpenRARequest(rq.DuplicateKey)
			return httpapi.Conflict("token %s already has an unlock request pending: %s", tok.Serial, id)
		} else if err != nil {
			return err
		}
		tok.UnlockRequest = rq.ID
		next, note := tok.State, "unlock requested in "+rq.ID
		if tok.State == store.TokenIssued {
			next = store.TokenLocked
		}
		if err := r.moveToken(tx, tok, next, c.ID(), rq.ID, note); err != nil {
			return err
		}
		return log(audit.Record{Actor: c.ID(), Action: "ra.submit", Object: "request/" + rq.ID, Details: map[string]string{
			"kind": rq.Kind, "org": rq.OrgID, "token": tok.Serial, "due_at": dueString(rq.DueAt)}})
	})
	if err != nil {
		return nil, r.tokenRefused(ctx, c, KindTokenUnlock, object, err)
	}
	r.m.submitted.WithLabelValues(rq.Kind).Inc()
	return rq, nil
}

// authorise executes an approved unlock: it records the request
// authorised. Nothing secret is made or stored; the requester fetches the
// authorisation once (FetchUnlock).
func (r *RA) authorise(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateAuthorising {
			return nil
		}
		if err := r.move(rq, StateAuthorised, "system", "authorise", "the requester may fetch the unlock authorisation once"); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "token.unlock_authorised", Object: "request/" + rq.ID, Details: map[string]string{"token": rq.Token.Serial}})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("authorising unlock request %s: %w", rq.ID, err))
	}
	return rq, nil
}

// UnlockAuthorisation is what unlocks the token, given once to the
// requester of an approved unlock request.
type UnlockAuthorisation struct {
	Request     string `json:"request"`
	TokenSerial string `json:"token_serial"`
	Form        string `json:"form"`
	// SOPIN is the token's SO PIN (form so_pin): log in as SO with it and
	// set a new user PIN (C_InitPIN).
	SOPIN string `json:"so_pin,omitempty"`
	// Response is the challenge encrypted under the token's admin key (hex).
	Response string `json:"response,omitempty"`
	Warning  string `json:"warning"`
}

// FetchUnlock gives the requester of the approved unlock request of token
// serial its authorisation, once: the token's SO PIN, or the answer to
// challenge (hex) read from the token. The request becomes unlocked and the
// token issued again in the transaction that consumes the authorisation; a
// second call is refused, audited.
func (r *RA) FetchUnlock(ctx context.Context, c *caller, serial, challengeHex string) (*UnlockAuthorisation, error) {
	object := "token/" + serial
	out, err := r.fetchUnlock(ctx, c, serial, challengeHex)
	if err != nil {
		return nil, r.tokenRefused(ctx, c, KindTokenUnlock, object, err)
	}
	return out, nil
}

func (r *RA) fetchUnlock(ctx context.Context, c *caller, serial, challengeHex string) (*UnlockAuthorisation, error) {
	if r.opts.Tokens == nil {
		return nil, httpapi.Errorf(http.StatusNotImplemented, "not_implemented", "USBKey unlock is not configured (the signer cannot derive token secrets)")
	}
	var rq *store.RARequest
	var tok *store.Token
	check := func(tx *store.Tx) error {
		var err error
		if !tokenSerialRE.MatchString(serial) {
			return httpapi.BadRequest("token serial %q: 1-64 of letters, digits, . _ : -", serial)
		}
		tok, err = tx.Token(serial)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.NotFound("token %s is not in the inventory", serial)
		} else if err != nil {
			return err
		}
		if c.Admin != nil && tok.OrgID != c.Admin.OrgID {
			return httpapi.Forbidden("token %s is not held by organisation %s", serial, c.Admin.OrgID)
		}
		if tok.UnlockRequest == "" {
			return httpapi.Conflict("token %s has no unlock request", serial)
		}
		if tok.State != store.TokenIssued && tok.State != store.TokenLocked {
			// A token reported lost or damaged since the approval: its SO
			// PIN must not reach whoever holds it now.
			return httpapi.Conflict("token %s is %s; it is not unlocked any more", serial, tok.State)
		}
		id := tok.UnlockRequest
		if rq, err = r.readRequest(tx, id); err != nil {
			return err
		}
		switch {
		case rq.SubmittedBy != c.ID():
			return httpapi.Forbidden("only the requester (%s) receives the unlock authorisation of request %s", rq.SubmittedBy, id)
		case rq.State == StateUnlocked:
			return httpapi.Conflict("the unlock authorisation of request %s was already used at %s; it is given once (submit a new unlock request)", id, rq.Token.UsedAt.Format("2006-01-02T15:04:05Z07:00"))
		case rq.State != StateAuthorised:
			return httpapi.Conflict("request %s is %s; an unlock is authorised only after its approval", id, rq.State)
		}
		return nil
	}
	if err := r.st.View(ctx, check); err != nil {
		return nil, err
	}
	form, err := r.opts.Tokens.UnlockForm(tok.Model)
	if err != nil {
		return nil, httpapi.Conflict("token %s: %v", tok.Serial, err)
	}
	var challenge []byte
	if form != "so_pin" {
		if challengeHex == "" {
			return nil, httpapi.BadRequest("token %s (model %s) is unlocked by challenge-response: send the challenge read from the token (hex)", tok.Serial, tok.Model)
		}
		if challenge, err = parseChallenge(challengeHex); err != nil {
			return nil, err
		}
	}
	pin, resp, err := r.opts.Tokens.UnlockAnswer(ctx, tok, challenge)
	if err != nil {
		return nil, fmt.Errorf("deriving the unlock of token %s: %w", tok.Serial, err)
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		// Checked again under the RA lock: of two concurrent fetches, one
		// commits and the other finds the request unlocked.
		if err := check(tx); err != nil {
			return err
		}
		rq.Token.UsedAt = r.now().UTC()
		if err := r.move(rq, StateUnlocked, c.ID(), "unlock", "authorisation ("+form+") delivered to the requester"); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		if tok.State == store.TokenLocked {
			if err := r.moveToken(tx, tok, store.TokenIssued, c.ID(), rq.ID, "unlock authorisation delivered"); err != nil {
				return err
			}
		}
		return log(audit.Record{Actor: c.ID(), Action: "token.unlock", Object: "token/" + tok.Serial, Details: map[string]string{"request": rq.ID, "form": form}})
	})
	if err != nil {
		return nil, err
	}
	out := &UnlockAuthorisation{Request: rq.ID, TokenSerial: tok.Serial, Form: form, SOPIN: pin, Warning: UnlockWarning}
	if resp != nil {
		out.Response = hex.EncodeToString(resp)
	}
	return out, nil
}

// maxChallenge bounds a challenge read from a token (SKF: 8 or 16 bytes).
const maxChallenge = 64

func parseChallenge(s string) ([]byte, error) {
	if len(s) > 2*maxChallenge {
		return nil, httpapi.BadRequest("challenge: longer than %d bytes", maxChallenge)
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, httpapi.BadRequest("challenge: 1 to %d bytes in hex", maxChallenge)
	}
	return b, nil
}

// ---- replacement (SPEC Art. 25) ----

// SubmitReplace stores a request to replace a USBKey held by c's
// organisation by a token in stock, with a CSR made on the new token. It
// waits for a support engineer's confirmation.
func (r *RA) SubmitReplace(ctx context.Context, c *caller, in ReplaceRequest) (*store.RARequest, error) {
	object := "token/" + in.TokenSerial
	rq, err := r.submitReplace0(ctx, c, in)
	if err != nil {
		return nil, r.tokenRefused(ctx, c, KindTokenReplace, object, err)
	}
	r.m.submitted.WithLabelValues(rq.Kind).Inc()
	return rq, nil
}

func (r *RA) submitReplace0(ctx context.Context, c *caller, in ReplaceRequest) (*store.RARequest, error) {
	cause, ok := replaceCauses[in.Cause]
	if !ok {
		return nil, httpapi.BadRequest("cause %q is not one of lost, damaged, exchanged", in.Cause)
	}
	block, _ := pem.Decode([]byte(in.CSR))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, httpapi.BadRequest("csr: a PEM CERTIFICATE REQUEST made on the new token")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, httpapi.BadRequest("csr: %v", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, httpapi.BadRequest("csr: signature does not verify: %v", err)
	}
	var rq *store.RARequest
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		old, err := heldToken(tx, c, in.TokenSerial)
		if err != nil {
			return err
		}
		if !tokenSerialRE.MatchString(in.NewTokenSerial) {
			return httpapi.BadRequest("new token serial %q: 1-64 of letters, digits, . _ : -", in.NewTokenSerial)
		}
		nt, err := tx.Token(in.NewTokenSerial)
		if errors.Is(err, store.ErrNotFound) {
			return httpapi.BadRequest("new token %s is not in the inventory", in.NewTokenSerial)
		} else if err != nil {
			return err
		}
		if nt.State != store.TokenInStock {
			return httpapi.Conflict("new token %s is %s, not in stock", nt.Serial, nt.State)
		}
		// The signing certificate to replace: the first valid one on the
		// old token that is not an encryption certificate.
		var signing *store.Cert
		for _, s := range old.Certs {
			cert, err := tx.Cert(s)
			if err != nil {
				continue
			}
			if cert.Profile != ca.ProfilePersonalEncryption && signing == nil {
				signing = cert
			}
		}
		if signing == nil {
			return httpapi.Conflict("token %s holds no signing certificate to replace", old.Serial)
		}
		if rq, err = r.tokenRequest(tx, c, KindTokenReplace, old, in.Comment); err != nil {
			return err
		}
		rq.CSR, rq.Profile, rq.SubscriberID, rq.TargetSerial = csr.Raw, signing.Profile, signing.SubscriberID, signing.Serial
		rq.Subject, rq.Cause, rq.Reason = signing.Subject, in.Cause, int(cause.reason)
		rq.Token.NewSerial, rq.Token.Cause, rq.Token.OldCerts = nt.Serial, in.Cause, old.Certs
		if err := r.put(tx, rq); errors.Is(err, store.ErrExists) {
			id, _ := tx.OpenRARequest(rq.DuplicateKey)
			return httpapi.Conflict("token %s already has a replacement pending: %s", old.Serial, id)
		} else if err != nil {
			return err
		}
		return log(audit.Record{Actor: c.ID(), Action: "ra.submit", Object: "request/" + rq.ID, Details: map[string]string{
			"kind": rq.Kind, "org": rq.OrgID, "token": old.Serial, "new_token": nt.Serial, "cause": in.Cause, "due_at": dueString(rq.DueAt)}})
	})
	return rq, err
}

// replace executes a confirmed replacement, each step safe to repeat after
// a crash: the new signing certificate (its serial recorded before it is
// signed), the encryption keys recovered onto the new token (if a
// recoverer is wired), the old token's certificates revoked (superseded,
// or keyCompromise for a lost token), then in one transaction the
// inventory moved and the request closed.
func (r *RA) replace(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	if len(rq.SigningSerial) == 0 {
		var err error
		if rq, err = r.reserveSerial(ctx, rq); err != nil {
			return nil, err
		}
		if rq.State != StateReplacing {
			return rq, nil
		}
	}
	// The new token must still be in stock: checked before anything is
	// signed or revoked, so a refused replacement changes nothing.
	var nt *store.Token
	if err := r.st.View(ctx, func(tx *store.Tx) (err error) { nt, err = tx.Token(rq.Token.NewSerial); return err }); err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("reading new token %s: %w", rq.Token.NewSerial, err))
	}
	cert, err := r.issuedWith(ctx, rq)
	if err != nil {
		return r.fail(ctx, rq, err.Error())
	}
	if cert == nil && nt.State != store.TokenInStock {
		return r.fail(ctx, rq, fmt.Sprintf("new token %s is %s, no longer in stock", nt.Serial, nt.State))
	}
	if cert == nil {
		csr, err := x509.ParseCertificateRequest(rq.CSR)
		if err != nil {
			return r.fail(ctx, rq, fmt.Sprintf("stored CSR does not parse: %v", err))
		}
		ir := ca.IssueRequest{CSR: csr, Profile: rq.Profile, SubscriberID: rq.SubscriberID, Serial: rq.SigningSerial}
		if old, err := x509ParseStored(ctx, r.st, rq.TargetSerial); err == nil {
			// The same holder: the replaced certificate's subject and e-mail.
			ir.Subject, ir.EmailAddresses = &old.Subject, old.EmailAddresses
		}
		cert, err = r.auth.Issue(ctx, ir)
		if errors.Is(err, ca.ErrBadRequest) {
			return r.fail(ctx, rq, "the CA refused the new signing certificate: "+err.Error())
		}
		if err != nil {
			if c, lookErr := r.issuedWith(ctx, rq); lookErr == nil && c != nil {
				cert = c
			} else {
				return r.attemptFailed(ctx, rq, fmt.Errorf("issuing for request %s: %w", rq.ID, err))
			}
		}
	}
	recovered, note, err := r.recoverOnto(ctx, rq, cert)
	if err != nil {
		return r.attemptFailed(ctx, rq, err)
	}
	reason := ca.Reason(rq.Reason)
	for _, s := range rq.Token.OldCerts {
		_, err := r.auth.Revoke(ctx, s, reason)
		if err != nil && !errors.Is(err, store.ErrAlreadyRevoked) && !errors.Is(err, ca.ErrNotFound) {
			return r.attemptFailed(ctx, rq, fmt.Errorf("revoking certificate %x of token %s: %w", s, rq.Token.Serial, err))
		}
	}
	var refused string
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		refused = ""
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateReplacing {
			return nil
		}
		old, err := tx.Token(rq.Token.Serial)
		if err != nil {
			return err
		}
		nt, err := tx.Token(rq.Token.NewSerial)
		if err != nil {
			return err
		}
		if nt.State != store.TokenInStock {
			refused = fmt.Sprintf("new token %s is %s, no longer in stock", nt.Serial, nt.State)
			return nil
		}
		next := replaceCauses[rq.Token.Cause].state
		old.Certs = nil
		if err := r.moveToken(tx, old, next, "system", rq.ID, "replaced by "+nt.Serial+" ("+rq.Token.Cause+")"); err != nil {
			return err
		}
		nt.Holder, nt.HolderName, nt.OrgID = old.Holder, old.HolderName, old.OrgID
		nt.Certs = append([][]byte{cert.Serial}, recovered...)
		nt.PersonalisedAt = r.now().UTC()
		if err := r.moveToken(tx, nt, store.TokenIssued, "system", rq.ID, "replaces "+old.Serial+" for "+old.Holder); err != nil {
			return err
		}
		if err := tx.PutOrgCert(rq.OrgID, cert.Serial); err != nil {
			return err
		}
		rq.Serial = cert.Serial
		rq.Token.Revoked, rq.Token.Recovered, rq.Token.RecoveryNote = rq.Token.OldCerts, recovered, note
		if err := r.move(rq, StateReplaced, "system", "replace", fmt.Sprintf("token %s (%s) replaced by %s; certificate %s issued; %d revoked (%s); %s",
			old.Serial, next, nt.Serial, cert.SerialHex(), len(rq.Token.OldCerts), reason, note)); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		revoked := make([]string, len(rq.Token.OldCerts))
		for i, s := range rq.Token.OldCerts {
			revoked[i] = hex.EncodeToString(s)
		}
		return log(audit.Record{Actor: "system", Action: "token.replace", Object: "token/" + old.Serial, Details: map[string]string{
			"request": rq.ID, "new_token": nt.Serial, "old_state": next, "issued": cert.SerialHex(), "revoked": strings.Join(revoked, ","),
			"reason": reason.String(), "recovery": note}})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("recording replacement %s: %w", rq.ID, err))
	}
	if refused != "" {
		return r.fail(ctx, rq, refused)
	}
	return rq, nil
}

// recoverOnto recovers the encryption keys of the old token onto the new
// one through the KeyRecoverer, or says why it did not.
func (r *RA) recoverOnto(ctx context.Context, rq *store.RARequest, signing *store.Cert) ([][]byte, string, error) {
	var encs []*store.Cert
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		for _, s := range rq.Token.OldCerts {
			if c, err := tx.Cert(s); err == nil && c.Profile == ca.ProfilePersonalEncryption {
				encs = append(encs, c)
			}
		}
		return nil
	}); err != nil {
		return nil, "", err
	}
	if len(encs) == 0 {
		return nil, "no encryption certificate on the old token", nil
	}
	if r.opts.Recoverer == nil {
		return nil, "no key recoverer is configured: the encryption key was not recovered onto the new token", nil
	}
	var got [][]byte
	var notes []string
	for _, e := range encs {
		note, err := r.opts.Recoverer.RecoverOnto(ctx, rq.ID, e, signing)
		if err != nil {
			return nil, "", fmt.Errorf("recovering the key of encryption certificate %s onto token %s: %w", e.SerialHex(), rq.Token.NewSerial, err)
		}
		got = append(got, e.Serial)
		notes = append(notes, note)
	}
	return got, "encryption keys recovered: " + strings.Join(notes, "; "), nil
}

// ---- handlers ----

func (r *RA) submitUnlock(w http.ResponseWriter, req *http.Request) error {
	var in UnlockRequest
	if err := httpapi.DecodeJSON(req, &in); err != nil {
		return err
	}
	rq, err := r.SubmitUnlock(req.Context(), callerFrom(req.Context()), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, r.view(rq))
}

type unlockFetch struct {
	// Challenge is what a challenge-response token gave (hex).
	Challenge string `json:"challenge,omitempty"`
}

func (r *RA) fetchUnlockHandler(w http.ResponseWriter, req *http.Request) error {
	var in unlockFetch
	if req.ContentLength != 0 {
		if err := httpapi.DecodeJSON(req, &in); err != nil {
			return err
		}
	}
	out, err := r.FetchUnlock(req.Context(), callerFrom(req.Context()), req.PathValue("serial"), in.Challenge)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return httpapi.WriteJSON(w, http.StatusOK, out)
}

func (r *RA) submitReplace(w http.ResponseWriter, req *http.Request) error {
	var in ReplaceRequest
	if err := httpapi.DecodeJSON(req, &in); err != nil {
		return err
	}
	rq, err := r.SubmitReplace(req.Context(), callerFrom(req.Context()), in)
	if err != nil {
		return err
	}
	return httpapi.WriteJSON(w, http.StatusCreated, r.view(rq))
}

// tokenRequestView is a USBKey request's token part as the API shows it.
type tokenRequestView struct {
	Serial       string   `json:"serial"`
	NewSerial    string   `json:"new_serial,omitempty"`
	Cause        string   `json:"cause,omitempty"`
	OldCerts     []string `json:"old_certificates,omitempty"`
	Revoked      []string `json:"revoked,omitempty"`
	Recovered    []string `json:"recovered,omitempty"`
	RecoveryNote string   `json:"recovery_note,omitempty"`
	UsedAt       string   `json:"used_at,omitempty"`
}

func viewToken(t *store.RAToken) *tokenRequestView {
	hexes := func(bs [][]byte) []string {
		var out []string
		for _, b := range bs {
			out = append(out, hex.EncodeToString(b))
		}
		return out
	}
	v := &tokenRequestView{Serial: t.Serial, NewSerial: t.NewSerial, Cause: t.Cause, OldCerts: hexes(t.OldCerts),
		Revoked: hexes(t.Revoked), Recovered: hexes(t.Recovered), RecoveryNote: t.RecoveryNote}
	if !t.UsedAt.IsZero() {
		v.UsedAt = t.UsedAt.Format("2006-01-02T15:04:05Z07:00")
	}
	return v
}
