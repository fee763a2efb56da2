package ca

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/certcenter/certcenter/store"
)

// Reason is an RFC 5280 §5.3.1 CRLReason.
type Reason int

// The RFC 5280 reason codes (7 is unused).
const (
	ReasonUnspecified          Reason = 0
	ReasonKeyCompromise        Reason = 1
	ReasonCACompromise         Reason = 2
	ReasonAffiliationChanged   Reason = 3
	ReasonSuperseded           Reason = 4
	ReasonCessationOfOperation Reason = 5
	ReasonCertificateHold      Reason = 6
	ReasonRemoveFromCRL        Reason = 8
	ReasonPrivilegeWithdrawn   Reason = 9
	ReasonAACompromise         Reason = 10
)

var reasonNames = map[Reason]string{
	ReasonUnspecified:          "unspecified",
	ReasonKeyCompromise:        "keyCompromise",
	ReasonCACompromise:         "cACompromise",
	ReasonAffiliationChanged:   "affiliationChanged",
	ReasonSuperseded:           "superseded",
	ReasonCessationOfOperation: "cessationOfOperation",
	ReasonCertificateHold:      "certificateHold",
	ReasonRemoveFromCRL:        "removeFromCRL",
	ReasonPrivilegeWithdrawn:   "privilegeWithdrawn",
	ReasonAACompromise:         "aACompromise",
}

func (r Reason) String() string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// ParseReason accepts an RFC 5280 name (any case) or its number.
// removeFromCRL is refused: it only appears in delta CRLs.
func ParseReason(s string) (Reason, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if _, ok := reasonNames[Reason(n)]; ok && Reason(n) != ReasonRemoveFromCRL {
			return Reason(n), nil
		}
		return 0, fmt.Errorf("%w: revocation reason %d is not allowed", ErrBadRequest, n)
	}
	for r, name := range reasonNames {
		if strings.EqualFold(name, s) && r != ReasonRemoveFromCRL {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown revocation reason %q (want keyCompromise, superseded, affiliationChanged, cessationOfOperation, privilegeWithdrawn, certificateHold, unspecified, cACompromise or aACompromise)", ErrBadRequest, s)
}

// ErrNotFound is returned for a serial this CA did not issue.
var ErrNotFound = errors.New("certificate not found")

// ErrRefused marks a revocation that Options.RevokeCheck forbids; the
// caller's request is well-formed but conflicts with the current state
// (the API maps it to 409).
var ErrRefused = errors.New("revocation refused")

// Revoke marks a certificate revoked in one transaction and emits
// EventRevoked after the commit. Revoking an already revoked certificate
// returns store.ErrAlreadyRevoked, except to move it off hold.
func (a *Authority) Revoke(ctx context.Context, serial []byte, reason Reason) (*store.Cert, error) {
	return a.RevokeWith(ctx, serial, reason, nil)
}

// RevokeWith is Revoke with also, when not nil, run inside the revocation's
// transaction, so a caller's own record of it (an audit entry, a request's
// state) commits together with the revocation or not at all.
func (a *Authority) RevokeWith(ctx context.Context, serial []byte, reason Reason, also func(tx *store.Tx, c *store.Cert) error) (*store.Cert, error) {
	if reason == ReasonRemoveFromCRL || reason == 7 || reason < 0 || reason > 10 {
		return nil, fmt.Errorf("%w: revocation reason %d is not allowed", ErrBadRequest, int(reason))
	}
	var c *store.Cert
	err := a.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		c, err = tx.RevokeCert(serial, a.now(), int(reason))
		if err != nil {
			return err
		}
		if err := tx.AppendLog(store.LogEntry{Kind: store.LogCertRevoked, Key: c.SerialHex(), Time: c.RevokedAt}); err != nil {
			return err
		}
		if err := a.checkRevoke(tx, c); err != nil {
			return err
		}
		if also == nil {
			return nil
		}
		return also(tx, c)
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no certificate with serial %x: %w", serial, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("revoking %x: %w", serial, err)
	}
	a.log.Info("revoked", "serial", c.SerialHex(), "issuer", c.Issuer, "reason", reason.String())
	a.emit(ctx, Event{Kind: EventRevoked, Cert: c})
	return c, nil
}

// checkRevoke applies Options.RevokeCheck.
func (a *Authority) checkRevoke(tx *store.Tx, c *store.Cert) error {
	if a.opts.RevokeCheck == nil {
		return nil
	}
	if err := a.opts.RevokeCheck(tx, c); err != nil {
		return refusedError{err}
	}
	return nil
}

// refusedError is both ErrRefused and ErrBadRequest, so a caller that only
// knows the latter (the RA workflow) still fails the request cleanly
// instead of retrying it.
type refusedError struct{ err error }

func (e refusedError) Error() string        { return "revocation refused: " + e.err.Error() }
func (e refusedError) Unwrap() error        { return e.err }
func (e refusedError) Is(target error) bool { return target == ErrRefused || target == ErrBadRequest }

// Cert reads one certificate by serial.
func (a *Authority) Cert(ctx context.Context, serial []byte) (*store.Cert, error) {
	var c *store.Cert
	err := a.store.View(ctx, func(tx *store.Tx) error {
		var err error
		c, err = tx.Cert(serial)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no certificate with serial %x: %w", serial, ErrNotFound)
	}
	return c, err
}
