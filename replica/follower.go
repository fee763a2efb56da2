package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/store"
)

// AppliedCursor is a replica's change-log cursor in its own store: the
// primary's sequence of the last entry applied (written in the same
// transaction as the entry's records).
const AppliedCursor = "replica-applied"

// errBehind reports a gap: a message whose predecessor was not applied.
var errBehind = errors.New("replica is behind the stream's retention")

// errSnapshotOld reports that the stored snapshot is not newer than what
// the replica applied, so loading it cannot close a gap.
var errSnapshotOld = errors.New("the snapshot is not newer than the applied position")

// FollowerOptions configure a Follower.
type FollowerOptions struct {
	Store     *store.Store
	JetStream jetstream.JetStream
	Stream    Stream
	// Name makes the durable consumer's name, "replica-<Name>".
	Name       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// MaxLag is the readiness bound (replica.max_lag). Default 10s.
	MaxLag time.Duration
	// BatchSize is how many messages one transaction applies. Default 256.
	BatchSize int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// TempDir holds the snapshot while it is loaded. Default os.TempDir().
	TempDir string
	// OnReload runs after a snapshot was loaded into the store (the CA
	// certificates may have changed).
	OnReload func(ctx context.Context)
	// OnApplied runs after each applied batch with its records, after
	// the commit (the wiring drops cached OCSP responses and reloads CAs).
	OnApplied func(ctx context.Context, recs []store.Record)
}

// Follower applies the stream to a replica's store.
type Follower struct {
	opts FollowerOptions
	st   *store.Store
	js   jetstream.JetStream
	log  *slog.Logger
	m    *followMetrics
	now  func() time.Time

	applied atomic.Uint64
	loaded  atomic.Bool
	// behind is set while a gap waits for a newer snapshot.
	behind    atomic.Bool
	contact   atomic.Int64 // unix nanos of the last successful fetch
	lagSince  atomic.Int64 // unix nanos of the oldest unapplied change, 0: caught up
	mu        sync.Mutex
	lastError string
}

// NewFollower returns a Follower; Bootstrap (if the store is empty) and
// Run start it.
func NewFollower(opts FollowerOptions) (*Follower, error) {
	if opts.Store == nil || opts.JetStream == nil || opts.Name == "" {
		return nil, errors.New("replica: Store, JetStream and Name are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxLag <= 0 {
		opts.MaxLag = 10 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	f := &Follower{opts: opts, st: opts.Store, js: opts.JetStream, log: opts.Logger.With("component", "replica", "replica", opts.Name),
		m: newFollowMetrics(opts.Registerer), now: opts.Now}
	return f, nil
}

// Applied is the sequence of the last entry applied.
func (f *Follower) Applied() uint64 { return f.applied.Load() }

// Start reads the applied position; with none (an empty store) it loads
// the snapshot first, waiting for the primary to store one, until ctx
// ends. It returns once the store holds a state to serve.
func (f *Follower) Start(ctx context.Context) error {
	var seq uint64
	var ok bool
	if err := f.st.View(ctx, func(tx *store.Tx) error {
		var err error
		seq, ok, err = tx.Cursor(AppliedCursor)
		return err
	}); err != nil {
		return err
	}
	if ok {
		f.setApplied(seq)
		f.loaded.Store(true)
		return nil
	}
	for {
		err := f.bootstrap(ctx, 0)
		if err == nil {
			return nil
		}
		f.setError(err)
		f.log.Warn("waiting for a snapshot to bootstrap from", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bootstrapping the replica: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// bootstrap loads the snapshot into the store and sets the applied
// position to the snapshot's. A snapshot below minSeq is not loaded
// (errSnapshotOld): after a gap, one that is not newer than the applied
// position cannot close it, and loading it would only empty the store
// under the readers for nothing.
func (f *Follower) bootstrap(ctx context.Context, minSeq uint64) error {
	begin := time.Now()
	// Short attempts for the metadata: while the cluster elects its meta
	// leader a request gets no answer, and the caller retries.
	mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	obs, err := f.js.ObjectStore(mctx, f.opts.Stream.Bucket)
	if err != nil {
		return fmt.Errorf("opening object store %s: %w", f.opts.Stream.Bucket, err)
	}
	info, err := obs.GetInfo(mctx, snapshotName)
	if err != nil {
		return fmt.Errorf("reading the snapshot's description: %w", err)
	}
	seq, err := strconv.ParseUint(info.Metadata[metaSeq], 10, 64)
	if err != nil {
		return fmt.Errorf("snapshot has no change-log position (%q)", info.Metadata[metaSeq])
	}
	if seq < minSeq {
		return fmt.Errorf("%w: snapshot at %d, applied %d", errSnapshotOld, seq, minSeq-1)
	}
	// Downloaded to a file first: the object's chunks come from a consumer
	// that times out if its reader (Badger loading) falls behind.
	tmp, err := os.CreateTemp(f.opts.TempDir, "certcenter-snapshot-*")
	if err != nil {
		return fmt.Errorf("creating the snapshot's download file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	// The object store gives a Get without a deadline its default timeout
	// (5 s) for the whole download, which a snapshot of a million
	// certificates (gigabytes) never meets: bound it by the size instead.
	dctx, dcancel := context.WithTimeout(ctx, downloadTimeout(info.Size))
	defer dcancel()
	res, err := obs.Get(dctx, snapshotName)
	if err != nil {
		return fmt.Errorf("reading the snapshot: %w", err)
	}
	_, err = io.Copy(tmp, res) // checks the object's SHA-256 digest at its end
	res.Close()
	if err != nil {
		return fmt.Errorf("downloading the snapshot: %w", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	f.loaded.Store(false)
	if err := f.st.Reload(ctx, bufio.NewReaderSize(tmp, 1<<20)); err != nil {
		return fmt.Errorf("loading the snapshot: %w", err)
	}
	if err := f.st.Update(ctx, func(tx *store.Tx) error { return tx.SetCursor(AppliedCursor, seq) }); err != nil {
		return err
	}
	f.setApplied(seq)
	f.behind.Store(false)
	f.m.bootstraps.Inc()
	f.loaded.Store(true)
	f.log.Info("bootstrapped from the snapshot", "seq", seq, "bytes", info.Size, "elapsed", time.Since(begin).Round(time.Millisecond))
	if f.opts.OnReload != nil {
		f.opts.OnReload(ctx)
	}
	return nil
}

// stallCheckEvery is how often an idle follower asks its consumer whether
// it holds undelivered messages.
const stallCheckEvery = 3 * time.Second

// minDownloadRate is the slowest snapshot download the follower waits
// for, in bytes per second: a stalled one is retried rather than awaited
// for ever, and a large one on a slow link still finishes.
const minDownloadRate = 4 << 20

// downloadTimeout is how long a snapshot of size bytes may take to download.
func downloadTimeout(size uint64) time.Duration {
	return time.Minute + time.Duration(size/minDownloadRate)*time.Second
}

func (f *Follower) setApplied(seq uint64) {
	f.applied.Store(seq)
	f.m.applied.Set(float64(seq))
}

func (f *Follower) setError(err error) {
	f.mu.Lock()
	f.lastError = err.Error()
	f.mu.Unlock()
}

// Run follows the stream until ctx is done, re-bootstrapping when the
// replica has fallen behind the stream's retention.
func (f *Follower) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := f.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errBehind) {
			f.behind.Store(true)
			f.log.Warn("fell behind the stream's retention; loading the snapshot again", "applied", f.Applied(), "err", err)
			if err = f.bootstrap(ctx, f.Applied()+1); err == nil {
				backoff = 100 * time.Millisecond
				continue
			}
		}
		f.setError(err)
		f.log.Warn("following the change-log stream failed; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (f *Follower) consumerName() string { return "replica-" + f.opts.Name }

// follow (re)creates the durable consumer at the first message after the
// applied position and applies batches until an error.
func (f *Follower) follow(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	stream, err := f.js.Stream(sctx, f.opts.Stream.Name)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", f.opts.Stream.Name, err)
	}
	start, err := f.findStart(sctx, stream, f.Applied())
	if err != nil {
		return err
	}
	// The consumer starts where this replica's store says, not where the
	// server's copy of it stood: the store is the truth (it may have been
	// reloaded), so an old consumer is replaced.
	if err := f.js.DeleteConsumer(sctx, f.opts.Stream.Name, f.consumerName()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("replacing consumer %s: %w", f.consumerName(), err)
	}
	cons, err := stream.CreateOrUpdateConsumer(sctx, jetstream.ConsumerConfig{
		Durable: f.consumerName(), DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start,
		AckPolicy: jetstream.AckAllPolicy, MaxAckPending: 4 * f.opts.BatchSize, AckWait: 30 * time.Second,
		Description: "certcenter read replica " + f.opts.Name,
	})
	if err != nil {
		return fmt.Errorf("creating consumer %s: %w", f.consumerName(), err)
	}
	large, _ := f.js.ObjectStore(sctx, f.opts.Stream.largeBucket())
	f.contact.Store(f.now().UnixNano())
	// A pull iterator keeps requests outstanding, so a message is handed
	// over as soon as it is stored; a batch is what has arrived by then.
	it, err := cons.Messages(jetstream.PullMaxMessages(2*f.opts.BatchSize), jetstream.PullHeartbeat(2*time.Second))
	if err != nil {
		return fmt.Errorf("consuming %s: %w", f.opts.Stream.Name, err)
	}
	defer it.Stop()
	var lastCheck time.Time
	stalledChecks := 0
	for ctx.Err() == nil {
		m, err := it.Next(jetstream.NextMaxWait(time.Second))
		if errors.Is(err, nats.ErrTimeout) {
			// Nothing new for a second. Usually caught up; but when the
			// consumer's leader dies under the pull (a NATS node lost),
			// the iterator may wait for ever while the stream holds
			// messages for it. Every few idle seconds ask the consumer:
			// messages pending at two checks in a row with nothing
			// received between them, or no answer, and the consumer is
			// made again from the applied position.
			if now := f.now(); now.Sub(lastCheck) >= stallCheckEvery {
				lastCheck = now
				ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
				info, ierr := cons.Info(ictx)
				icancel()
				switch {
				case ierr != nil:
					return fmt.Errorf("consumer %s does not answer: %w", f.consumerName(), ierr)
				case info.NumPending > 0:
					if stalledChecks++; stalledChecks >= 2 {
						return fmt.Errorf("consumer %s holds %d messages it does not deliver", f.consumerName(), info.NumPending)
					}
					continue // not caught up: no contact recorded
				default:
					stalledChecks = 0
				}
			}
			f.contact.Store(f.now().UnixNano())
			f.lagSince.Store(0)
			f.m.pending.Set(0)
			f.m.lag.Set(0)
			continue
		}
		if err != nil {
			return fmt.Errorf("consuming %s: %w", f.opts.Stream.Name, err)
		}
		stalledChecks = 0
		f.contact.Store(f.now().UnixNano())
		msgs := []jetstream.Msg{m}
		for len(msgs) < f.opts.BatchSize {
			m, err := it.Next(jetstream.NextMaxWait(time.Millisecond))
			if err != nil {
				break // none buffered now; a real failure shows on the next Next
			}
			msgs = append(msgs, m)
		}
		if large == nil {
			large, _ = f.js.ObjectStore(ctx, f.opts.Stream.largeBucket())
		}
		if err := f.apply(ctx, msgs, large); err != nil {
			return err
		}
	}
	return nil
}

// findStart finds the stream sequence of the first message whose entry is
// after applied: entries are in the stream in log order, so a binary
// search over the stream's sequences finds it in a few reads.
func (f *Follower) findStart(ctx context.Context, stream jetstream.Stream, applied uint64) (uint64, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", f.opts.Stream.Name, err)
	}
	lo, hi := info.State.FirstSeq, info.State.LastSeq+1
	if info.State.Msgs == 0 {
		return hi, nil
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		m, err := stream.GetMsg(ctx, mid)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			lo = mid + 1 // aged out meanwhile
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading stream message %d: %w", mid, err)
		}
		id, err := strconv.ParseUint(m.Header.Get(hdrMsgID), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stream message %d has message ID %q", mid, m.Header.Get(hdrMsgID))
		}
		if id <= applied {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// apply writes a batch in one transaction with the applied position, then
// acknowledges it. Entries at or below the position are skipped (a
// redelivery, or an entry the snapshot already held); a message whose
// predecessor is beyond the position means entries were lost to retention.
func (f *Follower) apply(ctx context.Context, msgs []jetstream.Msg, large jetstream.ObjectStore) error {
	decoded := make([]*message, 0, len(msgs))
	for _, m := range msgs {
		data := m.Data()
		if obj := m.Headers().Get(hdrObject); obj != "" {
			if large == nil {
				return fmt.Errorf("message names object %s but bucket %s is missing", obj, f.opts.Stream.largeBucket())
			}
			b, err := large.GetBytes(ctx, obj)
			if err != nil {
				return fmt.Errorf("reading large message %s: %w", obj, err)
			}
			data = b
		}
		dm, err := decodeMessage(data, m.Headers().Get(hdrMsgID), m.Headers().Get(hdrPrev))
		if err != nil {
			return err
		}
		decoded = append(decoded, dm)
	}
	applied := f.Applied()
	var recs []store.Record
	var gap error
	var at uint64
	err := f.st.Update(ctx, func(tx *store.Tx) error {
		recs, gap = recs[:0], nil
		at = applied
		for _, m := range decoded {
			if m.Seq <= at {
				continue
			}
			if m.Prev > at {
				gap = fmt.Errorf("%w: entry %d follows %d, last applied %d", errBehind, m.Seq, m.Prev, at)
				break
			}
			for _, r := range m.Records {
				if err := tx.ApplyReplicated(r); err != nil {
					return fmt.Errorf("applying change-log entry %d: %w", m.Seq, err)
				}
			}
			recs = append(recs, m.Records...)
			at = m.Seq
		}
		if at == applied {
			return nil
		}
		return tx.SetCursor(AppliedCursor, at)
	})
	if err != nil {
		return err
	}
	now := f.now()
	for _, m := range decoded {
		if m.Seq > applied && m.Seq <= at {
			f.m.delay.Observe(now.Sub(m.Time).Seconds())
		}
	}
	f.setApplied(at)
	if at > applied {
		f.behind.Store(false)
	}
	if len(recs) > 0 && f.opts.OnApplied != nil {
		f.opts.OnApplied(ctx, recs)
	}
	if gap != nil {
		return gap
	}
	last := msgs[len(msgs)-1]
	if err := last.Ack(); err != nil {
		f.log.Debug("acknowledging a batch failed (it will be redelivered and skipped)", "err", err)
	}
	if md, err := last.Metadata(); err == nil {
		f.m.pending.Set(float64(md.NumPending))
		if md.NumPending == 0 {
			f.lagSince.Store(0)
			f.m.lag.Set(0)
		} else {
			f.lagSince.Store(md.Timestamp.UnixNano())
			f.m.lag.Set(now.Sub(md.Timestamp).Seconds())
		}
	}
	return nil
}

// Ready reports whether the replica may serve: it holds a loaded state,
// heard from the stream within MaxLag, and its oldest unapplied change is
// younger than MaxLag. Load balancers drop a replica that is not.
func (f *Follower) Ready(context.Context) error {
	if !f.loaded.Load() {
		f.mu.Lock()
		defer f.mu.Unlock()
		return fmt.Errorf("loading the snapshot (%s)", f.lastError)
	}
	if f.behind.Load() {
		f.mu.Lock()
		defer f.mu.Unlock()
		return fmt.Errorf("missed change-log entries the stream no longer holds; waiting for a newer snapshot (applied %d; %s)", f.Applied(), f.lastError)
	}
	now := f.now()
	if c := f.contact.Load(); c == 0 || now.Sub(time.Unix(0, c)) > f.opts.MaxLag {
		f.mu.Lock()
		defer f.mu.Unlock()
		return fmt.Errorf("no contact with the change-log stream for more than %s (applied %d; %s)", f.opts.MaxLag, f.Applied(), f.lastError)
	}
	if s := f.lagSince.Load(); s != 0 && now.Sub(time.Unix(0, s)) > f.opts.MaxLag {
		return fmt.Errorf("%s behind the primary, more than replica.max_lag %s (applied %d)", now.Sub(time.Unix(0, s)).Round(time.Millisecond), f.opts.MaxLag, f.Applied())
	}
	return nil
}
