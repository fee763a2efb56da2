// Package ocsp is certcenter's OCSP responder (RFC 6960, RFC 5019 profile).
//
// It keeps a signed response for every certificate in the store (namespace
// "ocsp"), made when the certificate is issued, re-made when its status
// changes (before the revoking call returns) and before half of its validity
// has passed, and found again after a crash by a start-up repair. Requests are
// parsed with cryptobyte and answered from a bounded in-memory cache in front
// of the store; only what no stored response can answer is signed live (a
// request with several CertIDs, a nonce when nonces are signed, a SHA-2
// CertID, a certificate whose stored response is missing or stale).
//
// Responses are signed by each CA's delegated OCSP responder certificate
// through a crypto.Signer, so a file key and a PKCS#11 key serve alike; the
// responder asks the CA to renew that certificate before it expires.
//
// It does not issue or revoke: it learns about both through HandleEvent.
package ocsp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// Authority is the part of the CA the responder uses.
type Authority interface {
	Issuers() []*ca.Issuer
	RenewOCSPResponder(ctx context.Context, name string) (*ca.Issuer, error)
}

// Store is the part of the store the responder uses.
type Store interface {
	View(ctx context.Context, fn func(tx *store.Tx) error) error
	Update(ctx context.Context, fn func(tx *store.Tx) error) error
}

// Options configure a Responder. Zero values take the defaults named.
type Options struct {
	Store     Store
	Authority Authority
	Logger    *slog.Logger
	// Registerer receives the metrics; nil registers nowhere.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time

	// Validity is nextUpdate - thisUpdate. Default 72h.
	Validity time.Duration
	// Backdate moves thisUpdate into the past for clients with slow clocks. Default 1h.
	Backdate time.Duration
	// CacheEntries bounds the in-memory cache; 0 disables it.
	CacheEntries int
	// CacheBytes also bounds it, in bytes (responses, their headers and
	// the cache's bookkeeping); 0 bounds entries only.
	CacheBytes int64
	// ResponderIDByName writes byName responder IDs instead of byKey.
	ResponderIDByName bool
	// SignNonces answers a request with a nonce with a live-signed response
	// echoing it; otherwise nonces are ignored (RFC 5019).
	SignNonces bool
	// LiveRate limits live signing for nonces and multi-CertID requests, per
	// second. Default 100.
	LiveRate float64
	// MaxRequestBytes bounds a request (POST body, decoded GET). Default 8192.
	MaxRequestBytes int
	// BodyTimeout bounds reading a POST body. The listener sets no read or
	// write timeout of its own: a GET has no body and its answer fits in the
	// socket buffer, and re-arming both deadlines on every request costs the
	// hot path several percent. Default 10s.
	BodyTimeout time.Duration
	// Path is where the responder is mounted. Default "/ocsp".
	Path string
	// RefreshInterval is how often stored responses are checked. Default
	// min(Validity/8, 1h).
	RefreshInterval time.Duration
	// RenewBefore renews a responder certificate this long before it expires. Default 30 days.
	RenewBefore time.Duration
	// Workers sign in parallel during repair and refresh. Default GOMAXPROCS.
	Workers int
	// ReadOnly is a read replica's responder: it serves the pre-signed
	// responses it finds in the store (replicated from the primary) and
	// never signs — no live signing, no repair, no refresher. A serial
	// without a current response gets tryLater, never a stale answer; a
	// request with several CertIDs gets tryLater; a nonce is ignored.
	// Call Invalidate when a replicated response is written.
	ReadOnly bool
}

// Responder answers OCSP requests and keeps the stored responses current.
type Responder struct {
	opts    Options
	store   Store
	auth    Authority
	log     *slog.Logger
	now     func() time.Time
	cache   *cache
	issuers atomic.Pointer[issuerTable]
	m       *metrics
	live    *limiter
	bufs    sync.Pool

	renewMu  sync.Mutex
	repaired atomic.Bool
	checked  atomic.Int64
	// oldest is the thisUpdate (unix s) of the oldest stored response seen by
	// the last refresh pass.
	oldest atomic.Int64

	hdrOCSP, hdrNoCache, hdrNoStore []string
	maxAge                          maxAgeMemo
	headers                         headerMemo
}

// New builds a Responder over the CA's issuers.
func New(opts Options) (*Responder, error) {
	if opts.Store == nil || opts.Authority == nil {
		return nil, errors.New("ocsp: Store and Authority are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Validity == 0 {
		opts.Validity = 72 * time.Hour
	}
	if opts.Backdate == 0 {
		opts.Backdate = time.Hour
	}
	if opts.Validity < 8*time.Hour || opts.Validity > 10*24*time.Hour {
		return nil, fmt.Errorf("ocsp: validity %s is outside the CA/Browser Forum's 8h to 10 days", opts.Validity)
	}
	if opts.Backdate < 0 || opts.Backdate > opts.Validity/2 {
		return nil, fmt.Errorf("ocsp: backdate %s must be between 0 and half the validity", opts.Backdate)
	}
	if opts.LiveRate == 0 {
		opts.LiveRate = 100
	}
	if opts.BodyTimeout == 0 {
		opts.BodyTimeout = 10 * time.Second
	}
	if opts.MaxRequestBytes == 0 {
		opts.MaxRequestBytes = 8192
	}
	if opts.Path == "" {
		opts.Path = "/ocsp"
	}
	if opts.RefreshInterval == 0 {
		opts.RefreshInterval = min(opts.Validity/8, time.Hour)
	}
	if opts.RenewBefore == 0 {
		opts.RenewBefore = 30 * 24 * time.Hour
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	r := &Responder{
		opts:       opts,
		store:      opts.Store,
		auth:       opts.Authority,
		log:        opts.Logger.With("component", "ocsp"),
		now:        opts.Now,
		cache:      newCache(opts.CacheEntries, opts.CacheBytes),
		live:       newLimiter(opts.LiveRate, opts.Now),
		hdrOCSP:    []string{"application/ocsp-response"},
		hdrNoCache: []string{"max-age=0, no-cache"},
		hdrNoStore: []string{"no-store"},
	}
	r.bufs.New = func() any { return newReqBuf(opts.MaxRequestBytes) }
	if err := r.reloadIssuers(); err != nil {
		return nil, err
	}
	r.m = newMetrics(opts.Registerer, r)
	return r, nil
}

// ReloadIssuers rebuilds the table of CAs and their responders from the
// Authority: a read replica calls it when a replicated CA record changed.
func (r *Responder) ReloadIssuers() error { return r.reloadIssuers() }

func (r *Responder) reloadIssuers() error {
	t, err := newIssuerTable(r.auth.Issuers(), !r.opts.ResponderIDByName)
	if err != nil {
		return fmt.Errorf("ocsp: loading issuers: %w", err)
	}
	r.issuers.Store(t)
	return nil
}

// Errors of a lookup, mapped to response statuses in one place (writeLookupError).
var (
	errUnknown  = errors.New("certificate not issued by this responder's CAs")
	errTryLater = errors.New("no current response and signing failed")
)

// times returns producedAt, thisUpdate and nextUpdate for a response signed now.
func (r *Responder) times() (produced, this, next time.Time) {
	produced = r.now().UTC().Truncate(time.Second)
	this = produced.Add(-r.opts.Backdate)
	return produced, this, this.Add(r.opts.Validity)
}

func singleFor(c *store.Cert, certID []byte, this, next time.Time) single {
	s := single{certID: certID, thisUpdate: this, nextUpdate: next}
	if c.Status == store.StatusRevoked {
		s.revoked, s.revokedAt, s.reason = true, c.RevokedAt, c.Reason
	}
	return s
}

// signCert signs the response for one certificate with a CertID in hash h.
func (r *Responder) signCert(c *store.Cert, h HashAlg) (*record, error) {
	resp, tbs, rec, err := r.prepare(c, h)
	if err != nil {
		return nil, err
	}
	if rec.der, err = resp.signTBS(tbs); err != nil {
		return nil, fmt.Errorf("signing response for %x: %w", c.Serial, err)
	}
	return rec, nil
}

// prepare finds the responder of c's issuer and encodes the ResponseData to
// sign for c; the record it returns lacks only the response itself.
func (r *Responder) prepare(c *store.Cert, h HashAlg) (*responder, []byte, *record, error) {
	iss := r.issuers.Load().byName[c.Issuer]
	if iss == nil || iss.resp == nil {
		// A CA added, or given its responder, since the table was built.
		if err := r.reloadIssuers(); err != nil {
			return nil, nil, nil, err
		}
		if iss = r.issuers.Load().byName[c.Issuer]; iss == nil {
			return nil, nil, nil, fmt.Errorf("signing response for %x: unknown issuer %q", c.Serial, c.Issuer)
		}
	}
	if iss.resp == nil {
		return nil, nil, nil, fmt.Errorf("signing response for %x: CA %s has no OCSP responder certificate", c.Serial, c.Issuer)
	}
	certID, err := encodeCertID(h, iss.nameHash[h], iss.keyHash[h], c.Serial)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signing response for %x: %w", c.Serial, err)
	}
	produced, this, next := r.times()
	tbs, err := iss.resp.tbs(produced, []single{singleFor(c, certID, this, next)}, nil)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("signing response for %x: %w", c.Serial, err)
	}
	rec := &record{thisUpdate: this, nextUpdate: next, certUpdatedAt: c.UpdatedAt, revoked: c.Status == store.StatusRevoked,
		issuer: c.Issuer, signedBy: iss.resp.cert.SerialNumber.Bytes()}
	return iss.resp, tbs, rec, nil
}

// errChanged reports that a certificate changed after its response was signed.
var errChanged = errors.New("certificate changed while its response was signed")

// save stores responses, each only if its certificate is still in the state
// it was signed for, no newer response is stored, and the responder that
// signed it is still its issuer's: a slow signer never overwrites a
// revocation's response with an older status, nor stores a signature by a
// responder that ReplaceResponder retired meanwhile. The responder check
// reads memory, not the store, yet holds: the replacement swaps the
// responder before its drop pass deletes the issuer's responses, so a save
// that checked before the swap either commits before that delete (and is
// deleted by it) or conflicts with it on the response's key and is retried,
// seeing the new responder. It reports which were written.
func (r *Responder) save(ctx context.Context, certs []*store.Cert, recs []*record) ([]bool, error) {
	written := make([]bool, len(recs))
	err := r.store.Update(ctx, func(tx *store.Tx) error {
		for i, rec := range recs {
			written[i] = false
			if rec == nil || !r.isCurrentResponder(rec.issuer, rec.signedBy) {
				continue
			}
			cur, err := tx.Cert(certs[i].Serial)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				return err
			}
			if !cur.UpdatedAt.Equal(rec.certUpdatedAt) {
				continue
			}
			k := hex.EncodeToString(certs[i].Serial)
			// The certificate read above makes a concurrent status change
			// conflict with this transaction: clearing its dirty mark here
			// never loses a newer one.
			if old, err := tx.Blob(blobNamespace, k); err == nil {
				o, err := decodeRecord(old)
				if err == nil && (o.certUpdatedAt.After(rec.certUpdatedAt) ||
					o.certUpdatedAt.Equal(rec.certUpdatedAt) && !o.thisUpdate.Before(rec.thisUpdate)) {
					if err := tx.ClearDirty(store.DirtyOCSP, k); err != nil {
						return err
					}
					continue
				}
				if err == nil {
					if err := tx.DeleteBlob(dueNamespace, dueKey(o, k)); err != nil {
						return err
					}
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			b, err := rec.encode()
			if err != nil {
				return err
			}
			if err := tx.PutBlob(blobNamespace, k, b); err != nil {
				return err
			}
			if err := tx.PutBlob(dueNamespace, dueKey(rec, k), nil); err != nil {
				return err
			}
			if err := tx.ClearDirty(store.DirtyOCSP, k); err != nil {
				return err
			}
			written[i] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storing %d OCSP responses: %w", len(recs), err)
	}
	return written, nil
}

// HandleEvent pre-signs the response of an issued certificate and re-signs
// that of a revoked one, synchronously: the CA calls it after the commit and
// before Issue or Revoke returns.
func (r *Responder) HandleEvent(ctx context.Context, ev ca.Event) {
	// The caller's request may be cancelled once the revocation committed;
	// the new response must be stored all the same.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	c := ev.Cert
	reason := "issue"
	if ev.Kind == ca.EventRevoked {
		reason = "revoke"
	}
	if err := r.resign(ctx, c, reason); err != nil {
		// Without a current response the stale one must not be served: drop
		// it, so a request reads the certificate and signs live.
		r.log.Error("pre-signing OCSP response failed; dropping the stored one", "serial", c.SerialHex(), "issuer", c.Issuer, "event", ev.Kind, "err", err)
		if err := r.store.Update(ctx, func(tx *store.Tx) error { return tx.DeleteBlob(blobNamespace, c.SerialHex()) }); err != nil {
			r.log.Error("dropping stale OCSP response failed", "serial", c.SerialHex(), "err", err)
		}
		r.invalidate(c.Serial)
	}
	r.replaceRevokedResponder(ctx, ev)
}

// resign signs and stores c's response and replaces it in the cache. If c
// changed meanwhile, it starts over with the current record.
func (r *Responder) resign(ctx context.Context, c *store.Cert, reason string) error {
	for attempt := 0; ; attempt++ {
		rec, err := r.signCert(c, SHA1)
		if err != nil {
			return err
		}
		r.m.signed(reason)
		written, err := r.save(ctx, []*store.Cert{c}, []*record{rec})
		if err != nil {
			return err
		}
		if written[0] {
			r.invalidate(c.Serial)
			if k, ok := makeKey(SHA1, c.Serial); ok {
				r.cache.put(&k, r.entryOf(rec))
			}
			return nil
		}
		cur, err := r.readCert(ctx, c.Serial)
		if err != nil {
			return err
		}
		if cur.UpdatedAt.Equal(c.UpdatedAt) {
			// A response at least as new is stored already.
			r.invalidate(c.Serial)
			return nil
		}
		if attempt == 3 {
			return fmt.Errorf("re-signing %x: %w", c.Serial, errChanged)
		}
		c = cur
	}
}

// invalidate drops every cached response of a serial.
// Invalidate drops serial's cached responses: a read replica calls it when
// a replicated response for serial is written to its store.
func (r *Responder) Invalidate(serial []byte) { r.invalidate(serial) }

// entryOf is rec ready to cache, sharing its issuer's current responder
// certificate.
func (r *Responder) entryOf(rec *record) *entry {
	var shared []byte
	iss := r.issuers.Load().byName[rec.issuer]
	if iss != nil && iss.resp != nil {
		shared = iss.resp.cert.Raw
	}
	e := newEntry(rec, shared, &r.headers)
	if iss != nil {
		// The table's copy: lookup compares it with the CertID's issuer on
		// every hit, and equal pointers compare without reading the bytes.
		e.issuer = iss.name
	}
	return e
}

func (r *Responder) invalidate(serial []byte) {
	for h := SHA1; h < numHashes; h++ {
		if k, ok := makeKey(h, serial); ok {
			r.cache.invalidate(&k)
		}
	}
}

func (r *Responder) readCert(ctx context.Context, serial []byte) (*store.Cert, error) {
	var c *store.Cert
	err := r.store.View(ctx, func(tx *store.Tx) error {
		var err error
		c, err = tx.Cert(serial)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, errUnknown
	}
	return c, err
}

// lookup finds the response for one CertID of a known issuer: the cache, then
// the store, then a live signature (stored for SHA-1 CertIDs). A response
// past its nextUpdate is never returned.
// now is the caller's reading of the clock, so one request reads it once.
func (r *Responder) lookup(ctx context.Context, iss *issuer, id *CertID, now time.Time) (*entry, error) {
	serial := id.LookupSerial()
	k, ok := makeKey(id.Hash, serial)
	if !ok {
		return nil, errUnknown
	}
	if e := r.cache.get(&k); e != nil && now.Before(e.nextUpdate) {
		r.m.cacheHits.Inc()
		if e.issuer != iss.name {
			return nil, errUnknown
		}
		return e, nil
	}
	r.m.cacheMisses.Inc()
	gen := r.cache.begin(&k)
	if id.Hash == SHA1 {
		var rec *record
		err := r.store.View(ctx, func(tx *store.Tx) error {
			b, err := tx.Blob(blobNamespace, hex.EncodeToString(serial))
			if err != nil {
				return err
			}
			rec, err = decodeRecord(b)
			return err
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			r.log.Warn("reading stored OCSP response", "serial", hex.EncodeToString(serial), "err", err)
		}
		if rec != nil && now.Before(rec.nextUpdate) {
			if rec.issuer != iss.name {
				return nil, errUnknown
			}
			e := r.entryOf(rec)
			r.cache.fill(&k, e, gen)
			return e, nil
		}
	}
	c, err := r.readCert(ctx, serial)
	if err != nil {
		if errors.Is(err, errUnknown) {
			return nil, err
		}
		r.log.Error("reading certificate for OCSP", "serial", hex.EncodeToString(serial), "err", err)
		return nil, errTryLater
	}
	if c.Issuer != iss.name {
		return nil, errUnknown
	}
	if r.opts.ReadOnly {
		return nil, errTryLater // no current pre-signed response to serve
	}
	rec, err := r.signCert(c, id.Hash)
	if err != nil {
		r.log.Error("live OCSP signing failed", "serial", c.SerialHex(), "err", err)
		return nil, errTryLater
	}
	r.m.signed("live")
	if id.Hash == SHA1 {
		written, err := r.save(ctx, []*store.Cert{c}, []*record{rec})
		if err != nil {
			r.log.Warn("storing live-signed OCSP response", "serial", c.SerialHex(), "err", err)
		} else if !written[0] {
			// The certificate changed or a newer response exists: answer
			// from the store's current state on the next request, and this
			// one from what was signed for the status just read.
			return r.entryOf(rec), nil
		}
	}
	e := r.entryOf(rec)
	r.cache.fill(&k, e, gen)
	return e, nil
}

// signLive signs one response covering every CertID of a request (several
// CertIDs, or a nonce to echo). Every CertID must name a certificate of the
// same issuer: one response has one signer.
func (r *Responder) signLive(ctx context.Context, ids []CertID, nonce []byte) ([]byte, error) {
	t := r.issuers.Load()
	iss := t.match(&ids[0])
	if iss == nil || iss.resp == nil {
		return nil, errUnknown
	}
	singles := make([]single, len(ids))
	produced, this, next := r.times()
	err := r.store.View(ctx, func(tx *store.Tx) error {
		for i := range ids {
			if t.match(&ids[i]) != iss {
				return errUnknown
			}
			c, err := tx.Cert(ids[i].LookupSerial())
			if errors.Is(err, store.ErrNotFound) {
				return errUnknown
			}
			if err != nil {
				return err
			}
			if c.Issuer != iss.name {
				return errUnknown
			}
			singles[i] = singleFor(c, ids[i].Raw, this, next)
		}
		return nil
	})
	if errors.Is(err, errUnknown) {
		return nil, err
	}
	if err != nil {
		r.log.Error("reading certificates for OCSP", "err", err)
		return nil, errTryLater
	}
	der, err := iss.resp.sign(produced, singles, nonce)
	if err != nil {
		r.log.Error("live OCSP signing failed", "issuer", iss.name, "err", err)
		return nil, errTryLater
	}
	if nonce != nil {
		r.m.signed("nonce")
	} else {
		r.m.signed("live")
	}
	return der, nil
}

// Ready reports whether every stored response has been checked since start-up
// and every CA has a current responder certificate.
func (r *Responder) Ready(context.Context) error {
	if !r.repaired.Load() {
		return fmt.Errorf("checking stored OCSP responses (%d certificates so far)", r.checked.Load())
	}
	now := r.now()
	for _, iss := range r.issuers.Load().list {
		if iss.resp == nil {
			return fmt.Errorf("CA %s has no OCSP responder certificate", iss.name)
		}
		if now.After(iss.resp.cert.NotAfter) {
			return fmt.Errorf("the OCSP responder certificate of CA %s expired at %s", iss.name, iss.resp.cert.NotAfter)
		}
	}
	return nil
}

// responderCert returns the current responder certificate of a CA .
func (r *Responder) responderCert(name string) *x509.Certificate {
	if iss := r.issuers.Load().byName[name]; iss != nil && iss.resp != nil {
		return iss.resp.cert
	}
	return nil
}

// isCurrentResponder reports whether serial is the current responder
// certificate of issuer (an empty serial, from a caller that did not say,
// passes).
func (r *Responder) isCurrentResponder(issuer string, serial []byte) bool {
	if len(serial) == 0 {
		return true
	}
	cur := r.responderCert(issuer)
	return cur != nil && bytes.Equal(cur.SerialNumber.Bytes(), serial)
}

// limiter is a token bucket for live signing.
type limiter struct {
	mu     sync.Mutex
	rate   float64
	tokens float64
	last   time.Time
	now    func() time.Time
}

func newLimiter(rate float64, now func() time.Time) *limiter {
	return &limiter{rate: rate, tokens: rate, now: now}
}

func (l *limiter) allow() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.rate, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}
