package ra

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

// escrowRecoverer recovers the encryption keys of a replaced USBKey through
// the RA's own key escrow (SPEC Art. 25 with Art. 13). Each key becomes a
// key_recovery request, recovered at once because the replacement it comes
// from was confirmed by a support engineer; the organisation's certificate
// administrator (or an RA officer) releases it once through that request's
// one-time link, enveloped to the new signing certificate when its key is
// RSA (CMS), else as PKCS#12 under a one-time password — the same delivery
// as any recovery, so nothing of the key is written but its wrapped record.
type escrowRecoverer struct{ r *RA }

func (e escrowRecoverer) RecoverOnto(ctx context.Context, requestID string, enc, signing *store.Cert) (string, error) {
	r := e.r
	serialHex := hex.EncodeToString(enc.Serial)
	if err := r.opts.Escrow.Check(ctx, enc.Serial); err != nil {
		if errors.Is(err, ErrNoEscrowedKey) {
			// Issued before escrow, or elsewhere: nothing to recover, and no
			// reason to hold up the new token.
			return fmt.Sprintf("encryption certificate %s has no escrowed key; not recovered", serialHex), nil
		}
		return "", fmt.Errorf("checking the escrowed key of %s: %w", serialHex, err)
	}
	format, recipient := "pkcs12", []byte(nil)
	if x, err := x509.ParseCertificate(signing.DER); err == nil && cmsRecipient(x) == nil {
		format, recipient = "cms", signing.Serial
	}
	id := requestID + "-key-" + serialHex
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		if _, err := tx.RARequest(id); err == nil {
			return nil // recovered by an earlier attempt of this replacement
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		parent, err := tx.RARequest(requestID)
		if err != nil {
			return err
		}
		now := r.now().UTC()
		rq := &store.RARequest{
			ID: id, Kind: KindKeyRecovery, OrgID: parent.OrgID, Profile: enc.Profile, Subject: enc.Subject,
			TargetSerial: enc.Serial, SubscriberID: enc.SubscriberID, SubmittedBy: "request/" + requestID,
			ReceivedAt: now, CAReceivedAt: now, State: StateRecovered, DoneAt: now,
			Escrow: &store.RAEscrow{Format: format, Recipient: recipient, Reason: "USBKey replacement " + requestID},
			History: []store.RAAction{{Actor: "system", Action: "recover", State: StateRecovered, At: now,
				Comment: "key of certificate " + serialHex + " recovered for the replacing USBKey of request " + requestID + "; released through a one-time link"}},
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "escrow.recover", Object: "certificate/" + serialHex,
			Details: map[string]string{"request": id, "replacement": requestID, "format": format, "recipient": hex.EncodeToString(recipient)}})
	})
	if err != nil {
		return "", fmt.Errorf("recording the recovery of %s: %w", serialHex, err)
	}
	return fmt.Sprintf("key of %s recovered as request %s: release it once with POST /api/v1/requests/%s/key-link (%s)", serialHex, id, id, format), nil
}
