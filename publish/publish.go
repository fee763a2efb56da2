package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/store"
)

// Store is what publishing needs of the store: the change log with its
// cursors, and reads of the records the log names.
type Store interface {
	ReadLog(ctx context.Context, after uint64, limit int) ([]store.LogEntry, error)
	RegisterConsumer(ctx context.Context, consumer string) (cursor uint64, fresh bool, err error)
	WatchLog() (wake <-chan struct{}, cancel func())
	PendingFor(ctx context.Context, cursor uint64) (int, time.Time, error)
	DropConsumer(ctx context.Context, consumer string) error
	View(ctx context.Context, fn func(tx *store.Tx) error) error
	Update(ctx context.Context, fn func(tx *store.Tx) error) error
}

// Options configure New.
type Options struct {
	Store   Store
	Config  config.Publish
	Logger  *slog.Logger
	Metrics prometheus.Registerer // nil: not registered
	Now     func() time.Time      // default time.Now
	// MinBackoff is the first retry delay of a failing target. Default 1s
	// (tests shorten it).
	MinBackoff time.Duration
	// Workers is how many writes one target has in flight. Default 8.
	Workers int
	// ResyncPageSize is the page size of a resync's paged search of the
	// target. Default 500.
	ResyncPageSize int
}

// Publisher runs one worker per configured target.
type Publisher struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	workers []*worker
	byName  map[string]*worker
}

// New checks the targets (CA files, passwords) and builds their workers;
// it does not connect (Run does, in the background).
func New(opts Options) (*Publisher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = time.Second
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Config.BatchSize <= 0 {
		opts.Config.BatchSize = 500
	}
	if opts.Config.MaxBackoff <= 0 {
		opts.Config.MaxBackoff = config.Duration(5 * time.Minute)
	}
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	p := &Publisher{opts: opts, log: opts.Logger.With("component", "publish"), now: opts.Now, metrics: m, byName: map[string]*worker{}}
	for _, t := range opts.Config.Targets {
		tc, err := tlsConfig(t)
		if err != nil {
			return nil, err
		}
		w := &worker{p: p, t: t, m: newMapper(t), tls: tc, consumer: ConsumerPrefix + t.Name,
			log: p.log.With("target", t.Name), kick: make(chan struct{}, 1)}
		w.state.Name = t.Name
		p.workers = append(p.workers, w)
		p.byName[t.Name] = w
	}
	return p, nil
}

// ConsumerPrefix is the change-log consumer name of a target, before its name.
const ConsumerPrefix = "publish/"

// Run runs every target's worker until ctx is done. A target that cannot
// be reached is retried by its own worker; Run returns only when ctx ends.
func (p *Publisher) Run(ctx context.Context) error {
	p.dropRemoved(ctx)
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// dropRemoved deletes the cursors of targets no longer configured, so a
// removed target does not hold back the change log's compaction for ever.
func (p *Publisher) dropRemoved(ctx context.Context) {
	var stale []string
	_ = p.opts.Store.View(ctx, func(tx *store.Tx) error {
		cs, err := tx.Cursors()
		for name := range cs {
			if t, ok := strings.CutPrefix(name, ConsumerPrefix); ok && p.byName[t] == nil {
				stale = append(stale, name)
			}
		}
		return err
	})
	for _, name := range stale {
		if err := p.opts.Store.DropConsumer(ctx, name); err != nil {
			p.log.Warn("dropping the cursor of a removed target failed", "consumer", name, "err", err)
			continue
		}
		p.log.Info("dropped the change-log cursor of a target no longer configured", "consumer", name)
	}
}

// TargetState is one target's delivery state, for diagnostics.
type TargetState struct {
	Name string `json:"name"`
	// URL is the server of the current connection ("" when not connected).
	URL       string `json:"url,omitempty"`
	Connected bool   `json:"connected"`
	Paused    bool   `json:"paused"`
	// Cursor is the last change-log entry delivered.
	Cursor uint64 `json:"cursor"`
	// Pending counts change-log entries not yet delivered; OldestPending
	// is the time of the oldest (zero when none).
	Pending       int       `json:"pending"`
	OldestPending time.Time `json:"oldest_pending,omitzero"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorAt   time.Time `json:"last_error_at,omitzero"`
	// Failed counts the records the target refused one by one (a DN the
	// mapping cannot build, a schema violation): the cursor moved past
	// them and each is retried with backoff. FailedRecords are the oldest
	// (at most MaxFailedShown).
	Failed        int            `json:"failed"`
	FailedRecords []FailedRecord `json:"failed_records,omitempty"`
	// Failures counts consecutive failed attempts of the target as a
	// whole (connection, bind; 0 after a success).
	Failures int `json:"failures"`
	// Delivered counts records written since start.
	Delivered uint64 `json:"delivered"`
	// Initialised is false until the target has received the whole state
	// once (a new target).
	Initialised bool `json:"initialised"`
	// Resyncing: a resync was requested and has not finished.
	Resyncing bool `json:"resyncing"`
	// LastResync is what the last finished resync found and repaired.
	LastResync *ResyncReport `json:"last_resync,omitempty"`
}

// MaxFailedShown bounds TargetState.FailedRecords.
const MaxFailedShown = 20

// Targets returns every target's state, with pending counts read now.
func (p *Publisher) Targets(ctx context.Context) []TargetState {
	out := make([]TargetState, 0, len(p.workers))
	for _, w := range p.workers {
		s := w.snapshot()
		s.Failed, s.FailedRecords = w.failedList(MaxFailedShown)
		_ = p.opts.Store.View(ctx, func(tx *store.Tx) error {
			_, err := tx.Blob(nsPublish, w.resyncKey())
			s.Resyncing = err == nil
			if b, err := tx.Blob(nsPublish, w.reportKey()); err == nil {
				var r ResyncReport
				if json.Unmarshal(b, &r) == nil {
					s.LastResync = &r
				}
			}
			return nil
		})
		if n, oldest, err := p.opts.Store.PendingFor(ctx, s.Cursor); err == nil {
			s.Pending, s.OldestPending = n, oldest
		}
		out = append(out, s)
	}
	return out
}

// Lagging names the targets whose oldest pending change is older than
// publish.lag_warning (for /readyz detail; not a readiness failure).
func (p *Publisher) Lagging(ctx context.Context) []string {
	var out []string
	lag := p.opts.Config.LagWarning.D()
	for i, s := range p.Targets(ctx) {
		switch {
		case !s.OldestPending.IsZero() && p.now().Sub(s.OldestPending) > lag:
			out = append(out, fmt.Sprintf("publish target %s: %d changes pending, oldest %s", s.Name, s.Pending, s.OldestPending.Format(time.RFC3339)))
		case !s.Initialised && p.now().Sub(p.workers[i].startedAt()) > lag:
			out = append(out, fmt.Sprintf("publish target %s: has not received the initial state yet", s.Name))
		default:
			continue
		}
		if s.LastError != "" {
			out[len(out)-1] += " (last error: " + s.LastError + ")"
		}
	}
	return out
}

// ErrUnknownTarget is returned for a target name not configured.
var ErrUnknownTarget = errors.New("unknown publish target")

func (p *Publisher) worker(name string) (*worker, error) {
	w, ok := p.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownTarget, name)
	}
	return w, nil
}

// Pause stops delivery to a target (its changes queue) until Resume. The
// pause is durable: a restart keeps the target paused. also, if not nil,
// runs in the same store transaction (the caller's audit record).
func (p *Publisher) Pause(ctx context.Context, name string, also func(*store.Tx) error) error {
	w, err := p.worker(name)
	if err != nil {
		return err
	}
	if err := p.opts.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutBlob(nsPublish, w.pausedKey(), []byte(p.now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		return runAlso(tx, also)
	}); err != nil {
		return fmt.Errorf("pausing publish target %s: %w", name, err)
	}
	w.setPaused(true)
	return nil
}

// Resume restarts delivery to a paused target, and retries a failing one
// (and its failed records) at once.
func (p *Publisher) Resume(ctx context.Context, name string, also func(*store.Tx) error) error {
	w, err := p.worker(name)
	if err != nil {
		return err
	}
	if err := p.opts.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.DeleteBlob(nsPublish, w.pausedKey()); err != nil {
			return err
		}
		return runAlso(tx, also)
	}); err != nil {
		return fmt.Errorf("resuming publish target %s: %w", name, err)
	}
	w.retryNow()
	w.setPaused(false)
	return nil
}

// Resync makes the worker compare the target with the store and repair it
// (resync.go): it reads the target's subtree with a paged search, adds
// what is missing, replaces what differs, and removes the certificates the
// target should not carry (revoked or expired, per remove_revoked). The
// request is durable: a restart before it finished repeats it.
func (p *Publisher) Resync(ctx context.Context, name string, also func(*store.Tx) error) error {
	w, err := p.worker(name)
	if err != nil {
		return err
	}
	if err := p.opts.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutBlob(nsPublish, w.resyncKey(), []byte(p.now().UTC().Format(time.RFC3339))); err != nil {
			return err
		}
		return runAlso(tx, also)
	}); err != nil {
		return fmt.Errorf("requesting resync of %s: %w", name, err)
	}
	w.poke()
	return nil
}

func runAlso(tx *store.Tx, also func(*store.Tx) error) error {
	if also == nil {
		return nil
	}
	return also(tx)
}

// TargetCertState is where one certificate stands on one target.
type TargetCertState struct {
	Target string `json:"target"`
	// State is "published" (written, PublishedAt says when), "pending"
	// (a change not yet delivered), "failed" (the target refused the
	// record, Error says why; it is retried with backoff on its own), "not-published" (the target's
	// publish settings exclude it) or "absent" (never delivered).
	State       string    `json:"state"`
	DN          string    `json:"dn,omitempty"`
	PublishedAt time.Time `json:"published_at,omitzero"`
	// Present says whether the last write put the certificate in the
	// entry (false: it was removed as revoked or expired).
	Present bool `json:"present"`
	// AbsentAtCheck is when the last resync read the target and found the
	// certificate missing from its entry (zero: it was there, or no resync
	// ran). State is "absent" until the repair is written.
	AbsentAtCheck time.Time `json:"absent_at_check,omitzero"`
	// Error, ErrorAt, Tries and NextRetry describe a failed record.
	Error     string    `json:"error,omitempty"`
	ErrorAt   time.Time `json:"error_at,omitzero"`
	Tries     int       `json:"tries,omitempty"`
	NextRetry time.Time `json:"next_retry,omitzero"`
}

// CertStatus says, per target, where the certificate with this serial
// stands. It reads the store and memory only, not the targets.
func (p *Publisher) CertStatus(ctx context.Context, serial []byte) ([]TargetCertState, error) {
	all, err := p.CertStatuses(ctx, [][]byte{serial})
	if err != nil {
		return nil, err
	}
	return all[0], nil
}

// CertStatuses is CertStatus for many certificates (an organisation's):
// the store is read in one transaction and each target's undelivered
// changes once for all.
func (p *Publisher) CertStatuses(ctx context.Context, serials [][]byte) ([][]TargetCertState, error) {
	type found struct {
		c       *store.Cert
		recs    map[string]*delivered
		checked map[string]time.Time
	}
	fs := make([]found, len(serials))
	err := p.opts.Store.View(ctx, func(tx *store.Tx) error {
		for i, serial := range serials {
			c, err := tx.Cert(serial)
			if err != nil {
				return fmt.Errorf("certificate %x: %w", serial, err)
			}
			f := found{c: c, recs: map[string]*delivered{}, checked: map[string]time.Time{}}
			for _, w := range p.workers {
				if d, err := readDelivered(tx, w.certKey(c.SerialHex())); err == nil {
					f.recs[w.t.Name] = d
				}
				f.checked[w.t.Name] = checkedAbsent(tx, w.t.Name, serial)
			}
			fs[i] = f
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pending := map[string]map[string]bool{}
	out := make([][]TargetCertState, len(serials))
	for i, f := range fs {
		key := f.c.SerialHex()
		for _, w := range p.workers {
			s := TargetCertState{Target: w.t.Name, State: "absent"}
			if d := f.recs[w.t.Name]; d != nil {
				s.State, s.DN, s.PublishedAt, s.Present = "published", d.DN, d.At, d.Present
			}
			if at := f.checked[w.t.Name]; !at.IsZero() {
				s.AbsentAtCheck = at
				if s.PublishedAt.Before(at) {
					s.State = "absent"
				}
			}
			if !w.wants(f.c) {
				s.State = "not-published"
			} else if fr, ok := w.failedFor("cert/" + key); ok {
				s.State, s.Error, s.ErrorAt, s.NextRetry, s.Tries = "failed", fr.Error, fr.At, fr.NextRetry, fr.Tries
				if fr.DN != "" {
					s.DN = fr.DN
				}
			} else {
				pk, ok := pending[w.t.Name]
				if !ok {
					pk, _ = w.pendingKeys(ctx) // unreadable: not shown as pending
					pending[w.t.Name] = pk
				}
				if pk[key] {
					s.State = "pending"
				}
			}
			out[i] = append(out[i], s)
		}
		sort.Slice(out[i], func(a, b int) bool { return out[i][a].Target < out[i][b].Target })
	}
	return out, nil
}
