package server

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/crl"
	"github.com/certcenter/certcenter/directory"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/ocsp"
	"github.com/certcenter/certcenter/publish"
	"github.com/certcenter/certcenter/store"
)

// wireAdmin mounts the admin API. Its diagnostics read the OCSP responder,
// the CRL builder and the directory through the functions their wiring put
// in c.diag, and the publishing targets through the publisher (none when
// publish.targets is empty).
func wireAdmin(c *components) error {
	m, err := httpapi.NewMetrics(c.reg, "admin")
	if err != nil {
		return err
	}
	diag := c.diag
	diag.DeltaDelay = c.cfg.CRL.DeltaDelay.D()
	var control admin.TargetControl
	if c.publisher != nil {
		diag.Targets = publishTargets{c.publisher}
		control = publishControl{c.publisher}
	}
	admin.New(admin.Options{
		Store: c.core.store, Authority: c.core.ca, Credentials: c.core.ca, Auth: c.auth,
		Logger: c.log, Audit: c.auditLog, MaxBodyBytes: c.cfg.API.MaxBodyBytes, Metrics: m,
		Diagnostics: diag, Publishing: control,
	}).Register(c.api)
	return nil
}

// ocspDiagnostics adapts the responder's Inspect to the admin API's view.
func ocspDiagnostics(r *ocsp.Responder) func(context.Context, *store.Cert) (admin.OCSPState, error) {
	return func(ctx context.Context, c *store.Cert) (admin.OCSPState, error) {
		s, err := r.Inspect(ctx, c)
		if err != nil {
			return admin.OCSPState{}, err
		}
		o := admin.OCSPState{
			Source: s.Source, Status: s.Status, RevokedAt: s.RevokedAt, ProducedAt: s.ProducedAt,
			ThisUpdate: s.ThisUpdate, NextUpdate: s.NextUpdate, SignedForUpdate: s.SignedForUpdate, Invalid: s.Invalid,
			ResponderSerial: hex.EncodeToString(s.ResponderSerial), CurrentResponderSerial: hex.EncodeToString(s.CurrentResponderSerial),
		}
		if s.Status == "revoked" {
			o.Reason = ca.Reason(s.Reason).String()
		}
		return o, nil
	}
}

// crlDiagnostics adapts the builder's Listings.
func crlDiagnostics(b *crl.Builder) func(context.Context, string, [][]byte) ([]admin.CRLListing, error) {
	return func(ctx context.Context, issuer string, serials [][]byte) ([]admin.CRLListing, error) {
		ls, err := b.Listings(ctx, issuer, serials)
		if err != nil {
			return nil, err
		}
		out := make([]admin.CRLListing, len(ls))
		for i, l := range ls {
			out[i] = admin.CRLListing{File: l.File, Delta: l.Delta, Number: l.Number, BaseNumber: l.BaseNumber,
				ThisUpdate: l.ThisUpdate, NextUpdate: l.NextUpdate, Entries: l.Entries, Covers: l.Covers, Lists: l.Lists, Err: l.Err}
		}
		return out, nil
	}
}

// directoryDiagnostics adapts the directory's Publication.
func directoryDiagnostics(d *directory.Directory) func(context.Context, *store.Cert) (admin.DirectoryState, error) {
	return func(ctx context.Context, c *store.Cert) (admin.DirectoryState, error) {
		p, err := d.Publication(ctx, c)
		if err != nil {
			return admin.DirectoryState{}, err
		}
		return admin.DirectoryState{DN: p.DN, Published: p.Published, Expected: p.Expected, Why: p.Why}, nil
	}
}

// publishTargets adapts the publisher's state to the admin API's view.
type publishTargets struct{ p *publish.Publisher }

func (t publishTargets) Targets(ctx context.Context) ([]admin.TargetState, error) {
	ts := t.p.Targets(ctx)
	out := make([]admin.TargetState, len(ts))
	for i, s := range ts {
		out[i] = admin.TargetState{Name: s.Name, URL: s.URL, Connected: s.Connected, Paused: s.Paused,
			LastSuccess: s.LastSuccess, LastError: s.LastError, LastErrorAt: s.LastErrorAt,
			Pending: s.Pending, OldestPending: s.OldestPending, Delivered: s.Delivered, Failed: s.Failed, Resyncing: s.Resyncing}
		if r := s.LastResync; r != nil {
			out[i].LastResync = &admin.ResyncReport{Started: r.Started, Finished: r.Finished, Entries: r.Entries, Unchanged: r.Unchanged,
				Added: r.Added, Replaced: r.Replaced, Removed: r.Removed, AbsentCerts: r.AbsentCerts, Failed: r.Failed}
		}
		for _, f := range s.FailedRecords {
			out[i].FailedRecords = append(out[i].FailedRecords, admin.FailedRecord{Key: f.Key, DN: f.DN, Error: f.Error,
				Since: f.Since, Tries: f.Tries, NextRetry: f.NextRetry})
		}
	}
	return out, nil
}

func (t publishTargets) CertStatuses(ctx context.Context, serials [][]byte) ([][]admin.TargetCertState, error) {
	all, err := t.p.CertStatuses(ctx, serials)
	if err != nil {
		return nil, err
	}
	out := make([][]admin.TargetCertState, len(all))
	for i, cs := range all {
		for _, s := range cs {
			out[i] = append(out[i], admin.TargetCertState{Target: s.Target, State: s.State, PublishedAt: s.PublishedAt, Error: s.Error, ErrorAt: s.ErrorAt,
				DN: s.DN, AbsentAtCheck: s.AbsentAtCheck, NextRetry: s.NextRetry})
		}
	}
	return out, nil
}

// publishControl adapts the publisher's operator operations, mapping its
// unknown-target error to the admin API's.
type publishControl struct{ p *publish.Publisher }

func targetErr(err error) error {
	if errors.Is(err, publish.ErrUnknownTarget) {
		return fmt.Errorf("%w: %w", admin.ErrNoSuchTarget, err)
	}
	return err
}

func (c publishControl) Pause(ctx context.Context, name string, also func(*store.Tx) error) error {
	return targetErr(c.p.Pause(ctx, name, also))
}

func (c publishControl) Resume(ctx context.Context, name string, also func(*store.Tx) error) error {
	return targetErr(c.p.Resume(ctx, name, also))
}

func (c publishControl) Resync(ctx context.Context, name string, also func(*store.Tx) error) error {
	return targetErr(c.p.Resync(ctx, name, also))
}
