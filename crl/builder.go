package crl

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/store"
)

// Blob namespaces (crlscope): one holds the DER of every current CRL under
// the file name HTTP serves it as (the directory reads the same blobs), the
// other what the builder needs to know about each.
const (
	nsCRL  = crlscope.Namespace
	nsMeta = crlscope.MetaNamespace
)

// deltaOverlap widens every delta CRL's window back past its base's
// thisUpdate. A revocation's time is taken just before its transaction
// commits, so one that commits while the full CRL's snapshot is being read
// can carry a time slightly earlier than the full CRL's thisUpdate and still
// be missing from it; listing a revocation in both the base and the delta is
// harmless (RFC 5280 §5.2.4), missing it is not.
const deltaOverlap = 5 * time.Minute

// ErrUnknownCRL is returned for a file name that names no CRL of a loaded CA.
var ErrUnknownCRL = errors.New("no such CRL")

// Authority is the part of ca.Authority the builder needs. The CRLs it
// builds are those of the CA's layout, with the scopes the CA's
// distribution points need, so the shard count is configured once (on the
// CA) and the builder cannot disagree with the certificates.
type Authority interface {
	Issuer(name string) (*ca.Issuer, error)
	Issuers() []*ca.Issuer
	CRLLayout() crlscope.Layout
	CRLScope(iss *ca.Issuer, c crlscope.CRL) crlscope.Scope
}

// Store is the part of store.Store the builder needs.
type Store interface {
	View(ctx context.Context, fn func(tx *store.Tx) error) error
	Update(ctx context.Context, fn func(tx *store.Tx) error) error
	Next(name string) (uint64, error)
	Watch(fn func([]store.Change)) (cancel func())
}

// Options configure a Builder.
type Options struct {
	Store Store
	CA    Authority
	// Logger gets operational logs; Audit gets one record per published CRL.
	Logger *slog.Logger
	Audit  *slog.Logger
	// Registerer receives the builder's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Interval between full CRLs (config crl.interval).
	Interval time.Duration
	// Validity of a full CRL (crl.validity) and of a delta CRL (crl.delta_validity).
	Validity      time.Duration
	DeltaValidity time.Duration
	// DeltaDelay is how long Notify waits for more revocations before it
	// rebuilds the delta CRL (crl.delta_delay).
	DeltaDelay time.Duration
	// ServeOnly is a read replica's builder: it serves the CRLs it finds
	// in the store (replicated from the primary) and never builds one —
	// Full, Delta and the repair refuse with ErrServeOnly, Run only waits,
	// and a missing or unusable CRL is a 503, not a rebuild.
	ServeOnly bool
}

// ErrServeOnly is returned by a ServeOnly builder asked to build.
var ErrServeOnly = errors.New("crl: this builder only serves (read replica)")

// Builder generates, stores and serves the CRLs of every CA.
type Builder struct {
	opts    Options
	store   Store
	ca      Authority
	log     *slog.Logger
	audit   *slog.Logger
	now     func() time.Time
	layout  crlscope.Layout
	shards  int // layout.N()
	metrics *metrics

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex

	cacheMu sync.RWMutex
	cache   map[string]*published
	unwatch func()

	pendMu  sync.Mutex
	pending map[string]bool
	timer   *time.Timer
	kick    chan struct{}
}

// published is a stored CRL ready to serve.
type published struct {
	file string
	der  []byte
	meta meta
	etag string
	idp  []byte // the IssuingDistributionPoint value, which its deltas repeat
}

// meta is the crlmeta record of one CRL file.
type meta struct {
	Number     uint64    `json:"number"`
	BaseNumber uint64    `json:"base_number,omitempty"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	// DeltaSince is, for a full CRL, where the window of its delta CRLs
	// starts, and for a delta CRL the window it covers.
	DeltaSince time.Time `json:"delta_since"`
	// DeltaBase is, for a full CRL, the number its deltas name as their
	// BaseCRLNumber, and BaseAt when that base was built. A scheduled build
	// starts a new base (DeltaBase = Number); a re-issue after revocations
	// keeps the base and its DeltaSince, so a relying party holding any
	// complete CRL since the base can still apply the deltas (RFC 5280
	// §5.2.4: base ≤ its complete CRL < delta). Zero in metadata written
	// before the field existed: the CRL is its own base.
	DeltaBase uint64    `json:"delta_base,omitempty"`
	BaseAt    time.Time `json:"base_at,omitzero"`
	Entries   int       `json:"entries"`
	Shards    int       `json:"shards"`
	SHA256    []byte    `json:"sha256"`
	// Window is, for a full CRL, the revocations at or after DeltaSince in
	// the snapshot it was built from. Repair compares it with the store only
	// for a CRL built before the dirty marks (DirtyIndexed false); for the
	// others the mark written in the revocation's own transaction says the
	// same without reading the revocations.
	Window window `json:"window"`
	// DirtyIndexed says the CRL was built by a version that reads the
	// store's dirty marks (store.DirtyCRL, store.DirtyCRLDelta): repair
	// trusts the marks for it and skips the window check, which a CRL
	// built before them still gets.
	DirtyIndexed bool `json:"dirty_indexed,omitempty"`
}

// deltaBase is the BaseCRLNumber of a full CRL's deltas.
func (m meta) deltaBase() uint64 {
	if m.DeltaBase != 0 {
		return m.DeltaBase
	}
	return m.Number
}

// baseAt is when the base of a full CRL's deltas was built; the next
// scheduled full build is due crl.interval after it.
func (m meta) baseAt() time.Time {
	if !m.BaseAt.IsZero() {
		return m.BaseAt
	}
	return m.ThisUpdate
}

// window summarises the revocations in a time window: their count and a
// SHA-256 over (time, serial, reason) in index order, which also changes
// when a certificate on hold is revoked for another reason.
type window struct {
	Count  int    `json:"count"`
	SHA256 []byte `json:"sha256"`
}

func readWindow(tx *store.Tx, caName string, since time.Time) (window, error) {
	h := sha256.New()
	n := 0
	var buf []byte
	err := tx.EachRevokedSince(caName, since, func(r *store.Revocation) error {
		buf = binary.BigEndian.AppendUint64(buf[:0], uint64(r.RevokedAt.UnixNano()))
		buf = append(buf, byte(r.Reason), byte(len(r.Serial)))
		buf = append(buf, r.Serial...)
		h.Write(buf)
		n++
		return nil
	})
	if err != nil {
		return window{}, fmt.Errorf("reading revocations since %s: %w", since.Format(time.RFC3339), err)
	}
	return window{Count: n, SHA256: h.Sum(nil)}, nil
}

func (w window) equal(o window) bool { return w.Count == o.Count && bytes.Equal(w.SHA256, o.SHA256) }

// New returns a Builder. Call Repair before serving, and Run for the schedule.
func New(opts Options) (*Builder, error) {
	if opts.Store == nil || opts.CA == nil {
		return nil, errors.New("crl: Store and CA are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Audit == nil {
		opts.Audit = opts.Logger
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	for name, d := range map[string]time.Duration{"crl.interval": opts.Interval, "crl.validity": opts.Validity, "crl.delta_validity": opts.DeltaValidity, "crl.delta_delay": opts.DeltaDelay} {
		if d <= 0 {
			return nil, fmt.Errorf("%s must be a positive duration", name)
		}
	}
	if opts.Validity < opts.Interval {
		return nil, fmt.Errorf("crl.validity %s is shorter than crl.interval %s: CRLs would expire before the next one", opts.Validity, opts.Interval)
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	b := &Builder{
		opts: opts, store: opts.Store, ca: opts.CA, now: opts.Now,
		log:     opts.Logger.With("component", "crl"),
		audit:   opts.Audit.With("component", "crl"),
		layout:  opts.CA.CRLLayout(),
		shards:  opts.CA.CRLLayout().N(),
		metrics: m,
		locks:   map[string]*sync.Mutex{},
		cache:   map[string]*published{},
		pending: map[string]bool{},
		kick:    make(chan struct{}, 1),
	}
	// A CRL blob written by anyone but this builder's last commit (a restore,
	// a repair tool, a corrupting bug) must not be served from the cache.
	b.unwatch = opts.Store.Watch(func(changes []store.Change) {
		for _, c := range changes {
			if file, ok := crlscope.FileOfKey(c.Key); ok && c.Kind == store.KindBlob {
				b.cacheMu.Lock()
				delete(b.cache, file)
				b.cacheMu.Unlock()
			}
		}
	})
	return b, nil
}

// Close stops watching the store.
func (b *Builder) Close() { b.unwatch() }

func (b *Builder) lock(caName string) func() {
	b.locksMu.Lock()
	mu, ok := b.locks[caName]
	if !ok {
		mu = &sync.Mutex{}
		b.locks[caName] = mu
	}
	b.locksMu.Unlock()
	mu.Lock()
	return mu.Unlock
}

// scope is one CRL being built: which it is, its IDP, and its entries.
type scope struct {
	crl     crlscope.CRL
	file    string
	idp     []byte // nil: none
	entries chunks
	count   int
}

// scopes lists the full (or the delta) CRLs of a CA in its layout, each
// with the IDP its crlscope.Scope asks for: the URLs that certificates
// carry in their CRL distribution points, so each CRL is used only for its
// own certificates, or none for an unsharded CA's complete CRL (NSS).
func (b *Builder) scopes(iss *ca.Issuer, delta bool) ([]*scope, error) {
	list := b.layout.Full(iss.Name)
	if delta {
		list = b.layout.Deltas(iss.Name)
	}
	out := make([]*scope, 0, len(list))
	for _, c := range list {
		s := &scope{crl: c, file: c.File()}
		if sc := b.ca.CRLScope(iss, c); sc.IDP {
			sk := scopeUsers
			if sc.OnlyCACerts {
				sk = scopeCAs
			}
			idp, err := encodeIDP(sc.Names, sk)
			if err != nil {
				return nil, fmt.Errorf("encoding IDP of %s: %w", s.file, err)
			}
			s.idp = idp
		}
		out = append(out, s)
	}
	return out, nil
}

// addRevocation appends a revocation of a user certificate to the scopes
// that list it (crlscope.Layout.Covers). The ARL stays empty: this CA
// issues no CA certificates.
func addRevocation(scopes []*scope, layout crlscope.Layout, r *store.Revocation) error {
	for _, s := range scopes {
		if !layout.Covers(s.crl, r.Serial) {
			continue
		}
		if err := s.entries.append(r.Serial, r.RevokedAt, r.Reason); err != nil {
			return err
		}
		s.count++
	}
	return nil
}

// Full builds every full CRL of a CA (complete, ARL, shards) and their delta
// CRLs, and stores them in one transaction, so the complete CRL, the ARL and
// the delta change together.
func (b *Builder) Full(ctx context.Context, caName string) error {
	if b.opts.ServeOnly {
		return ErrServeOnly
	}
	defer b.lock(caName)()
	start := time.Now()
	err := b.full(ctx, caName, false)
	b.metrics.observe("full", start, err)
	if err != nil {
		return fmt.Errorf("building full CRLs of %s: %w", caName, err)
	}
	return nil
}

// Reissue builds the full CRLs of a CA again after revocations, keeping the
// base of their deltas (see meta.DeltaBase); with no usable complete CRL it
// is Full.
func (b *Builder) Reissue(ctx context.Context, caName string) error {
	defer b.lock(caName)()
	start := time.Now()
	err := b.full(ctx, caName, true)
	b.metrics.observe("full", start, err)
	if err != nil {
		return fmt.Errorf("re-issuing full CRLs of %s: %w", caName, err)
	}
	return nil
}

// full builds the full CRLs of a CA and, with the same CRL number (RFC 5280
// §5.2.3: a complete and a delta CRL issued together share it), their
// deltas. keepBase keeps the deltas' base from the current complete CRL.
func (b *Builder) full(ctx context.Context, caName string, keepBase bool) error {
	iss, err := b.ca.Issuer(caName)
	if err != nil {
		return err
	}
	scopes, err := b.scopes(iss, false)
	if err != nil {
		return err
	}
	number, err := b.store.Next(crlscope.Sequence(caName))
	if err != nil {
		return err
	}
	now := b.now().UTC().Truncate(time.Second)
	since, base, baseAt := now.Add(-deltaOverlap), number, now
	if keepBase {
		if cur, err := b.load(ctx, iss, crlscope.Complete(caName).File()); err == nil && cur.meta.Shards == b.shards {
			since, base, baseAt = cur.meta.DeltaSince, cur.meta.deltaBase(), cur.meta.baseAt()
		}
	}
	t0 := time.Now()
	var win window
	var mark []byte
	err = b.store.View(ctx, func(tx *store.Tx) error {
		// The dirty mark in the snapshot the CRL is built from: the commit
		// clears it only if no revocation marked it again since.
		var err error
		if mark, err = tx.Dirty(store.DirtyCRL, caName); err != nil {
			return err
		}
		err = tx.EachRevoked(caName, func(r *store.Revocation) error {
			return addRevocation(scopes, b.layout, r)
		})
		if err != nil {
			return err
		}
		win, err = readWindow(tx, caName, since) // same snapshot
		return err
	})
	if err != nil {
		return fmt.Errorf("reading revocations: %w", err)
	}
	t1 := time.Now()
	var out []*published
	for _, s := range scopes {
		m := meta{Number: number, ThisUpdate: now, NextUpdate: now.Add(b.opts.Validity), DeltaSince: since,
			DeltaBase: base, BaseAt: baseAt, Entries: s.count, Shards: b.shards, Window: win, DirtyIndexed: true}
		p, err := b.sign(iss, s, m)
		if err != nil {
			return err
		}
		out = append(out, p)
	}
	// The deltas issued with the new full CRLs, under the same number.
	t2 := time.Now()
	deltas, deltaMark, err := b.buildDeltas(ctx, iss, out, number)
	if err != nil {
		return err
	}
	t3 := time.Now()
	if err := b.commit(ctx, caName, append(out, deltas...), marks{full: mark, delta: deltaMark}); err != nil {
		return err
	}
	b.log.Info("full CRLs built", "issuer", caName, "number", number, "entries", scopes[0].count,
		"read", t1.Sub(t0), "sign", t2.Sub(t1), "deltas", t3.Sub(t2), "store", time.Since(t3))
	return nil
}

// Delta rebuilds the delta CRLs of a CA against its current full CRLs; with
// no usable full CRL it builds those too.
func (b *Builder) Delta(ctx context.Context, caName string) error {
	if b.opts.ServeOnly {
		return ErrServeOnly
	}
	defer b.lock(caName)()
	start := time.Now()
	err := b.delta(ctx, caName)
	b.metrics.observe("delta", start, err)
	if err != nil {
		return fmt.Errorf("building delta CRLs of %s: %w", caName, err)
	}
	return nil
}

func (b *Builder) delta(ctx context.Context, caName string) error {
	iss, err := b.ca.Issuer(caName)
	if err != nil {
		return err
	}
	var bases []*published
	for _, file := range b.fullFiles(caName) {
		p, err := b.load(ctx, iss, file)
		if err != nil {
			b.log.Warn("full CRL unusable as a delta base; rebuilding it", "issuer", caName, "file", file, "err", err)
			start := time.Now()
			err := b.full(ctx, caName, false)
			b.metrics.observe("full", start, err)
			return err
		}
		bases = append(bases, p)
	}
	deltas, deltaMark, err := b.buildDeltas(ctx, iss, bases, 0)
	if err != nil {
		return err
	}
	return b.commit(ctx, caName, deltas, marks{delta: deltaMark})
}

// buildDeltas builds the delta CRL of each user-certificate full CRL in
// bases (the complete CRL and the shards; the ARL has none). A delta lists
// every revocation since the full CRL's DeltaSince, names its DeltaBase,
// carries its IDP unchanged (RFC 5280 §5.2.4: same scope) and has number,
// or with 0 the next from the same sequence. It returns the delta dirty
// mark of the snapshot it read.
func (b *Builder) buildDeltas(ctx context.Context, iss *ca.Issuer, bases []*published, number uint64) ([]*published, []byte, error) {
	scopes, err := b.scopes(iss, true)
	if err != nil {
		return nil, nil, err
	}
	byFile := map[string]*published{}
	for _, p := range bases {
		byFile[p.file] = p
	}
	baseOf := func(s *scope) (*published, error) {
		file := s.crl.Base().File()
		p, ok := byFile[file]
		if !ok {
			return nil, fmt.Errorf("no base CRL %s", file)
		}
		return p, nil
	}
	since := bases[0].meta.DeltaSince
	if number == 0 {
		if number, err = b.store.Next(crlscope.Sequence(iss.Name)); err != nil {
			return nil, nil, err
		}
	}
	now := b.now().UTC().Truncate(time.Second)
	var mark []byte
	err = b.store.View(ctx, func(tx *store.Tx) error {
		var err error
		if mark, err = tx.Dirty(store.DirtyCRLDelta, iss.Name); err != nil {
			return err
		}
		return tx.EachRevokedSince(iss.Name, since, func(r *store.Revocation) error {
			return addRevocation(scopes, b.layout, r)
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading revocations since %s: %w", since.Format(time.RFC3339), err)
	}
	var out []*published
	for _, s := range scopes {
		base, err := baseOf(s)
		if err != nil {
			return nil, nil, err
		}
		s.idp = base.idp
		next := now.Add(b.opts.DeltaValidity)
		if next.After(base.meta.NextUpdate) {
			next = base.meta.NextUpdate
		}
		m := meta{Number: number, BaseNumber: base.meta.deltaBase(), ThisUpdate: now, NextUpdate: next,
			DeltaSince: since, Entries: s.count, Shards: b.shards, DirtyIndexed: true}
		p, err := b.sign(iss, s, m)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, p)
	}
	return out, mark, nil
}

// sign encodes and signs one CRL.
func (b *Builder) sign(iss *ca.Issuer, s *scope, m meta) (*published, error) {
	alg, err := sigAlgFor(iss.Cert.PublicKey)
	if err != nil {
		return nil, err
	}
	akid := iss.Cert.SubjectKeyId
	if len(akid) == 0 {
		if akid, err = keyID(iss.Cert); err != nil {
			return nil, err
		}
	}
	tbs, err := buildTBS(&tbsParams{
		alg: alg, issuer: iss.Cert.RawSubject, thisUpdate: m.ThisUpdate, nextUpdate: m.NextUpdate,
		number: m.Number, akid: akid, idp: s.idp, baseNumber: m.BaseNumber,
	}, s.entries)
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", s.file, err)
	}
	s.entries = chunks{} // let a large list go before the next one is built
	der, err := sign(iss.Signer, alg, tbs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.file, err)
	}
	sum := sha256.Sum256(der)
	m.SHA256 = sum[:]
	return newPublished(s.file, der, m, s.idp), nil
}

func newPublished(file string, der []byte, m meta, idp []byte) *published {
	return &published{file: file, der: der, meta: m, idp: idp, etag: fmt.Sprintf(`"%x"`, m.SHA256[:16])}
}

// commit stores CRLs and their metadata in one transaction, then makes them
// the ones served.
// marks are the dirty marks (store.DirtyCRL, store.DirtyCRLDelta) a build
// saw in its snapshots; commit clears each that is still the same. A mark
// that was absent (nil) needs nothing.
type marks struct {
	full, delta []byte
}

func (b *Builder) commit(ctx context.Context, caName string, ps []*published, mk marks) error {
	err := b.store.Update(ctx, func(tx *store.Tx) error {
		if mk.full != nil {
			if _, err := tx.ClearDirtyIf(store.DirtyCRL, caName, mk.full); err != nil {
				return err
			}
		}
		if mk.delta != nil {
			if _, err := tx.ClearDirtyIf(store.DirtyCRLDelta, caName, mk.delta); err != nil {
				return err
			}
		}
		for _, p := range ps {
			mb, err := json.Marshal(p.meta)
			if err != nil {
				return err
			}
			if err := tx.PutBlob(nsCRL, p.file, p.der); err != nil {
				return err
			}
			if err := tx.PutBlob(nsMeta, p.file, mb); err != nil {
				return err
			}
			// Publishing targets take the CRL from the change log; the
			// entry names the file, whose newest DER they read.
			if err := tx.AppendLog(store.LogEntry{Kind: store.LogCRLPublished, Key: p.file, Time: p.meta.ThisUpdate}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing CRLs: %w", err)
	}
	b.cacheMu.Lock()
	for _, p := range ps {
		b.cache[p.file] = p
	}
	b.cacheMu.Unlock()
	for _, p := range ps {
		b.metrics.published(caName, p)
		b.audit.Info("CRL published", "issuer", caName, "file", p.file, "number", p.meta.Number,
			"base_number", p.meta.BaseNumber, "entries", p.meta.Entries, "bytes", len(p.der),
			"this_update", p.meta.ThisUpdate, "next_update", p.meta.NextUpdate)
	}
	return nil
}

func (b *Builder) cached(file string) (*published, bool) {
	b.cacheMu.RLock()
	defer b.cacheMu.RUnlock()
	p, ok := b.cache[file]
	return p, ok
}

// load returns a stored CRL after checking it: its metadata exists, its
// bytes hash to what was stored, it parses and its signature verifies.
func (b *Builder) load(ctx context.Context, iss *ca.Issuer, file string) (*published, error) {
	if p, ok := b.cached(file); ok {
		return p, nil
	}
	var der, mb []byte
	err := b.store.View(ctx, func(tx *store.Tx) error {
		var err error
		if der, err = tx.Blob(nsCRL, file); err != nil {
			return err
		}
		mb, err = tx.Blob(nsMeta, file)
		return err
	})
	if err != nil {
		return nil, err
	}
	var m meta
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("decoding metadata of %s: %w", file, err)
	}
	if sum := sha256.Sum256(der); !bytes.Equal(sum[:], m.SHA256) {
		return nil, fmt.Errorf("stored %s does not match its recorded hash", file)
	}
	p, err := verifyDER(der, iss.Cert)
	if err != nil {
		return nil, fmt.Errorf("stored %s: %w", file, err)
	}
	if !p.number.IsUint64() || p.number.Uint64() != m.Number || p.delta != (m.BaseNumber != 0) {
		return nil, fmt.Errorf("stored %s is CRL %s, its metadata says %d", file, p.number, m.Number)
	}
	pub := newPublished(file, der, m, p.idp)
	b.cacheMu.Lock()
	b.cache[file] = pub
	b.cacheMu.Unlock()
	return pub, nil
}

// fullFiles are the full CRL files of a CA; the first is the complete CRL.
func (b *Builder) fullFiles(caName string) []string {
	var files []string
	for _, c := range b.layout.Full(caName) {
		files = append(files, c.File())
	}
	return files
}

func (b *Builder) deltaFiles(caName string) []string {
	var files []string
	for _, c := range b.layout.Deltas(caName) {
		files = append(files, c.File())
	}
	return files
}

// resolve finds the CA and the kind of a CRL file name.
func (b *Builder) resolve(file string) (iss *ca.Issuer, delta bool, err error) {
	for _, iss := range b.ca.Issuers() {
		if c, ok := b.layout.Find(iss.Name, file); ok {
			return iss, c.Delta, nil
		}
	}
	return nil, false, fmt.Errorf("%w: %q", ErrUnknownCRL, file)
}

// get returns a CRL to serve. A CRL that is missing, corrupt, or does not
// verify is regenerated, never served.
func (b *Builder) get(ctx context.Context, file string) (der []byte, m meta, etag string, err error) {
	if p, ok := b.cached(file); ok {
		return p.der, p.meta, p.etag, nil
	}
	iss, delta, err := b.resolve(file)
	if err != nil {
		return nil, meta{}, "", err
	}
	p, err := b.load(ctx, iss, file)
	if err != nil {
		b.log.Warn("stored CRL unusable; regenerating it", "issuer", iss.Name, "file", file, "err", err)
		b.metrics.repairs.Inc()
		if delta {
			err = b.Delta(ctx, iss.Name)
		} else {
			err = b.Full(ctx, iss.Name)
		}
		if err != nil {
			return nil, meta{}, "", err
		}
		if p, err = b.load(ctx, iss, file); err != nil {
			return nil, meta{}, "", err
		}
	}
	return p.der, p.meta, p.etag, nil
}

// Repair runs at start-up: for each CA it rebuilds the full CRLs that are
// missing, corrupt, expired, due, or built with another shard count, and the
// delta CRLs that are missing, corrupt, due, or miss a revocation that was
// committed after they were built (a crash between the revocation's commit
// and the delta's). A missed revocation is known from the store's dirty
// marks (store.DirtyCRL, store.DirtyCRLDelta), so Repair reads each CRL's
// metadata and two keys per CA, never the revocations.
func (b *Builder) Repair(ctx context.Context) error {
	if b.opts.ServeOnly {
		return nil
	}
	var errs []error
	for _, iss := range b.ca.Issuers() {
		reason, err := b.fullNeeded(ctx, iss)
		if err != nil {
			return err
		}
		if reason != "" {
			b.log.Info("rebuilding full CRLs", "issuer", iss.Name, "reason", reason)
			if err := b.Full(ctx, iss.Name); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if reason, err = b.deltaNeeded(ctx, iss); err != nil {
			return err
		}
		if reason != "" {
			b.log.Info("rebuilding delta CRLs", "issuer", iss.Name, "reason", reason)
			if err := b.Delta(ctx, iss.Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func (b *Builder) fullNeeded(ctx context.Context, iss *ca.Issuer) (string, error) {
	now := b.now()
	scopes, err := b.scopes(iss, false)
	if err != nil {
		return "", err
	}
	wantIDP := map[string][]byte{}
	for _, s := range scopes {
		wantIDP[s.file] = s.idp
	}
	for _, file := range b.fullFiles(iss.Name) {
		p, err := b.load(ctx, iss, file)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return fmt.Sprintf("%s: %v", file, err), nil
		}
		switch {
		case p.meta.Shards != b.shards:
			return fmt.Sprintf("%s was built for %d shards, now %d", file, p.meta.Shards, b.shards), nil
		case !bytes.Equal(p.idp, wantIDP[file]):
			// The CA's URLs changed, or the CRL was built by a version
			// that gave an unsharded CA's complete CRL an IDP.
			return fmt.Sprintf("%s has another issuing distribution point than its scope now needs", file), nil
		case !now.Before(p.meta.baseAt().Add(b.opts.Interval)):
			return fmt.Sprintf("%s is due (base built %s)", file, p.meta.baseAt().Format(time.RFC3339)), nil
		case !now.Before(p.meta.NextUpdate):
			return fmt.Sprintf("%s expired", file), nil
		}
	}
	// Dirty: a revocation committed after the complete CRL's snapshot
	// (Notify's rebuild had not run when the process stopped).
	full, err := b.load(ctx, iss, crlscope.Complete(iss.Name).File())
	if err != nil {
		return "complete CRL: " + err.Error(), nil
	}
	var cur window
	var mark []byte
	if err := b.store.View(ctx, func(tx *store.Tx) error {
		var err error
		if mark, err = tx.Dirty(store.DirtyCRL, iss.Name); err != nil || full.meta.DirtyIndexed {
			return err
		}
		cur, err = readWindow(tx, iss.Name, full.meta.DeltaSince)
		return err
	}); err != nil {
		return "", fmt.Errorf("checking the full CRLs of %s: %w", iss.Name, err)
	}
	if mark != nil {
		return fmt.Sprintf("revocations were committed after %s was built", full.file), nil
	}
	if !full.meta.DirtyIndexed && !cur.equal(full.meta.Window) {
		return fmt.Sprintf("%s lists %d revocations since %s, the store has %d (or they changed)", full.file,
			full.meta.Window.Count, full.meta.DeltaSince.Format(time.RFC3339), cur.Count), nil
	}
	return "", nil
}

func (b *Builder) deltaNeeded(ctx context.Context, iss *ca.Issuer) (string, error) {
	now := b.now()
	base, err := b.load(ctx, iss, crlscope.Complete(iss.Name).File())
	if err != nil {
		return "base: " + err.Error(), nil
	}
	for _, file := range b.deltaFiles(iss.Name) {
		p, err := b.load(ctx, iss, file)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return fmt.Sprintf("%s: %v", file, err), nil
		}
		if p.meta.BaseNumber != base.meta.deltaBase() {
			return fmt.Sprintf("%s is based on CRL %d, not %d", file, p.meta.BaseNumber, base.meta.deltaBase()), nil
		}
		if !now.Before(p.meta.ThisUpdate.Add(b.opts.DeltaValidity / 2)) {
			return fmt.Sprintf("%s is due (thisUpdate %s)", file, p.meta.ThisUpdate.Format(time.RFC3339)), nil
		}
	}
	// Count the revocations in the complete delta's window: more than it
	// lists means one was committed after it was built.
	d, err := b.load(ctx, iss, crlscope.Complete(iss.Name).DeltaCRL().File())
	if err != nil {
		return "delta: " + err.Error(), nil
	}
	n := 0
	var mark []byte
	err = b.store.View(ctx, func(tx *store.Tx) error {
		var err error
		if mark, err = tx.Dirty(store.DirtyCRLDelta, iss.Name); err != nil || d.meta.DirtyIndexed {
			return err
		}
		return tx.EachRevokedSince(iss.Name, d.meta.DeltaSince, func(*store.Revocation) error { n++; return nil })
	})
	if err != nil {
		return "", fmt.Errorf("counting revocations of %s: %w", iss.Name, err)
	}
	if mark != nil {
		return fmt.Sprintf("revocations were committed after %s was built", d.file), nil
	}
	if !d.meta.DirtyIndexed && n != d.meta.Entries {
		return fmt.Sprintf("%d revocations since %s, the delta lists %d", n, d.meta.DeltaSince.Format(time.RFC3339), d.meta.Entries), nil
	}
	return "", nil
}

// Ready reports whether every CA has current CRLs to serve.
func (b *Builder) Ready(ctx context.Context) error {
	now := b.now()
	for _, iss := range b.ca.Issuers() {
		for _, file := range []string{crlscope.Complete(iss.Name).File(), crlscope.Complete(iss.Name).DeltaCRL().File()} {
			_, m, _, err := b.get(ctx, file)
			if err != nil {
				return err
			}
			if !now.Before(m.NextUpdate) {
				return fmt.Errorf("%s expired at %s", file, m.NextUpdate.Format(time.RFC3339))
			}
		}
	}
	return nil
}

// keyID is the SHA-1 of the CA's subjectPublicKey bits, for a CA
// certificate without a subject key identifier.
func keyID(cert *x509.Certificate) ([]byte, error) {
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return nil, fmt.Errorf("parsing CA public key: %w", err)
	}
	h := sha1.Sum(spki.PublicKey.Bytes)
	return h[:], nil
}
