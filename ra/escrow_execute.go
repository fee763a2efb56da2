package ra

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Execution of approved escrow requests (escrow.go).

// issueEncryption executes an approved encryption certificate request: the
// serial is recorded first, the key escrowed under it, then certified. A
// retry after a crash finds the escrowed key (and the certificate) by the
// serial and neither makes a second key nor signs twice.
func (r *RA) issueEncryption(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	if err := r.needEscrow(); err != nil {
		return nil, err
	}
	if len(rq.SigningSerial) == 0 {
		var err error
		if rq, err = r.reserveSerial(ctx, rq); err != nil {
			return nil, err
		}
		if rq.State != StateEscrowing {
			return rq, nil
		}
	}
	cert, err := r.issuedWith(ctx, rq)
	if err != nil {
		return r.fail(ctx, rq, err.Error())
	}
	if cert == nil {
		signing, err := x509ParseStored(ctx, r.st, rq.TargetSerial)
		if err != nil {
			return r.fail(ctx, rq, fmt.Sprintf("reading the signing certificate %x: %v", rq.TargetSerial, err))
		}
		// The pair is the person's only while the signing certificate is
		// valid: one revoked since the request is not paired with.
		var revoked bool
		if err := r.st.View(ctx, func(tx *store.Tx) error {
			c, err := tx.Cert(rq.TargetSerial)
			revoked = err == nil && c.Status == store.StatusRevoked
			return err
		}); err != nil {
			return r.attemptFailed(ctx, rq, fmt.Errorf("reading the signing certificate of request %s: %w", rq.ID, err))
		}
		if revoked || r.now().After(signing.NotAfter) {
			return r.fail(ctx, rq, fmt.Sprintf("the signing certificate %x was revoked or expired since the request", rq.TargetSerial))
		}
		pub, err := r.opts.Escrow.Generate(ctx, rq.SigningSerial, signer.Algorithm(rq.Escrow.Algorithm), rq.TargetSerial, rq.ID)
		if err != nil {
			return r.attemptFailed(ctx, rq, fmt.Errorf("escrowing the key of request %s: %w", rq.ID, err))
		}
		ir := ca.IssueRequest{Profile: ca.ProfilePersonalEncryption, PublicKey: pub, Subject: &signing.Subject, EmailAddresses: signing.EmailAddresses,
			SubscriberID: rq.SubscriberID, NotAfter: signing.NotAfter, Serial: rq.SigningSerial}
		cert, err = r.auth.Issue(ctx, ir)
		if errors.Is(err, ca.ErrBadRequest) {
			return r.fail(ctx, rq, "the CA refused the request: "+err.Error())
		}
		if err != nil {
			if c, lookErr := r.issuedWith(ctx, rq); lookErr == nil && c != nil {
				cert = c
			} else {
				return r.attemptFailed(ctx, rq, fmt.Errorf("issuing for request %s: %w", rq.ID, err))
			}
		}
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateEscrowing {
			return nil
		}
		rq.Serial = cert.Serial
		if err := r.move(rq, StateIssued, "system", "issue", "encryption certificate "+cert.SerialHex()+", key escrowed"); err != nil {
			return err
		}
		if err := tx.PutOrgCert(rq.OrgID, cert.Serial); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "ra.issue", Object: "request/" + rq.ID, Details: map[string]string{
			"serial": cert.SerialHex(), "subject": cert.Subject, "profile": cert.Profile, "paired_with": hex.EncodeToString(rq.TargetSerial), "key": "escrowed"}})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("recording issuance of request %s: %w", rq.ID, err))
	}
	return rq, nil
}

// recoverKey executes an approved recovery: the key must still unwrap;
// it is packaged only when its one-time link is used.
func (r *RA) recoverKey(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	if err := r.needEscrow(); err != nil {
		return nil, err
	}
	if err := r.opts.Escrow.Check(ctx, rq.TargetSerial); err != nil {
		if errors.Is(err, ErrNoEscrowedKey) || errors.Is(err, ErrEscrowDamaged) {
			return r.fail(ctx, rq, err.Error())
		}
		return r.attemptFailed(ctx, rq, fmt.Errorf("checking the escrowed key of request %s: %w", rq.ID, err))
	}
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateRecovering {
			return nil
		}
		if err := r.move(rq, StateRecovered, "system", "recover", "key of certificate "+hex.EncodeToString(rq.TargetSerial)+" recovered; released through a one-time link"); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		details := map[string]string{"request": rq.ID, "judicial": strconv.FormatBool(rq.Escrow.Judicial), "approvers": approvers(rq)}
		if rq.Escrow.Judicial {
			details["case_reference"] = rq.Escrow.CaseReference
		}
		return log(audit.Record{Actor: "system", Action: "escrow.recover", Object: "certificate/" + hex.EncodeToString(rq.TargetSerial), Details: details})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("recording recovery of request %s: %w", rq.ID, err))
	}
	return rq, nil
}

func approvers(rq *store.RARequest) string {
	var a []string
	for _, s := range rq.Steps {
		for _, x := range s.Approvals {
			a = append(a, x.Actor)
		}
	}
	return strings.Join(a, ",")
}
