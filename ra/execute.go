package ra

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

// ---- execution ----

// Execute carries out request id, approved and waiting in its execution
// state (steps.go's executes): it issues or revokes through the Authority
// and records the outcome. A request in any other state is returned as it
// is. If another executor holds the request, Execute waits for it and
// returns its outcome.
func (r *RA) Execute(ctx context.Context, id string) (*store.RARequest, error) {
	return r.execute(ctx, id, true)
}

// execute carries out an approved request: issue (or renew) through the
// Authority, or revoke. A request left issuing or revoking by a crash or a
// CA error is finished by Repair; the serial to sign is recorded in the
// request before the Authority is called, so a certificate issued whose
// request record was not yet updated is found by that serial and adopted,
// not issued twice. Failures count against ra.max_attempts.
//
// Only the holder of the request's claim executes it; with wait, execute
// waits for another executor to finish and then sees its outcome, without,
// it returns errClaimed. It runs detached from ctx's cancellation, under
// Options.ExecuteTimeout: an approver whose client disconnects after the
// Authority committed must not leave the request issuing until Repair.
func (r *RA) execute(ctx context.Context, id string, wait bool) (*store.RARequest, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.ExecuteTimeout)
	defer cancel()
	release, err := r.executing.acquire(ctx, id, wait)
	if err != nil {
		return nil, fmt.Errorf("claiming request %s: %w", id, err)
	}
	defer release()
	// Read the state only now, under the claim: a previous executor may
	// have finished the request since the caller saw it.
	var rq *store.RARequest
	var org *store.Org
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if rq, err = tx.RARequest(id); err != nil {
			return err
		}
		org, err = tx.Org(rq.OrgID)
		return err
	}); err != nil {
		return nil, err
	}
	switch rq.State {
	case StateIssuing:
		return r.issue(ctx, rq, org)
	case StateRevoking:
		return r.revoke(ctx, rq)
	case StateGranting:
		return r.grantAccess(ctx, rq)
	case StateEscrowing:
		return r.issueEncryption(ctx, rq)
	case StateRecovering:
		return r.recoverKey(ctx, rq)
	case StateAuthorising:
		return r.authorise(ctx, rq)
	case StateReplacing:
		return r.replace(ctx, rq)
	}
	return rq, nil
}

func (r *RA) issue(ctx context.Context, rq *store.RARequest, org *store.Org) (*store.RARequest, error) {
	var cert *store.Cert
	if len(rq.SigningSerial) == 0 {
		// A request left issuing by a version that did not reserve its
		// serial may have a certificate already: find it by subscriber.
		if rq.SubscriberID != "" {
			var err error
			if cert, err = r.adopt(ctx, rq); err != nil {
				return nil, err
			}
		}
		if cert == nil {
			var err error
			if rq, err = r.reserveSerial(ctx, rq); err != nil {
				return nil, err
			}
			if rq.State != StateIssuing {
				return rq, nil
			}
		}
	}
	if cert == nil {
		// The serial was recorded before any signature: a certificate with
		// it is this request's, signed by an execution whose answer was
		// lost, and is adopted instead of signing again.
		c, err := r.issuedWith(ctx, rq)
		if err != nil {
			return r.fail(ctx, rq, err.Error())
		}
		cert = c
	}
	if cert == nil {
		csr, err := x509.ParseCertificateRequest(rq.CSR)
		if err != nil {
			return r.fail(ctx, rq, fmt.Sprintf("stored CSR does not parse: %v", err))
		}
		subj := r.certSubject(rq.Person, org)
		ir := ca.IssueRequest{CSR: csr, Profile: rq.Profile, Subject: &subj, SubscriberID: rq.SubscriberID, NotAfter: r.notAfter(rq), Serial: rq.SigningSerial}
		if rq.Kind == KindRenew {
			// A renewal keeps the subject of the certificate it renews.
			ir.Subject = nil
			if old, err := x509ParseStored(ctx, r.st, rq.TargetSerial); err == nil {
				ir.Subject = &old.Subject
				ir.EmailAddresses = old.EmailAddresses
			}
		}
		if rq.Person.Email != "" && ir.EmailAddresses == nil {
			ir.EmailAddresses = []string{rq.Person.Email}
		}
		cert, err = r.auth.Issue(ctx, ir)
		if errors.Is(err, ca.ErrBadRequest) {
			// The CA refused what it was asked (a CSR it no longer accepts,
			// a validity ending before it begins): retrying cannot help, so
			// the request fails with the CA's reason.
			return r.fail(ctx, rq, "the CA refused the request: "+err.Error())
		}
		if err != nil {
			// The answer may have been lost after the commit.
			if c, lookErr := r.issuedWith(ctx, rq); lookErr == nil && c != nil {
				cert = c
			} else {
				return r.attemptFailed(ctx, rq, fmt.Errorf("issuing for request %s: %w", rq.ID, err))
			}
		}
	}
	notification := ""
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		notification = ""
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		if cur.State != StateIssuing {
			rq = cur
			return nil
		}
		rq = cur
		rq.Serial = cert.Serial
		if err := r.move(rq, StateIssued, "system", "issue", "certificate "+cert.SerialHex()); err != nil {
			return err
		}
		if err := tx.PutOrgCert(rq.OrgID, cert.Serial); err != nil {
			return err
		}
		// A certificate administrator's credential has no subscriber: the
		// administrator record, not a subscriber, holds it.
		if rq.SubscriberID != "" {
			sub := &store.Subscriber{ID: rq.SubscriberID, CommonName: cert.CommonName, Email: rq.Person.Email, UID: rq.Person.UID,
				Organization: org.Name, OrgUnit: rq.Person.OrgUnit, SerialNumber: rq.Person.SerialNumber, CreatedAt: r.now().UTC()}
			if old, err := tx.Subscriber(rq.SubscriberID); err == nil {
				sub.CreatedAt = old.CreatedAt
			}
			if err := tx.PutSubscriber(sub); err != nil {
				return err
			}
		}
		details := map[string]string{"serial": cert.SerialHex(), "subject": cert.Subject, "profile": cert.Profile}
		if rq.Kind == KindRenew {
			if err := r.supersede(tx, rq, cert); err != nil {
				return err
			}
			token, err := r.newDownload(tx, rq, cert)
			if err != nil {
				return err
			}
			if notification, err = r.queueRenewed(tx, rq, cert, token); err != nil {
				return err
			}
			details["renews"] = hex.EncodeToString(rq.TargetSerial)
			if err := r.tokenFollowsRenewal(tx, rq, cert); err != nil {
				return err
			}
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "ra.issue", Object: "request/" + rq.ID, Details: details})
	})
	if err != nil {
		return r.attemptFailed(ctx, rq, fmt.Errorf("recording issuance of request %s: %w", rq.ID, err))
	}
	if notification != "" && !r.noChannel() {
		if _, err := r.deliverNotification(ctx, notification); err != nil {
			r.log.Error("delivering renewal notification; it is retried from the outbox", "notification", notification, "err", err)
		}
	}
	return rq, nil
}

// supersede records, in the transaction that records the renewal, that the
// renewed certificate replaces the old one; an administrator's renewed
// credential authenticates the same administrator.
func (r *RA) supersede(tx *store.Tx, rq *store.RARequest, cert *store.Cert) error {
	if err := tx.PutSupersededBy(rq.TargetSerial, cert.Serial); err != nil {
		return err
	}
	adm, err := tx.CertAdminByCert(rq.TargetSerial)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	adm.CertSerials = append(adm.CertSerials, cert.Serial)
	return tx.PutCertAdmin(adm)
}

// reserveSerial chooses the serial rq will be signed with and records it in
// its own transaction, before anything is signed, unless the request has
// left its execution state or has a serial already (another attempt).
// Issuance, encryption certificates and USBKey replacements all use it.
func (r *RA) reserveSerial(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	serial, err := ca.NewSerial()
	if err != nil {
		return nil, err
	}
	state := rq.State
	err = r.update(ctx, func(tx *store.Tx, _ func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != state || len(rq.SigningSerial) > 0 {
			return nil
		}
		rq.SigningSerial = serial
		return r.put(tx, rq)
	})
	if err != nil {
		return nil, fmt.Errorf("recording the serial of request %s: %w", rq.ID, err)
	}
	return rq, nil
}

// issuedWith returns the certificate already signed with rq's recorded
// serial, or nil. One that is not the request's (another subscriber or
// profile) is an error: the request must not adopt it.
func (r *RA) issuedWith(ctx context.Context, rq *store.RARequest) (*store.Cert, error) {
	var c *store.Cert
	err := r.st.View(ctx, func(tx *store.Tx) error {
		var err error
		c, err = tx.Cert(rq.SigningSerial)
		if errors.Is(err, store.ErrNotFound) {
			c = nil
			return nil
		}
		return err
	})
	if err != nil || c == nil {
		return nil, err
	}
	if c.SubscriberID != rq.SubscriberID || c.Profile != rq.Profile {
		return nil, fmt.Errorf("serial %x recorded for request %s belongs to another certificate (%s, %s)", rq.SigningSerial, rq.ID, c.Profile, c.SubscriberID)
	}
	return c, nil
}

// attemptFailed counts a failed execution of rq. Below ra.max_attempts it
// returns cause, and Repair tries again; at the bound the request fails,
// with cause as its error, and is returned without an error.
func (r *RA) attemptFailed(ctx context.Context, rq *store.RARequest, cause error) (*store.RARequest, error) {
	failed := false
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		if cur.State != rq.State {
			return nil
		}
		rq = cur
		rq.Attempts++
		rq.LastError = cause.Error()
		if rq.Attempts >= r.cfg.MaxAttempts {
			failed = true
			why := fmt.Sprintf("gave up after %d attempts: %v", rq.Attempts, cause)
			if err := r.move(rq, StateFailed, "system", "fail", why); err != nil {
				return err
			}
			if err := r.put(tx, rq); err != nil {
				return err
			}
			return log(audit.Record{Actor: "system", Action: "ra.fail", Object: "request/" + rq.ID, Details: map[string]string{"reason": why}})
		}
		return r.put(tx, rq)
	})
	if err != nil {
		return nil, fmt.Errorf("%w (and counting the attempt failed: %v)", cause, err)
	}
	if failed {
		r.log.Error("request failed after repeated attempts", "request", rq.ID, "attempts", rq.Attempts, "err", cause)
		return rq, nil
	}
	return nil, cause
}

// notAfter is the end of validity the request asked for, counted from its
// issuance now; zero leaves the profile's validity.
func (r *RA) notAfter(rq *store.RARequest) time.Time {
	days := rq.ValidDays
	if days == 0 && !rq.NotAfter.IsZero() {
		// A request stored before ValidDays carries the absolute notAfter
		// its submission computed; recover the days it asked for.
		days = max(1, int(math.Round(rq.NotAfter.Sub(rq.ReceivedAt).Hours()/24)))
	}
	if days <= 0 {
		return time.Time{}
	}
	return r.now().Add(time.Duration(days) * 24 * time.Hour).UTC()
}

// adopt finds a certificate issued for rq before a crash kept the request
// from recording it: same subscriber and profile, issued after the request
// entered issuing, and claimed by no organisation yet.
func (r *RA) adopt(ctx context.Context, rq *store.RARequest) (*store.Cert, error) {
	since := rq.History[len(rq.History)-1].At.Add(-time.Second)
	var found *store.Cert
	err := r.st.View(ctx, func(tx *store.Tx) error {
		return tx.CertsBySubscriber(rq.SubscriberID, func(c *store.Cert) error {
			if c.Profile != rq.Profile || c.IssuedAt.Before(since) {
				return nil
			}
			if _, err := tx.CertOrg(c.Serial); err == nil {
				return nil
			}
			found = c
			return nil
		})
	})
	return found, err
}

func (r *RA) fail(ctx context.Context, rq *store.RARequest, why string) (*store.RARequest, error) {
	err := r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		rq.LastError = why
		if err := r.move(rq, StateFailed, "system", "fail", why); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "ra.fail", Object: "request/" + rq.ID, Details: map[string]string{"reason": why}})
	})
	return rq, err
}

func (r *RA) revoke(ctx context.Context, rq *store.RARequest) (*store.RARequest, error) {
	note := ""
	_, err := r.auth.Revoke(ctx, rq.TargetSerial, ca.Reason(rq.Reason))
	switch {
	case errors.Is(err, store.ErrAlreadyRevoked):
		note = " (it was already revoked)"
	case errors.Is(err, ca.ErrNotFound), errors.Is(err, ca.ErrBadRequest):
		return r.fail(ctx, rq, err.Error())
	case err != nil:
		return r.attemptFailed(ctx, rq, fmt.Errorf("revoking for request %s: %w", rq.ID, err))
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(rq.ID)
		if err != nil {
			return err
		}
		rq = cur
		if rq.State != StateRevoking {
			return nil
		}
		reason := ca.Reason(rq.Reason).String()
		if err := r.move(rq, StateRevoked, "system", "revoke", "certificate "+hex.EncodeToString(rq.TargetSerial)+" revoked: "+reason+note); err != nil {
			return err
		}
		if err := r.tokenFollowsRevocation(tx, rq); err != nil {
			return err
		}
		if err := r.put(tx, rq); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "cert.revoke", Object: "cert/" + hex.EncodeToString(rq.TargetSerial), Details: map[string]string{
			"request": rq.ID, "cause": rq.Cause, "reason": reason}})
	})
	if err != nil {
		return nil, fmt.Errorf("recording revocation of request %s: %w", rq.ID, err)
	}
	return rq, nil
}

// Repair finishes requests a crash, a CA outage or a failed write left
// issuing or revoking, and revokes the old certificates of delivered
// renewals the policy retires. It reads the store's dirty index
// (store.DirtyRA), which put keeps in the transaction of every request
// write, so it costs what is in flight, not the number of requests; a
// store written before the index is walked once. It skips a request
// another executor (the approval that completed it) is carrying out right
// now.
func (r *RA) Repair(ctx context.Context) {
	ids, retire, err := r.inFlight(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("finding requests left in flight", "err", err)
		}
		return
	}
	for _, id := range retire {
		r.retire(ctx, id)
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		rq, err := r.execute(ctx, id, false)
		switch {
		case errors.Is(err, errClaimed):
			r.log.Debug("request is being executed; not repairing it", "request", id)
		case err != nil:
			r.log.Error("repairing request", "request", id, "err", err)
		default:
			r.log.Info("finished request left in flight", "request", id, "state", rq.State)
		}
	}
}

// pending says whether rq has work Repair must finish.
func (r *RA) pending(rq *store.RARequest) bool {
	return isExecution(rq.State) || r.mustRetire(rq)
}

// put writes rq and keeps its dirty mark in the same transaction: marked
// while it is pending, cleared once it is not.
func (r *RA) put(tx *store.Tx, rq *store.RARequest) error {
	if err := tx.PutRARequest(rq); err != nil {
		return err
	}
	if r.pending(rq) {
		return tx.MarkDirty(store.DirtyRA, rq.ID)
	}
	return tx.ClearDirty(store.DirtyRA, rq.ID)
}

// inFlight lists the requests to execute and the renewals to retire: from
// the dirty index, or, the first time on a store without it, from a walk
// of every request that also writes the index.
func (r *RA) inFlight(ctx context.Context) (ids, retire []string, err error) {
	classify := func(rq *store.RARequest) {
		if isExecution(rq.State) {
			ids = append(ids, rq.ID)
		}
		if r.mustRetire(rq) {
			retire = append(retire, rq.ID)
		}
	}
	err = r.st.Update(ctx, func(tx *store.Tx) error {
		ids, retire = nil, nil
		indexed, err := tx.DirtyIndexed(store.DirtyRA)
		if err != nil {
			return err
		}
		if !indexed {
			var pending []*store.RARequest
			if err := tx.EachRARequest(func(rq *store.RARequest) error {
				if r.pending(rq) {
					pending = append(pending, rq)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, rq := range pending {
				classify(rq)
				if err := tx.MarkDirty(store.DirtyRA, rq.ID); err != nil {
					return err
				}
			}
			return tx.SetDirtyIndexed(store.DirtyRA)
		}
		var marked []string
		if err := tx.EachDirty(store.DirtyRA, "", func(id string, _ []byte) error {
			marked = append(marked, id)
			return nil
		}); err != nil {
			return err
		}
		for _, id := range marked {
			rq, err := tx.RARequest(id)
			if errors.Is(err, store.ErrNotFound) {
				if err := tx.ClearDirty(store.DirtyRA, id); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			if !r.pending(rq) {
				// Its work finished in a write that did not go
				// through put (or the policy changed): the mark only
				// outlived it. Reading the request makes a concurrent
				// write conflict with this clear.
				if err := tx.ClearDirty(store.DirtyRA, id); err != nil {
					return err
				}
				continue
			}
			classify(rq)
		}
		return nil
	})
	return ids, retire, err
}

// mustRetire says whether rq is a delivered renewal whose old certificate
// the policy revokes and that is not revoked yet.
func (r *RA) mustRetire(rq *store.RARequest) bool {
	return rq.Kind == KindRenew && rq.State == StateDelivered && !rq.OldRevoked && r.cfg.SupersedePolicy == "revoke"
}

// retire revokes, as superseded, the certificate a delivered renewal
// replaced. A failure leaves the request to Repair.
func (r *RA) retire(ctx context.Context, id string) {
	var rq *store.RARequest
	if err := r.st.View(ctx, func(tx *store.Tx) (err error) { rq, err = tx.RARequest(id); return err }); err != nil {
		r.log.Error("reading renewal to retire its old certificate", "request", id, "err", err)
		return
	}
	if !r.mustRetire(rq) {
		return
	}
	_, err := r.auth.Revoke(ctx, rq.TargetSerial, ca.ReasonSuperseded)
	if err != nil && !errors.Is(err, store.ErrAlreadyRevoked) && !errors.Is(err, ca.ErrNotFound) {
		r.log.Error("revoking superseded certificate; Repair retries", "request", id, "serial", hex.EncodeToString(rq.TargetSerial), "err", err)
		return
	}
	err = r.update(ctx, func(tx *store.Tx, log func(audit.Record) error) error {
		cur, err := tx.RARequest(id)
		if err != nil {
			return err
		}
		if cur.OldRevoked {
			return nil
		}
		cur.OldRevoked = true
		if err := r.put(tx, cur); err != nil {
			return err
		}
		return log(audit.Record{Actor: "system", Action: "cert.revoke", Object: "cert/" + hex.EncodeToString(cur.TargetSerial), Details: map[string]string{
			"request": cur.ID, "reason": ca.ReasonSuperseded.String(), "superseded_by": hex.EncodeToString(cur.Serial)}})
	})
	if err != nil {
		r.log.Error("recording the superseded certificate's revocation", "request", id, "err", err)
	}
}

// ---- downloads ----

type download struct {
	Serial  string    `json:"serial"`
	Request string    `json:"request"`
	Expires time.Time `json:"expires"`
}

const nsDownload = "ra-download"

func (r *RA) newDownload(tx *store.Tx, rq *store.RARequest, c *store.Cert) (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b[:])
	v, _ := json.Marshal(download{Serial: c.SerialHex(), Request: rq.ID, Expires: r.now().Add(r.cfg.DownloadTTL.D()).UTC()})
	return token, tx.PutBlob(nsDownload, token, v)
}

func (r *RA) downloadURL(token string) string {
	return strings.TrimRight(r.cfg.DownloadBaseURL, "/") + "/api/v1/downloads/" + token
}

func x509ParseStored(ctx context.Context, st *store.Store, serial []byte) (*x509.Certificate, error) {
	var der []byte
	err := st.View(ctx, func(tx *store.Tx) error {
		c, err := tx.Cert(serial)
		if err == nil {
			der = c.DER
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
