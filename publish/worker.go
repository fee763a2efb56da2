package publish

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/store"
)

// nsPublish is the store namespace of delivery records: per target, which
// records were written when ("<target>/cert/<serial>", "/crl/<file>",
// "/ca/<name>"), and the marker "<target>/initialised".
const nsPublish = "publish"

// delivered is the durable record of one record's last delivery.
type delivered struct {
	At      time.Time `json:"at"`
	DN      string    `json:"dn"`
	Seq     uint64    `json:"seq"`
	Present bool      `json:"present"`
}

func readDelivered(tx *store.Tx, key string) (*delivered, error) {
	b, err := tx.Blob(nsPublish, key)
	if err != nil {
		return nil, err
	}
	var d delivered
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decoding delivery record %s: %w", key, err)
	}
	return &d, nil
}

type worker struct {
	p        *Publisher
	t        config.PublishTarget
	m        mapper
	tls      *tls.Config
	consumer string
	log      *slog.Logger
	kick     chan struct{}

	conn *ldap.Conn // only the run goroutine touches it

	mu      sync.Mutex
	state   TargetState
	failed  map[string]FailedRecord // by record key; mirrors nsFailed
	started time.Time               // when run began (the initial-state lag counts from it)
}

func (w *worker) startedAt() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started.IsZero() {
		return w.p.now()
	}
	return w.started
}

func (w *worker) initKey() string   { return w.t.Name + "/initialised" }
func (w *worker) pausedKey() string { return w.t.Name + "/paused" }

// loadPaused restores an operator's pause across restarts.
func (w *worker) loadPaused(ctx context.Context) error {
	var paused bool
	err := w.p.opts.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		paused, err = hasBlob(tx, w.pausedKey())
		return err
	})
	if err != nil {
		return fmt.Errorf("reading whether %s is paused: %w", w.t.Name, err)
	}
	w.setPaused(paused)
	return nil
}

// retryNow makes every failed record due, and the target's own backoff
// end (an operator's Resume).
func (w *worker) retryNow() {
	now := w.p.now()
	w.mu.Lock()
	// A new map: deliver reads the old one outside the lock.
	m := make(map[string]FailedRecord, len(w.failed))
	for k, f := range w.failed {
		f.NextRetry = now
		m[k] = f
	}
	w.failed = m
	w.mu.Unlock()
}
func (w *worker) certKey(s string) string { return w.t.Name + "/cert/" + s }

func (w *worker) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (w *worker) snapshot() TargetState {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state
}

func (w *worker) setPaused(p bool) {
	w.mu.Lock()
	w.state.Paused = p
	w.mu.Unlock()
	w.p.metrics.paused.WithLabelValues(w.t.Name).Set(b2f(p))
	w.poke()
}

func (w *worker) paused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state.Paused
}

func (w *worker) failedFor(recordKey string) (FailedRecord, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f, ok := w.failed[recordKey]
	return f, ok
}

// pendingKeys are the keys of the change-log entries not yet delivered.
func (w *worker) pendingKeys(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	cur := w.snapshot().Cursor
	for {
		es, err := w.p.opts.Store.ReadLog(ctx, cur, 1000)
		if err != nil || len(es) == 0 {
			return out, err
		}
		for _, e := range es {
			out[e.Key] = true
		}
		cur = es[len(es)-1].Seq
	}
}

// wait blocks until d passes, the worker is poked, or ctx ends.
func (w *worker) wait(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-w.kick:
	case <-wake:
	}
}

func (w *worker) backoff(failures int) time.Duration {
	d := w.p.opts.MinBackoff << min(failures-1, 20)
	d = min(d, w.p.opts.Config.MaxBackoff.D())
	// Full jitter in the upper half: targets that failed together do not
	// retry in step.
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func (w *worker) run(ctx context.Context) {
	w.mu.Lock()
	w.started = w.p.now()
	w.mu.Unlock()
	wake, cancel := w.p.opts.Store.WatchLog()
	defer cancel()
	defer w.disconnect()
	var cursor uint64
	for {
		var err error
		var fresh bool
		if cursor, fresh, err = w.p.opts.Store.RegisterConsumer(ctx, w.consumer); err == nil && fresh {
			// A new cursor starts at the head: the target must first get
			// the whole state, even if an earlier target of this name
			// left its marker behind.
			err = w.p.opts.Store.Update(ctx, func(tx *store.Tx) error { return tx.DeleteBlob(nsPublish, w.initKey()) })
		}
		if err == nil {
			err = w.loadFailed(ctx)
		}
		if err == nil {
			err = w.loadPaused(ctx)
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		w.fail(err)
		w.wait(ctx, w.backoff(w.snapshot().Failures), nil)
	}
	w.mu.Lock()
	w.state.Cursor = cursor
	w.mu.Unlock()
	metricsTick := time.NewTicker(15 * time.Second)
	defer metricsTick.Stop()
	for ctx.Err() == nil {
		if w.paused() {
			w.wait(ctx, time.Hour, nil)
			continue
		}
		select {
		case <-metricsTick.C:
			w.updatePendingMetrics(ctx)
		default:
		}
		progressed, err := w.round(ctx, &cursor)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.wait(ctx, w.backoff(w.snapshot().Failures), nil)
			continue
		}
		// Retry the records the target refused whose time has come,
		// between batches too, so a busy log does not starve them.
		if next := w.nextRetry(); !next.IsZero() && !w.p.now().Before(next) {
			if _, err := w.retryFailed(ctx); err != nil {
				w.wait(ctx, w.backoff(w.snapshot().Failures), nil)
				continue
			}
		}
		if !progressed {
			w.updatePendingMetrics(ctx)
			d := 30 * time.Second
			if next := w.nextRetry(); !next.IsZero() {
				d = max(min(d, next.Sub(w.p.now())), time.Millisecond)
			}
			w.wait(ctx, d, wake)
		}
	}
}

func (w *worker) updatePendingMetrics(ctx context.Context) {
	n, oldest, err := w.p.opts.Store.PendingFor(ctx, w.snapshot().Cursor)
	if err != nil {
		return
	}
	w.p.metrics.pending.WithLabelValues(w.t.Name).Set(float64(n))
	age := 0.0
	if !oldest.IsZero() {
		age = w.p.now().Sub(oldest).Seconds()
	}
	w.p.metrics.oldest.WithLabelValues(w.t.Name).Set(age)
}

// round delivers the initial state if the target lacks it, else one batch
// of the log. progressed is false when there was nothing to do.
func (w *worker) round(ctx context.Context, cursor *uint64) (progressed bool, err error) {
	st := w.p.opts.Store
	// Both markers in one read: whether the target has had the initial
	// state, and whether a resync was asked for.
	var initialised, resync bool
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		if initialised, err = hasBlob(tx, w.initKey()); err != nil {
			return err
		}
		resync, err = hasBlob(tx, w.resyncKey())
		return err
	}); err != nil {
		w.fail(err)
		return false, err
	}
	w.mu.Lock()
	w.state.Initialised = initialised
	w.mu.Unlock()
	if !initialised {
		return true, w.initialise(ctx, cursor)
	}
	if resync {
		return true, w.resyncTarget(ctx)
	}
	es, err := st.ReadLog(ctx, *cursor, w.p.opts.Config.BatchSize)
	if err != nil {
		w.fail(err)
		return false, err
	}
	if len(es) == 0 {
		return false, nil
	}
	last := es[len(es)-1].Seq
	if err := w.deliver(ctx, es, last, true, false); err != nil {
		return false, err
	}
	*cursor = last
	return true, nil
}

// initialise delivers the whole current state, then marks the target
// initialised with its cursor at least at the snapshot's head.
func (w *worker) initialise(ctx context.Context, cursor *uint64) error {
	var es []store.LogEntry
	err := w.p.opts.Store.View(ctx, func(tx *store.Tx) error {
		cas, err := tx.CAs()
		if err != nil {
			return err
		}
		for _, c := range cas {
			es = append(es, store.LogEntry{Kind: store.LogCACert, Key: c.Name})
			for _, crl := range crlscope.Published(c.Name) {
				es = append(es, store.LogEntry{Kind: store.LogCRLPublished, Key: crl.File()})
			}
		}
		if !w.t.Publish.SubscriberCerts {
			return nil
		}
		return tx.EachCert(func(c *store.Cert) error {
			if w.wants(c) {
				es = append(es, store.LogEntry{Kind: store.LogCertIssued, Key: c.SerialHex()})
			}
			return nil
		})
	})
	if err != nil {
		w.fail(err)
		return err
	}
	// The walk is at or after the registration's head (*cursor): every
	// change up to the cursor is in it, later ones follow from the log.
	w.log.Info("delivering the whole state", "records", len(es))
	batch := max(w.p.opts.Config.BatchSize, 1)
	for i := 0; i < len(es); i += batch {
		part := es[i:min(i+batch, len(es))]
		if err := w.deliver(ctx, part, *cursor, true, i+batch >= len(es)); err != nil {
			return err
		}
	}
	if len(es) == 0 {
		return w.deliver(ctx, nil, *cursor, true, true)
	}
	return nil
}

// deliver writes the newest state of every record es names, then, in one
// transaction, advances the cursor to seq (with advance) and records the
// deliveries (and, with markInit, that the target has the whole state).
//
// A failure of the connection or of the target as a whole (network, bind,
// busy) fails the batch: nothing is recorded and the cursor stays. A
// record the target refuses by itself (a DN the mapping cannot build, a
// schema violation) does not: it is recorded as failed, with its own
// retry time, and the cursor moves past it, so one bad entry never holds
// back the changes after it.
func (w *worker) deliver(ctx context.Context, es []store.LogEntry, seq uint64, advance, markInit bool) error {
	plan, err := w.plan(ctx, es)
	if err != nil {
		w.fail(err)
		return err
	}
	bad := map[string]failure{}
	for k, f := range plan.failed {
		bad[k] = f
	}
	if len(plan.entries) > 0 {
		if err := w.connect(); err != nil {
			w.fail(err)
			return err
		}
		if failed := w.write(plan.entries); len(failed) > 0 {
			for _, ferr := range failed {
				if !isRecordErr(ferr) {
					w.fail(ferr)
					w.disconnect()
					return ferr
				}
			}
			for i, ferr := range failed {
				for _, k := range plan.entries[i].keys {
					bad[k] = failure{dn: plan.entries[i].dn, err: ferr}
				}
			}
		}
	}
	now := w.p.now()
	w.mu.Lock()
	known := w.failed
	w.mu.Unlock()
	newFailed := map[string]FailedRecord{}
	var cleared []string
	nDelivered := 0
	err = w.p.opts.Store.Update(ctx, func(tx *store.Tx) error {
		if advance {
			if err := tx.SetCursor(w.consumer, seq); err != nil {
				return err
			}
		}
		for _, d := range plan.records {
			if _, ok := bad[d.key]; ok {
				continue
			}
			v, _ := json.Marshal(delivered{At: now, DN: d.dn, Seq: d.seq, Present: d.present})
			if err := tx.PutBlob(nsPublish, w.t.Name+"/"+d.key, v); err != nil {
				return err
			}
			nDelivered++
		}
		for k, f := range bad {
			prev, ok := known[k]
			r := FailedRecord{Key: k, DN: f.dn, Error: f.err.Error(), Since: now, At: now, Tries: 1}
			if ok {
				r.Since, r.Tries = prev.Since, prev.Tries+1
			}
			r.NextRetry = now.Add(w.recordBackoff(r.Tries))
			v, _ := json.Marshal(r)
			if err := tx.PutBlob(nsFailed, w.failedKey(k), v); err != nil {
				return err
			}
			newFailed[k] = r
		}
		// A record that was failed and is now written, or no longer
		// wanted by the target, leaves the failed set.
		for _, e := range es {
			k := recordKey(e)
			if _, ok := known[k]; !ok || k == "" {
				continue
			}
			if _, ok := bad[k]; ok {
				continue
			}
			if err := tx.DeleteBlob(nsFailed, w.failedKey(k)); err != nil {
				return err
			}
			cleared = append(cleared, k)
		}
		if markInit {
			return tx.PutBlob(nsPublish, w.initKey(), []byte(now.UTC().Format(time.RFC3339)))
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("recording the delivery: %w", err)
		w.fail(err)
		return err
	}
	w.mu.Lock()
	if advance {
		w.state.Cursor = seq
	}
	w.state.LastSuccess = now
	w.state.Failures = 0
	w.state.Delivered += uint64(nDelivered)
	if markInit {
		w.state.Initialised = true
	}
	if len(newFailed) > 0 || len(cleared) > 0 {
		m := make(map[string]FailedRecord, len(w.failed)+len(newFailed))
		for k, v := range w.failed {
			m[k] = v
		}
		for _, k := range cleared {
			delete(m, k)
		}
		for k, v := range newFailed {
			m[k] = v
		}
		w.failed = m
	}
	nFailed := len(w.failed)
	w.mu.Unlock()
	w.p.metrics.delivered.WithLabelValues(w.t.Name).Add(float64(nDelivered))
	w.p.metrics.lastSuccess.WithLabelValues(w.t.Name).Set(float64(now.Unix()))
	w.p.metrics.failedRecords.WithLabelValues(w.t.Name).Set(float64(nFailed))
	if len(newFailed) > 0 {
		w.recordFailed(newFailed)
	}
	return nil
}

// recordFailed puts refused records in the target's last error (the
// target as a whole works: Failures and its backoff are untouched).
func (w *worker) recordFailed(fs map[string]FailedRecord) {
	keys := make([]string, 0, len(fs))
	for k := range fs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	f := fs[keys[0]]
	msg := fmt.Sprintf("%d record(s) refused, retried on their own; %s", len(fs), f.Key)
	if f.DN != "" {
		msg += " (" + f.DN + ")"
	}
	msg += ": " + f.Error
	w.mu.Lock()
	w.state.LastError, w.state.LastErrorAt = msg, f.At
	w.mu.Unlock()
	w.p.metrics.failures.WithLabelValues(w.t.Name).Inc()
	w.p.metrics.lastError.WithLabelValues(w.t.Name).Set(float64(f.At.Unix()))
	w.log.Warn("target refused records; the cursor moves on and they are retried with backoff", "records", len(fs), "first", f.Key, "dn", f.DN, "err", f.Error)
}

func (w *worker) fail(err error) {
	now := w.p.now()
	w.mu.Lock()
	w.state.LastError = err.Error()
	w.state.LastErrorAt = now
	w.state.Failures++
	n := w.state.Failures
	w.mu.Unlock()
	w.p.metrics.failures.WithLabelValues(w.t.Name).Inc()
	w.p.metrics.lastError.WithLabelValues(w.t.Name).Set(float64(now.Unix()))
	lvl := slog.LevelWarn
	if n > 1 {
		lvl = slog.LevelDebug // the first of a run of failures is enough at warn
	}
	w.log.Log(context.Background(), lvl, "publishing failed; retrying with backoff", "err", err, "failures", n)
}

func (w *worker) connect() error {
	if w.conn != nil && !w.conn.IsClosing() {
		return nil
	}
	w.disconnect()
	pw, err := w.t.Password()
	if err != nil {
		return err
	}
	c, u, err := dial(w.t, w.tls.Clone(), pw)
	if err != nil {
		return err
	}
	w.conn = c
	w.mu.Lock()
	w.state.Connected, w.state.URL = true, u
	w.mu.Unlock()
	w.p.metrics.connected.WithLabelValues(w.t.Name).Set(1)
	w.log.Info("connected", "url", u)
	return nil
}

func (w *worker) disconnect() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
	w.mu.Lock()
	w.state.Connected, w.state.URL = false, ""
	w.mu.Unlock()
	w.p.metrics.connected.WithLabelValues(w.t.Name).Set(0)
}

// write puts every entry, several at a time on the one connection
// (distinct entries are independent), and returns the errors by index.
func (w *worker) write(es []*plannedEntry) map[int]error {
	var mu sync.Mutex
	failed := map[int]error{}
	sem := make(chan struct{}, w.p.opts.Workers)
	var wg sync.WaitGroup
	for i, e := range es {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := put(w.conn, w.t.BaseDN, &e.entry); err != nil {
				mu.Lock()
				failed[i] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed
}

// ---- planning: from log entries to target entries ----

type plannedEntry struct {
	entry
	keys []string // the records that led to it ("cert/<serial>", ...)
}

// failure is why a record could not be written, and to which entry.
type failure struct {
	dn  string
	err error
}

type record struct {
	key     string // "cert/<serial>", "crl/<file>", "ca/<name>"
	dn      string
	seq     uint64
	present bool
}

type plan struct {
	entries []*plannedEntry
	records []record
	// failed are records refused before any write (no DN can be built).
	failed map[string]failure
}

// wants says whether the target publishes this certificate at all.
func (w *worker) wants(c *store.Cert) bool {
	p := w.t.Publish
	if !p.SubscriberCerts {
		return false
	}
	if len(p.Profiles) > 0 && !slices.Contains(p.Profiles, c.Profile) {
		return false
	}
	if len(p.Organisations) > 0 {
		x, err := x509.ParseCertificate(c.DER)
		if err != nil || !slices.ContainsFunc(x.Subject.Organization, func(o string) bool { return slices.Contains(p.Organisations, o) }) {
			return false
		}
	}
	return true
}

// current says whether a wanted certificate belongs in its entry now.
func (w *worker) current(c *store.Cert) bool {
	if !w.t.RemoveRevoked {
		return true
	}
	return c.Status == store.StatusValid && w.p.now().Before(c.NotAfter)
}

// plan reads, in one transaction, the newest state of every record es
// names (coalescing repeated keys) and turns it into target entries.
func (w *worker) plan(ctx context.Context, es []store.LogEntry) (*plan, error) {
	out := &plan{failed: map[string]failure{}}
	lastSeq := map[string]uint64{}
	var serials, cas []string
	crlFiles := map[string]bool{}
	for _, e := range es {
		k := string(e.Kind) + "/" + e.Key
		switch e.Kind {
		case store.LogCertIssued, store.LogCertRevoked:
			k = "cert/" + e.Key
			if _, seen := lastSeq[k]; !seen {
				serials = append(serials, e.Key)
			}
		case store.LogCACert:
			k = "ca/" + e.Key
			if _, seen := lastSeq[k]; !seen {
				cas = append(cas, e.Key)
			}
		case store.LogCRLPublished:
			k = "crl/" + e.Key
			crlFiles[e.Key] = true
		default:
			continue // a kind for other consumers
		}
		lastSeq[k] = e.Seq
	}
	err := w.p.opts.Store.View(ctx, func(tx *store.Tx) error {
		if err := w.planCerts(tx, serials, lastSeq, out); err != nil {
			return err
		}
		return w.planCAs(tx, cas, crlFiles, lastSeq, out)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (w *worker) planCerts(tx *store.Tx, serials []string, lastSeq map[string]uint64, out *plan) error {
	if !w.t.Publish.SubscriberCerts {
		return nil
	}
	type group struct {
		cn      string
		subject *x509.Certificate
		keys    []string
	}
	groups := map[string]*group{}
	var order []string
	for _, h := range serials {
		serial, err := hex.DecodeString(h)
		if err != nil {
			continue
		}
		c, err := tx.Cert(serial)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if !w.wants(c) {
			continue
		}
		x, err := x509.ParseCertificate(c.DER)
		if err != nil {
			out.failed["cert/"+h] = failure{err: recordError{fmt.Errorf("certificate %s: %w", h, err)}}
			continue
		}
		dn, err := w.m.subscriberDN(x.Subject)
		if err != nil {
			out.failed["cert/"+h] = failure{err: fmt.Errorf("certificate %s: %w", h, err)}
			continue
		}
		g := groups[dn]
		if g == nil {
			g = &group{cn: x.Subject.CommonName, subject: x}
			groups[dn] = g
			order = append(order, dn)
		}
		g.keys = append(g.keys, "cert/"+h)
		out.records = append(out.records, record{key: "cert/" + h, dn: dn, seq: lastSeq["cert/"+h], present: w.current(c)})
	}
	for _, dn := range order {
		g := groups[dn]
		// The entry's whole value set: every publishable certificate
		// that maps to the same DN, so a replace keeps the others.
		var vals [][]byte
		var sn string
		err := tx.CertsByCommonName(g.cn, func(c *store.Cert) error {
			if !w.wants(c) || !w.current(c) {
				return nil
			}
			x, err := x509.ParseCertificate(c.DER)
			if err != nil {
				return nil
			}
			if d, err := w.m.subscriberDN(x.Subject); err != nil || !strings.EqualFold(d, dn) {
				return nil
			}
			vals = append(vals, c.DER)
			if sn == "" && c.SubscriberID != "" {
				if s, err := tx.Subscriber(c.SubscriberID); err == nil {
					sn = s.Surname
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(vals, bytes.Compare)
		if sn == "" {
			sn = g.cn
		}
		naming := map[string]string{"cn": g.cn}
		if hasPersonClass(w.t.ObjectClasses.Subscriber) {
			naming["sn"] = sn
		}
		if d, err := ldap.ParseDN(dn); err == nil && len(d.RDNs) > 0 {
			for _, a := range d.RDNs[0].Attributes {
				naming[a.Type] = a.Value
			}
		}
		out.entries = append(out.entries, &plannedEntry{keys: g.keys, entry: entry{
			dn: dn, classes: w.t.ObjectClasses.Subscriber, naming: naming, addFirst: true,
			replace: map[string][][]byte{"userCertificate;binary": vals},
		}})
	}
	return nil
}

func hasPersonClass(classes []string) bool {
	for _, c := range classes {
		switch strings.ToLower(c) {
		case "person", "organizationalperson", "inetorgperson":
			return true
		}
	}
	return false
}

// planCAs makes one entry per CA that a ca-cert or CRL entry names, with
// the attributes those entries changed.
func (w *worker) planCAs(tx *store.Tx, cas []string, crlFiles map[string]bool, lastSeq map[string]uint64, out *plan) error {
	if len(crlFiles) == 0 && len(cas) == 0 {
		return nil
	}
	all, err := tx.CAs()
	if err != nil {
		return err
	}
	for _, rec := range all {
		x, err := x509.ParseCertificate(rec.CertDER)
		var dn string
		if err == nil {
			dn, err = w.m.caDN(rec.Name, x)
		}
		if err == nil {
			if err := w.planCA(tx, rec, x, dn, cas, crlFiles, lastSeq, out); err != nil {
				return err
			}
		} else {
			ferr := failure{err: recordError{fmt.Errorf("CA %s: %w", rec.Name, err)}}
			if slices.Contains(cas, rec.Name) {
				out.failed["ca/"+rec.Name] = ferr
			}
			for _, c := range crlscope.Published(rec.Name) {
				if crlFiles[c.File()] {
					out.failed["crl/"+c.File()] = ferr
				}
			}
		}
	}
	return nil
}

// planCA plans one CA's entry.
func (w *worker) planCA(tx *store.Tx, rec *store.CA, x *x509.Certificate, dn string, cas []string, crlFiles map[string]bool, lastSeq map[string]uint64, out *plan) error {
	pub := w.t.Publish
	{
		e := &plannedEntry{entry: entry{dn: dn, classes: w.t.ObjectClasses.CA, replace: map[string][][]byte{},
			naming: map[string]string{"cn": x.Subject.CommonName}}}
		if d, err := ldap.ParseDN(dn); err == nil && len(d.RDNs) > 0 {
			for _, a := range d.RDNs[0].Attributes {
				e.naming[a.Type] = a.Value
			}
		}
		if slices.Contains(cas, rec.Name) {
			if pub.CACerts {
				e.replace["cACertificate;binary"] = [][]byte{rec.CertDER}
			}
			e.keys = append(e.keys, "ca/"+rec.Name)
			out.records = append(out.records, record{key: "ca/" + rec.Name, dn: dn, seq: lastSeq["ca/"+rec.Name], present: true})
		}
		for _, c := range crlscope.Published(rec.Name) {
			f := c.File()
			if !crlFiles[f] {
				continue
			}
			on := (c.Kind == crlscope.KindComplete && !c.Delta && pub.CRLs) ||
				(c.Kind == crlscope.KindComplete && c.Delta && pub.DeltaCRLs) ||
				(c.Kind == crlscope.KindARL && !c.Delta && pub.ARLs)
			if !on {
				continue
			}
			der, err := tx.Blob(crlscope.Namespace, f)
			if errors.Is(err, store.ErrNotFound) {
				continue // not built yet: its own entry will follow
			}
			if err != nil {
				return err
			}
			e.replace[c.LDAPAttribute()+";binary"] = [][]byte{der}
			e.keys = append(e.keys, "crl/"+f)
			out.records = append(out.records, record{key: "crl/" + f, dn: dn, seq: lastSeq["crl/"+f], present: true})
		}
		if len(e.replace) > 0 {
			out.entries = append(out.entries, e)
		}
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// hasBlob reports whether the publish namespace holds key.
func hasBlob(tx *store.Tx, key string) (bool, error) {
	_, err := tx.Blob(nsPublish, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
