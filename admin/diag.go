package admin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// Diagnostics is where a certificate stands everywhere it is served: the
// store, the OCSP responder, the CRLs, our directory and the publishing
// targets. The hotline opens it when a hospital says a certificate "cannot
// be found" or "does not verify". admin imports none of the features: each
// is read through a function that server wires (nil: not served here).
type Diagnostics struct {
	// OCSP reports the response served now for a certificate.
	OCSP func(ctx context.Context, c *store.Cert) (OCSPState, error)
	// CRLs reports the current user-certificate CRLs of an issuer and which
	// of serials each covers and lists, in one pass per CRL.
	CRLs func(ctx context.Context, issuer string, serials [][]byte) ([]CRLListing, error)
	// Directory reports a certificate's entry in our LDAP directory; nil
	// when the directory is not served.
	Directory func(ctx context.Context, c *store.Cert) (DirectoryState, error)
	// Targets reports the external publishing targets; nil until the
	// publisher is wired, which shows as no targets.
	Targets TargetStates
	// DeltaDelay is crl.delta_delay: a revocation older than it (plus
	// CRLGrace) must be on a CRL.
	DeltaDelay time.Duration
	// Token reports the USBKey a certificate's key is on (package token);
	// nil, or a nil state, shows no token.
	Token func(ctx context.Context, c *store.Cert) (*TokenState, error)
}

// TokenState is the USBKey holding a certificate's key.
type TokenState struct {
	Serial string `json:"serial"`
	Model  string `json:"model"`
	State  string `json:"state"`
	Holder string `json:"holder,omitempty"`
	Org    string `json:"org,omitempty"`
}

// CRLGrace is the time a CRL rebuild is given beyond crl.delta_delay before
// a revocation missing from the CRLs is a problem: the full CRL of a million
// entries takes seconds to build.
const CRLGrace = time.Minute

// OCSPState is the OCSP response served now for a certificate.
type OCSPState struct {
	// Source is cache, store, or live (no current stored response: a
	// request would be signed live).
	Source     string    `json:"source"`
	Status     string    `json:"status"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Reason     string    `json:"reason,omitempty"`
	ProducedAt time.Time `json:"produced_at"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	// ResponderSerial signed the response; CurrentResponderSerial is the
	// issuer's responder certificate now.
	ResponderSerial        string `json:"responder_serial,omitempty"`
	CurrentResponderSerial string `json:"current_responder_serial,omitempty"`
	// SignedForUpdate is the certificate's last change the response was
	// signed for.
	SignedForUpdate time.Time `json:"signed_for_update,omitzero"`
	// Invalid says why the response does not parse or verify.
	Invalid string `json:"invalid,omitempty"`
}

// CRLListing is one current CRL of an issuer and, per serial asked about,
// whether its scope covers it and whether it lists it.
type CRLListing struct {
	File       string
	Delta      bool
	Number     uint64
	BaseNumber uint64
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int
	Covers     []bool
	Lists      []bool
	Err        string
}

// CRLState is one CRL as the diagnosis of one certificate shows it.
type CRLState struct {
	File       string    `json:"file"`
	Delta      bool      `json:"delta"`
	Number     uint64    `json:"number,omitempty"`
	BaseNumber uint64    `json:"base_number,omitempty"`
	ThisUpdate time.Time `json:"this_update,omitzero"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	Entries    int       `json:"entries"`
	Listed     bool      `json:"listed"`
	Error      string    `json:"error,omitempty"`
}

// DirectoryState is a certificate's entry in our directory.
type DirectoryState struct {
	DN string `json:"dn,omitempty"`
	// Published: userCertificate;binary of the entry holds the certificate.
	Published bool `json:"published"`
	// Expected: by the ldap.include_* policy it should; Why says why not.
	Expected bool   `json:"expected"`
	Why      string `json:"why,omitempty"`
}

// TargetStates is what diagnostics need of the publisher of external
// directories (issue #13's publish package, wired by server).
type TargetStates interface {
	// Targets lists the targets and their delivery state.
	Targets(ctx context.Context) ([]TargetState, error)
	// CertStatuses says, per certificate and target, where each of the
	// certificates stands (one answer per serial, in order).
	CertStatuses(ctx context.Context, serials [][]byte) ([][]TargetCertState, error)
}

// TargetState is one publishing target.
type TargetState struct {
	Name          string    `json:"name"`
	URL           string    `json:"url,omitempty"`
	Connected     bool      `json:"connected"`
	Paused        bool      `json:"paused"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	Pending       int       `json:"pending"`
	OldestPending time.Time `json:"oldest_pending,omitzero"`
	Delivered     uint64    `json:"delivered"`
	// Failed counts records the target refused one by one (retried with
	// backoff, not holding back the others); FailedRecords are the oldest.
	Failed        int            `json:"failed"`
	FailedRecords []FailedRecord `json:"failed_records,omitempty"`
	// Resyncing: a resync was requested and has not finished; LastResync
	// is what the last one found and repaired.
	Resyncing  bool          `json:"resyncing"`
	LastResync *ResyncReport `json:"last_resync,omitempty"`
}

// ResyncReport is what a target's resync found (by reading the target
// back) and repaired.
type ResyncReport struct {
	Started     time.Time `json:"started"`
	Finished    time.Time `json:"finished"`
	Entries     int       `json:"entries"`
	Unchanged   int       `json:"unchanged"`
	Added       int       `json:"added"`
	Replaced    int       `json:"replaced"`
	Removed     int       `json:"removed"`
	AbsentCerts int       `json:"absent_certs"`
	Failed      int       `json:"failed"`
}

// FailedRecord is one record a target refused.
type FailedRecord struct {
	// Key is cert/<serial>, crl/<file> or ca/<name>.
	Key       string    `json:"key"`
	DN        string    `json:"dn,omitempty"`
	Error     string    `json:"error"`
	Since     time.Time `json:"since"`
	Tries     int       `json:"tries"`
	NextRetry time.Time `json:"next_retry"`
}

// Target certificate states (TargetCertState.State).
const (
	TargetPublished = "published"
	TargetPending   = "pending"
	TargetFailed    = "failed"
	TargetAbsent    = "absent"
)

// TargetCertState is where one certificate stands on one target.
type TargetCertState struct {
	Target      string    `json:"target"`
	State       string    `json:"state"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	Error       string    `json:"error,omitempty"`
	ErrorAt     time.Time `json:"error_at,omitzero"`
	// DN is the certificate's entry on the target.
	DN string `json:"dn,omitempty"`
	// AbsentAtCheck is when the last resync read the target and did not
	// find the certificate in its entry.
	AbsentAtCheck time.Time `json:"absent_at_check,omitzero"`
	// NextRetry is when a failed delivery is tried again.
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// noTargetsNote says why a diagnosis lists no targets.
const noTargetsNote = "no publishing targets are configured (publish.targets)"

// Problem is one inconsistency a diagnosis found.
type Problem struct {
	// Where is ocsp, crl, directory or target.
	Where string `json:"where"`
	// Code is stable, for counting and scripts.
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CertDiagnosis is where one certificate stands everywhere.
type CertDiagnosis struct {
	Certificate CertView `json:"certificate"`
	// Updated is the certificate record's last change (issuance, revocation).
	Updated   time.Time       `json:"updated_at"`
	OCSP      *OCSPState      `json:"ocsp"`
	CRLs      []CRLState      `json:"crls"`
	Directory *DirectoryState `json:"directory"`
	// DirectoryNote says why Directory is null.
	DirectoryNote string            `json:"directory_note,omitempty"`
	Targets       []TargetCertState `json:"targets"`
	TargetsNote   string            `json:"targets_note,omitempty"`
	Problems      []Problem         `json:"problems"`
	CheckedAt     time.Time         `json:"checked_at"`

	// Token is the USBKey the certificate's key is on, if the inventory knows one.
	Token *TokenState `json:"token,omitempty"`
}

func (d *CertDiagnosis) problem(where, code, format string, a ...any) {
	d.Problems = append(d.Problems, Problem{Where: where, Code: code, Message: fmt.Sprintf(format, a...)})
}

// OrgDiagnosis is the state of an organisation's certificates: counts over
// all of them, and one page of those with a problem.
type OrgDiagnosis struct {
	Org    string          `json:"org"`
	Counts OrgCounts       `json:"counts"`
	Items  []CertDiagnosis `json:"items"`
	// Targets counts, per publishing target, where the organisation's
	// certificates stand, and names the first pending and failed ones.
	Targets []OrgTargetCounts `json:"targets"`
	// Next is the serial to pass as after for the next page.
	Next      string    `json:"next,omitempty"`
	CheckedAt time.Time `json:"checked_at"`
}

// OrgTargetCounts is where an organisation's certificates stand on one
// publishing target.
type OrgTargetCounts struct {
	Target       string `json:"target"`
	Published    int    `json:"published"`
	Pending      int    `json:"pending"`
	Failed       int    `json:"failed"`
	Absent       int    `json:"absent"`
	NotPublished int    `json:"not_published"`
	// PendingSerials and Failed lists name the first MaxOrgTargetSerials.
	PendingSerials []string       `json:"pending_serials,omitempty"`
	FailedItems    []OrgTargetErr `json:"failed_items,omitempty"`
}

// OrgTargetErr is one certificate a target refused.
type OrgTargetErr struct {
	Serial string    `json:"serial"`
	DN     string    `json:"dn,omitempty"`
	Error  string    `json:"error"`
	At     time.Time `json:"at,omitzero"`
}

// MaxOrgTargetSerials bounds the serials an organisation's target counts
// name.
const MaxOrgTargetSerials = 50

func (o *OrgDiagnosis) countTargets(serial string, ts []TargetCertState) {
	for _, t := range ts {
		var c *OrgTargetCounts
		for i := range o.Targets {
			if o.Targets[i].Target == t.Target {
				c = &o.Targets[i]
			}
		}
		if c == nil {
			o.Targets = append(o.Targets, OrgTargetCounts{Target: t.Target})
			c = &o.Targets[len(o.Targets)-1]
		}
		switch t.State {
		case TargetPublished:
			c.Published++
		case TargetPending:
			c.Pending++
			if len(c.PendingSerials) < MaxOrgTargetSerials {
				c.PendingSerials = append(c.PendingSerials, serial)
			}
		case TargetFailed:
			c.Failed++
			if len(c.FailedItems) < MaxOrgTargetSerials {
				c.FailedItems = append(c.FailedItems, OrgTargetErr{Serial: serial, DN: t.DN, Error: t.Error, At: t.ErrorAt})
			}
		case TargetAbsent:
			c.Absent++
		default:
			c.NotPublished++
		}
	}
}

// OrgCounts counts an organisation's certificates.
type OrgCounts struct {
	Certificates int `json:"certificates"`
	Valid        int `json:"valid"`
	Revoked      int `json:"revoked"`
	Expired      int `json:"expired"`
	WithProblems int `json:"with_problems"`
	// Problems counts problems by code.
	Problems map[string]int `json:"problems"`
}

// TargetsDiagnosis lists the publishing targets.
type TargetsDiagnosis struct {
	Targets   []TargetState `json:"targets"`
	Note      string        `json:"note,omitempty"`
	CheckedAt time.Time     `json:"checked_at"`
}

// Diagnoser makes diagnoses; it is the logic behind the diagnostics routes
// and needs no HTTP.
type Diagnoser struct {
	store *store.Store
	src   Diagnostics
	now   func() time.Time
}

// NewDiagnoser returns a Diagnoser over st; now defaults to time.Now.
func NewDiagnoser(st *store.Store, src Diagnostics, now func() time.Time) *Diagnoser {
	if now == nil {
		now = time.Now
	}
	return &Diagnoser{store: st, src: src, now: now}
}

// ErrNoSuchCert and ErrNoSuchOrg are returned (wrapped) for what the store
// does not hold.
var (
	ErrNoSuchCert = errors.New("no such certificate")
	ErrNoSuchOrg  = errors.New("no such organisation")
)

// certRecord is a certificate with what the view needs beside it.
type certRecord struct {
	c     *store.Cert
	org   string
	super []byte
}

func readCertRecord(tx *store.Tx, serial []byte) (*certRecord, error) {
	c, err := tx.Cert(serial)
	if err != nil {
		return nil, err
	}
	r := &certRecord{c: c}
	if r.org, err = tx.CertOrg(serial); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if r.super, err = tx.SupersededBy(serial); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return r, nil
}

// Cert diagnoses one certificate.
func (d *Diagnoser) Cert(ctx context.Context, serial []byte) (*CertDiagnosis, error) {
	var rec *certRecord
	err := d.store.View(ctx, func(tx *store.Tx) error {
		var err error
		rec, err = readCertRecord(tx, serial)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("diagnosing certificate %x: %w", serial, ErrNoSuchCert)
	}
	if err != nil {
		return nil, fmt.Errorf("diagnosing certificate %x: %w", serial, err)
	}
	out, err := d.diagnose(ctx, []*certRecord{rec})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// orgChunk is how many certificates an organisation's diagnosis reads and
// checks together (one CRL pass per chunk and issuer).
const orgChunk = 256

// Org diagnoses every certificate of an organisation (RA organisation ID)
// and returns the counts and the page of at most limit certificates with a
// problem whose serial is after after (nil: from the start), in serial
// order.
func (d *Diagnoser) Org(ctx context.Context, org string, limit int, after []byte) (*OrgDiagnosis, error) {
	if limit <= 0 {
		limit = 100
	}
	var serials [][]byte
	orgKnown := true
	err := d.store.View(ctx, func(tx *store.Tx) error {
		if _, err := tx.Org(org); errors.Is(err, store.ErrNotFound) {
			orgKnown = false
		} else if err != nil {
			return err
		}
		return tx.CertsByOrg(org, func(c *store.Cert) error {
			serials = append(serials, c.Serial)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing the certificates of organisation %s: %w", org, err)
	}
	if !orgKnown && len(serials) == 0 {
		return nil, fmt.Errorf("diagnosing organisation %q: %w", org, ErrNoSuchOrg)
	}
	out := &OrgDiagnosis{Org: org, Items: []CertDiagnosis{}, Targets: []OrgTargetCounts{}, Counts: OrgCounts{Problems: map[string]int{}}, CheckedAt: d.now().UTC()}
	for start := 0; start < len(serials); start += orgChunk {
		chunk := serials[start:min(start+orgChunk, len(serials))]
		var recs []*certRecord
		err := d.store.View(ctx, func(tx *store.Tx) error {
			for _, s := range chunk {
				r, err := readCertRecord(tx, s)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				recs = append(recs, r)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reading the certificates of organisation %s: %w", org, err)
		}
		diags, err := d.diagnose(ctx, recs)
		if err != nil {
			return nil, err
		}
		for i, dg := range diags {
			out.countTargets(dg.Certificate.Serial, dg.Targets)
			cnt := &out.Counts
			cnt.Certificates++
			switch dg.Certificate.Status {
			case "revoked":
				cnt.Revoked++
			case "expired":
				cnt.Expired++
			default:
				cnt.Valid++
			}
			if len(dg.Problems) == 0 {
				continue
			}
			cnt.WithProblems++
			for _, p := range dg.Problems {
				cnt.Problems[p.Code]++
			}
			if after != nil && bytes.Compare(recs[i].c.Serial, after) <= 0 {
				continue
			}
			if len(out.Items) < limit {
				out.Items = append(out.Items, *dg)
			} else if out.Next == "" {
				out.Next = out.Items[len(out.Items)-1].Certificate.Serial
			}
		}
	}
	return out, nil
}

// TargetList reports the publishing targets.
func (d *Diagnoser) TargetList(ctx context.Context) (*TargetsDiagnosis, error) {
	out := &TargetsDiagnosis{Targets: []TargetState{}, CheckedAt: d.now().UTC()}
	if d.src.Targets == nil {
		out.Note = noTargetsNote
		return out, nil
	}
	ts, err := d.src.Targets.Targets(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the publishing targets: %w", err)
	}
	out.Targets = append(out.Targets, ts...)
	return out, nil
}

// diagnose checks certificates; the CRLs are read once per issuer for all.
func (d *Diagnoser) diagnose(ctx context.Context, recs []*certRecord) ([]*CertDiagnosis, error) {
	now := d.now()
	out := make([]*CertDiagnosis, len(recs))
	byIssuer := map[string][]int{}
	targets, targetsErr := d.targetStatuses(ctx, recs)
	for i, r := range recs {
		c := r.c
		dg := &CertDiagnosis{
			Certificate: httpapi.ViewCert(c, httpapi.CertViewOptions{Now: now, Org: r.org, SupersededBy: r.super}),
			Updated:     c.UpdatedAt, CRLs: []CRLState{}, Targets: []TargetCertState{}, Problems: []Problem{}, CheckedAt: now.UTC(),
		}
		out[i] = dg
		byIssuer[c.Issuer] = append(byIssuer[c.Issuer], i)
		d.checkOCSP(ctx, dg, c, now)
		d.checkDirectory(ctx, dg, c)
		d.checkTargets(dg, targets, i, targetsErr)
		if d.src.Token != nil {
			if ts, err := d.src.Token(ctx, c); err != nil {
				dg.problem("token", "token_unavailable", "reading the USBKey inventory: %v", err)
			} else {
				dg.Token = ts
			}
		}
	}
	for issuer, idx := range byIssuer {
		if d.src.CRLs == nil {
			for _, i := range idx {
				out[i].problem("crl", "crl_unavailable", "the CRLs are not served by this instance")
			}
			continue
		}
		serials := make([][]byte, len(idx))
		for j, i := range idx {
			serials[j] = recs[i].c.Serial
		}
		ls, err := d.src.CRLs(ctx, issuer, serials)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			for _, i := range idx {
				out[i].problem("crl", "crl_unavailable", "reading the CRLs of %s: %v", issuer, err)
			}
			continue
		}
		for j, i := range idx {
			checkCRLs(out[i], recs[i].c, ls, j, now, d.src.DeltaDelay+CRLGrace)
		}
	}
	return out, nil
}

func (d *Diagnoser) checkOCSP(ctx context.Context, dg *CertDiagnosis, c *store.Cert, now time.Time) {
	if d.src.OCSP == nil {
		dg.problem("ocsp", "ocsp_unavailable", "the OCSP responder is not served by this instance")
		return
	}
	o, err := d.src.OCSP(ctx, c)
	if err != nil {
		dg.problem("ocsp", "ocsp_unavailable", "reading the OCSP response: %v", err)
		return
	}
	dg.OCSP = &o
	if o.Invalid != "" {
		dg.problem("ocsp", "ocsp_invalid", "the %s OCSP response is unusable: %s", o.Source, o.Invalid)
		return
	}
	want := "good"
	if c.Status == store.StatusRevoked {
		want = "revoked"
	}
	switch {
	case o.Status != want:
		dg.problem("ocsp", "ocsp_status", "the store says %s, the OCSP response (%s) says %s", c.Status, o.Source, o.Status)
	case want == "revoked" && !o.RevokedAt.Truncate(time.Second).Equal(c.RevokedAt.Truncate(time.Second)):
		dg.problem("ocsp", "ocsp_revocation_time", "revoked at %s, the OCSP response says %s", c.RevokedAt.UTC().Format(time.RFC3339), o.RevokedAt.UTC().Format(time.RFC3339))
	case !o.SignedForUpdate.IsZero() && o.SignedForUpdate.Before(c.UpdatedAt):
		dg.problem("ocsp", "ocsp_outdated", "the OCSP response was signed for the certificate as of %s, it changed at %s",
			o.SignedForUpdate.UTC().Format(time.RFC3339), c.UpdatedAt.UTC().Format(time.RFC3339))
	}
	if o.Source == "live" {
		if now.Before(c.NotAfter) {
			dg.problem("ocsp", "ocsp_not_presigned", "no current pre-signed OCSP response: requests are signed live (missing, expired or unreadable in the store)")
		}
		return
	}
	if half := o.ThisUpdate.Add(o.NextUpdate.Sub(o.ThisUpdate) / 2); !now.Before(half) {
		dg.problem("ocsp", "ocsp_half_life", "the OCSP response (thisUpdate %s, nextUpdate %s) is past half its validity: the refresher should have replaced it",
			o.ThisUpdate.UTC().Format(time.RFC3339), o.NextUpdate.UTC().Format(time.RFC3339))
	}
	if o.ResponderSerial != o.CurrentResponderSerial {
		dg.problem("ocsp", "ocsp_responder", "the OCSP response is signed by responder certificate %s, the current one is %s",
			o.ResponderSerial, o.CurrentResponderSerial)
	}
}

// checkCRLs fills the CRLs that cover the certificate (j-th of the
// listings' serials) and the problems they show.
func checkCRLs(dg *CertDiagnosis, c *store.Cert, ls []CRLListing, j int, now time.Time, grace time.Duration) {
	revoked := c.Status == store.StatusRevoked
	listed := false
	var fullMissing []string
	for _, l := range ls {
		if !l.Covers[j] {
			continue
		}
		st := CRLState{File: l.File, Delta: l.Delta, Number: l.Number, BaseNumber: l.BaseNumber, ThisUpdate: l.ThisUpdate,
			NextUpdate: l.NextUpdate, Entries: l.Entries, Listed: l.Lists[j], Error: l.Err}
		dg.CRLs = append(dg.CRLs, st)
		if l.Err != "" {
			dg.problem("crl", "crl_unreadable", "%s: %s", l.File, l.Err)
			continue
		}
		if !now.Before(l.NextUpdate) {
			dg.problem("crl", "crl_expired", "%s (CRL %d) expired at %s", l.File, l.Number, l.NextUpdate.UTC().Format(time.RFC3339))
		}
		switch {
		case st.Listed && !revoked:
			dg.problem("crl", "crl_lists_valid", "%s (CRL %d) lists the certificate, the store says it is %s", l.File, l.Number, c.Status)
		case st.Listed:
			listed = true
		case revoked && !l.Delta:
			fullMissing = append(fullMissing, fmt.Sprintf("%s (CRL %d, thisUpdate %s)", l.File, l.Number, l.ThisUpdate.UTC().Format(time.RFC3339)))
		}
	}
	if !revoked || now.Sub(c.RevokedAt) <= grace {
		return
	}
	switch {
	case !listed:
		dg.problem("crl", "crl_missing", "revoked at %s but on no CRL (crl.delta_delay plus %s have passed)", c.RevokedAt.UTC().Format(time.RFC3339), CRLGrace)
	case len(fullMissing) > 0:
		for _, f := range fullMissing {
			dg.problem("crl", "crl_full_missing", "revoked at %s, on the delta CRL but not on %s: clients that ignore delta CRLs accept it", c.RevokedAt.UTC().Format(time.RFC3339), f)
		}
	}
}

func (d *Diagnoser) checkDirectory(ctx context.Context, dg *CertDiagnosis, c *store.Cert) {
	if d.src.Directory == nil {
		dg.DirectoryNote = "the LDAP directory is not served by this instance"
		return
	}
	st, err := d.src.Directory(ctx, c)
	if err != nil {
		dg.problem("directory", "directory_unavailable", "reading the directory: %v", err)
		return
	}
	dg.Directory = &st
	switch {
	case st.Expected && st.DN == "":
		dg.problem("directory", "directory_no_entry", "subscriber %s has no directory entry", c.SubscriberID)
	case st.Expected && !st.Published:
		dg.problem("directory", "directory_missing", "the entry %s does not carry the certificate in userCertificate;binary", st.DN)
	case !st.Expected && st.Published:
		dg.problem("directory", "directory_unexpected", "the entry %s carries the certificate, but it should not (%s)", st.DN, st.Why)
	}
}

// targetStatuses asks the publisher about every certificate at once.
func (d *Diagnoser) targetStatuses(ctx context.Context, recs []*certRecord) ([][]TargetCertState, error) {
	if d.src.Targets == nil {
		return nil, nil
	}
	serials := make([][]byte, len(recs))
	for i, r := range recs {
		serials[i] = r.c.Serial
	}
	ts, err := d.src.Targets.CertStatuses(ctx, serials)
	if err == nil && len(ts) != len(recs) {
		err = fmt.Errorf("the publisher answered for %d certificates, asked about %d", len(ts), len(recs))
	}
	return ts, err
}

func (d *Diagnoser) checkTargets(dg *CertDiagnosis, all [][]TargetCertState, i int, err error) {
	if d.src.Targets == nil {
		dg.TargetsNote = noTargetsNote
		return
	}
	if err != nil {
		dg.problem("target", "target_unavailable", "reading the publishing state: %v", err)
		return
	}
	ts := all[i]
	dg.Targets = append(dg.Targets, ts...)
	for _, t := range ts {
		switch t.State {
		case TargetFailed:
			dg.problem("target", "target_failed", "%s: delivery failed: %s", t.Target, t.Error)
		case TargetAbsent:
			if !t.AbsentAtCheck.IsZero() {
				dg.problem("target", "target_absent", "%s: the resync check at %s did not find the certificate in %s; the repair is pending",
					t.Target, t.AbsentAtCheck.UTC().Format(time.RFC3339), t.DN)
				continue
			}
			dg.problem("target", "target_absent", "%s: the certificate is not on the target", t.Target)
		}
	}
}
