// Package ca is the issuing authority: CA certificates and their chains,
// certificate profiles, serial numbers, issuance from CSRs, revocation and the
// events that follow a committed change. It signs only through crypto.Signer
// values from a signer.Provider, and persists only through store.
//
// It does not serve anything: OCSP, CRLs, the directory and the RA are their
// own packages and learn about issuance and revocation through Subscribe.
package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/internal/ldapdn"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// ErrUnknownCA is returned for a CA name that does not exist.
var ErrUnknownCA = errors.New("unknown CA")

// ErrNotInitialised is returned by Load when the store holds no CA.
var ErrNotInitialised = errors.New("no CA in the store: run `certcenter init`")

// Options configure an Authority.
type Options struct {
	Store   *store.Store
	Signers signer.Provider
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// PublicURL is the base of the http URLs in certificates ("http://host:8080").
	PublicURL string
	// LDAPURL is the base of the ldap URLs in CRL distribution points ("ldap://host:1389").
	LDAPURL string
	// Suffix is the directory naming context; empty derives it from the CA subject.
	Suffix string
	// CRLShards partitions each CA's CRL: a certificate's http CRL
	// distribution point names the shard of its serial
	// (crlscope.Layout.ShardOf). 0 or 1: one CRL per CA. The crl package
	// takes the count from here (CRLLayout), so it is configured once.
	CRLShards int
	// RevokeCheck, when set, runs in every revocation's transaction after
	// the certificate is marked revoked; an error aborts the revocation, so
	// a rule about what may be revoked (the last administrator's
	// credential) holds on every path: admin API, RA, batch.
	RevokeCheck func(tx *store.Tx, c *store.Cert) error
}

// Issuer is one loaded CA with its keys.
type Issuer struct {
	Name   string
	Cert   *x509.Certificate
	Signer crypto.Signer
	// OCSPCert and OCSPSigner are the delegated OCSP responder.
	OCSPCert   *x509.Certificate
	OCSPSigner crypto.Signer
}

// Authority issues and revokes certificates for its CAs.
type Authority struct {
	opts  Options
	store *store.Store
	log   *slog.Logger
	now   func() time.Time

	mu      sync.RWMutex
	issuers map[string]*Issuer

	subMu sync.RWMutex
	subs  []func(context.Context, Event)
}

// New returns an Authority; call Load or Init before issuing.
func New(opts Options) *Authority {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Authority{
		opts:    opts,
		store:   opts.Store,
		log:     opts.Logger.With("component", "ca"),
		now:     opts.Now,
		issuers: map[string]*Issuer{},
	}
}

// Load reads every CA from the store and finds its keys in the signer.
func (a *Authority) Load(ctx context.Context) error {
	var cas []*store.CA
	if err := a.store.View(ctx, func(tx *store.Tx) error {
		var err error
		cas, err = tx.CAs()
		return err
	}); err != nil {
		return fmt.Errorf("loading CAs: %w", err)
	}
	if len(cas) == 0 {
		return ErrNotInitialised
	}
	for _, rec := range cas {
		iss, err := a.loadIssuer(ctx, rec)
		if err != nil {
			return err
		}
		a.mu.Lock()
		a.issuers[rec.Name] = iss
		a.mu.Unlock()
	}
	return nil
}

func (a *Authority) loadIssuer(ctx context.Context, rec *store.CA) (*Issuer, error) {
	cert, err := x509.ParseCertificate(rec.CertDER)
	if err != nil {
		return nil, fmt.Errorf("CA %s: parsing certificate: %w", rec.Name, err)
	}
	sig, err := a.opts.Signers.Signer(ctx, rec.KeyRef)
	if err != nil {
		return nil, fmt.Errorf("CA %s: finding key %s: %w", rec.Name, rec.KeyRef, err)
	}
	if !publicKeysEqual(sig.Public(), cert.PublicKey) {
		return nil, fmt.Errorf("CA %s: key %s does not match the CA certificate", rec.Name, rec.KeyRef)
	}
	iss := &Issuer{Name: rec.Name, Cert: cert, Signer: sig}
	if len(rec.OCSPCertDER) > 0 {
		if iss.OCSPCert, err = x509.ParseCertificate(rec.OCSPCertDER); err != nil {
			return nil, fmt.Errorf("CA %s: parsing OCSP certificate: %w", rec.Name, err)
		}
		if iss.OCSPSigner, err = a.opts.Signers.Signer(ctx, rec.OCSPKeyRef); err != nil {
			return nil, fmt.Errorf("CA %s: finding OCSP key %s: %w", rec.Name, rec.OCSPKeyRef, err)
		}
	}
	return iss, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Issuer returns a loaded CA by name.
func (a *Authority) Issuer(name string) (*Issuer, error) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	iss, ok := a.issuers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownCA, name)
	}
	return iss, nil
}

// Issuers returns every loaded CA in name order.
func (a *Authority) Issuers() []*Issuer {
	a.mu.RLock()
	defer a.mu.RUnlock()
	out := make([]*Issuer, 0, len(a.issuers))
	for _, iss := range a.issuers {
		out = append(out, iss)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Default returns the CA used when a request names none: the only one, or the
// first by name.
func (a *Authority) Default() (*Issuer, error) {
	iss := a.Issuers()
	if len(iss) == 0 {
		return nil, ErrNotInitialised
	}
	return iss[0], nil
}

// EventKind says what happened to a certificate.
type EventKind string

const (
	EventIssued  EventKind = "issued"
	EventRevoked EventKind = "revoked"
)

// Event reports a committed issuance or revocation.
type Event struct {
	Kind EventKind
	Cert *store.Cert
}

// Subscribe registers fn to run after every committed issuance or revocation,
// before the call that made it returns (so, for example, the OCSP responder
// re-signs a revoked certificate's response before Revoke returns). fn must
// not call back into the Authority's write methods.
func (a *Authority) Subscribe(fn func(context.Context, Event)) {
	a.subMu.Lock()
	a.subs = append(a.subs, fn)
	a.subMu.Unlock()
}

func (a *Authority) emit(ctx context.Context, evs ...Event) {
	a.subMu.RLock()
	subs := a.subs
	a.subMu.RUnlock()
	for _, ev := range evs {
		for _, fn := range subs {
			fn(ctx, ev)
		}
	}
}

// Suffix is the directory naming context: configured, or built from the CA
// subject's O, OU and C attributes ("o=certcenter,c=CN").
func (a *Authority) Suffix(iss *Issuer) string {
	if a.opts.Suffix != "" {
		return a.opts.Suffix
	}
	return SuffixFor(iss.Cert)
}

// SuffixFor derives a naming context from a CA certificate's subject.
func SuffixFor(cert *x509.Certificate) string {
	var parts []string
	for _, o := range cert.Subject.Organization {
		parts = append(parts, "o="+ldapdn.EscapeValue(o))
	}
	for _, c := range cert.Subject.Country {
		parts = append(parts, "c="+ldapdn.EscapeValue(c))
	}
	if len(parts) == 0 {
		return "o=certcenter"
	}
	return strings.Join(parts, ",")
}

// EntryDN is the directory entry of a CA, which holds its certificate and CRLs.
func (a *Authority) EntryDN(iss *Issuer) string {
	return "cn=" + ldapdn.EscapeValue(iss.Cert.Subject.CommonName) + "," + a.Suffix(iss)
}

// URLs are the distribution URLs of one CA, put into the certificates it issues.
type URLs struct {
	OCSP      string
	CAIssuers string
	CRL       string
	DeltaCRL  string
	LDAPCRL   string
	LDAPDelta string
}

// URLs returns where relying parties find this CA's status information.
func (a *Authority) URLs(iss *Issuer) URLs {
	base := strings.TrimRight(a.opts.PublicURL, "/")
	entry := a.entryURL(iss)
	full := crlscope.Complete(iss.Name)
	return URLs{
		OCSP:      base + "/ocsp",
		CAIssuers: base + "/ca/" + iss.Name + ".crt",
		CRL:       crlscope.HTTPURL(base, full),
		DeltaCRL:  crlscope.HTTPURL(base, full.DeltaCRL()),
		LDAPCRL:   crlscope.LDAPURL(entry, full),
		LDAPDelta: crlscope.LDAPURL(entry, full.DeltaCRL()),
	}
}
