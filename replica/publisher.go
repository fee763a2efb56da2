package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/store"
)

// CursorName is the primary's change-log cursor of the publisher: every
// entry up to it is in the stream (or resolved to nothing).
const CursorName = "replica"

// publishedNS/publishedKey hold, beside the cursor and written in the same
// transaction, the sequence of the last entry the publisher put in the
// stream: the Prev of the next message. The cursor alone does not say it,
// since entries that resolve to no records (cert-revoked, crl-published)
// advance the cursor without reaching the stream. Not replicated.
const (
	publishedNS  = "replica-publisher"
	publishedKey = "published"
)

// PublisherOptions configure a Publisher.
type PublisherOptions struct {
	Store      *store.Store
	JetStream  jetstream.JetStream
	Stream     Stream
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// BatchSize is how many entries one round reads and publishes. Default 256.
	BatchSize int
	// SnapshotInterval is how often Run stores a snapshot. Default 6h.
	SnapshotInterval time.Duration
}

// Publisher appends the primary's change log to the stream and keeps a
// snapshot in the object store.
type Publisher struct {
	opts PublisherOptions
	st   *store.Store
	js   jetstream.JetStream
	log  *slog.Logger
	m    *pubMetrics

	stream jetstream.Stream
	snaps  jetstream.ObjectStore
	large  jetstream.ObjectStore
	// cursor is the last entry handled, prev the last published, lastSeq
	// the stream's last sequence.
	cursor, prev, lastSeq uint64
	// needSnap is the position the snapshot must cover after setUp: the
	// chain of Prev jumps past what the stream holds (prev is beyond its
	// last message), so a replica caught up with the stream sees a gap
	// and can only recover from a snapshot at least this new (0: none).
	needSnap  uint64
	published atomic.Uint64
}

// NewPublisher returns a Publisher; Run starts it.
func NewPublisher(opts PublisherOptions) (*Publisher, error) {
	if opts.Store == nil || opts.JetStream == nil {
		return nil, errors.New("replica: Store and JetStream are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 256
	}
	if opts.SnapshotInterval <= 0 {
		opts.SnapshotInterval = 6 * time.Hour
	}
	return &Publisher{opts: opts, st: opts.Store, js: opts.JetStream, log: opts.Logger.With("component", "replica"), m: newPubMetrics(opts.Registerer)}, nil
}

// Published is the sequence of the last entry known to be in the stream.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Run publishes until ctx is done: it creates the stream and buckets,
// repairs its position from the stream, stores a first snapshot if there
// is none, and then publishes every committed entry, snapshotting on
// schedule. Failures are retried with backoff from the cursor.
func (p *Publisher) Run(ctx context.Context) error {
	wake, cancel := p.st.WatchLog()
	defer cancel()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := p.run(ctx, wake)
		if ctx.Err() != nil {
			return nil
		}
		p.m.errors.Inc()
		p.log.Warn("publishing the change log failed; retrying from the cursor", "err", err, "cursor", p.cursor, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	return nil
}

func (p *Publisher) run(ctx context.Context, wake <-chan struct{}) error {
	if err := p.setUp(ctx); err != nil {
		return err
	}
	if err := p.snapshotCovering(ctx, p.needSnap); err != nil {
		return err
	}
	snap := time.NewTicker(p.opts.SnapshotInterval)
	defer snap.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		n, err := p.round(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		case <-snap.C:
			if _, err := p.Snapshot(ctx); err != nil {
				p.log.Error("storing the snapshot failed", "err", err)
			}
		}
	}
}

// setUp creates the stream and buckets and repairs the position: the
// stream's last message is the last entry published, even if a crash came
// before the cursor recorded it, so it is not published twice.
func (p *Publisher) setUp(ctx context.Context) error {
	// Short attempts: while the cluster elects its meta leader a request
	// gets no answer, and Run retries soon after.
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, snaps, large, err := p.opts.Stream.ensure(sctx, p.js)
	if err != nil {
		return err
	}
	p.stream, p.snaps, p.large = st, snaps, large
	cursor, _, err := p.st.RegisterConsumer(ctx, CursorName)
	if err != nil {
		return err
	}
	info, err := st.Info(sctx)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", p.opts.Stream.Name, err)
	}
	p.lastSeq = info.State.LastSeq
	saved, known, err := p.savedPublished(ctx)
	if err != nil {
		return err
	}
	// An empty stream (new, or lost) gets cursor as the predecessor: a
	// replica that applied less than that has missed entries and
	// re-bootstraps.
	p.prev = cursor
	var id uint64 // the entry of the stream's last message (0: none)
	if info.State.Msgs > 0 {
		last, err := st.GetMsg(sctx, info.State.LastSeq)
		if err != nil {
			return fmt.Errorf("reading the stream's last message: %w", err)
		}
		id, err = strconv.ParseUint(last.Header.Get(hdrMsgID), 10, 64)
		if err != nil {
			return fmt.Errorf("stream's last message %d has message ID %q", last.Sequence, last.Header.Get(hdrMsgID))
		}
		switch {
		case id > cursor:
			p.log.Info("change-log entries were published before the cursor was saved; not publishing them again", "cursor", cursor, "published", id)
			if err := p.st.Update(ctx, func(tx *store.Tx) error { return p.saveCursor(tx, id, id) }); err != nil {
				return err
			}
			cursor = id
			p.prev = id
		case known && saved <= id:
			// The stream holds every message published: the entries after
			// id up to the cursor resolved to no records, so the next
			// message follows id. (Taking the cursor as its predecessor
			// made every replica that applied all of the stream see a gap.)
			p.prev = id
		default:
			// The stream lost messages it acknowledged (saved > id), or
			// this store predates the saved position: the next message
			// names the cursor, so replicas that may miss entries reload.
			p.prev = max(id, cursor)
			if known {
				p.log.Warn("the stream lacks change-log entries it acknowledged; replicas load the snapshot again", "stream_last", id, "published", saved, "cursor", cursor)
			}
		}
	}
	p.needSnap = 0
	if p.prev > id {
		p.needSnap = p.prev
	}
	p.cursor = cursor
	p.published.Store(p.prev)
	p.m.published.Set(float64(p.prev))
	return nil
}

// round publishes the next batch after the cursor and returns how many
// entries it handled.
func (p *Publisher) round(ctx context.Context) (int, error) {
	es, err := p.st.ReadLog(ctx, p.cursor, p.opts.BatchSize)
	if err != nil || len(es) == 0 {
		return 0, err
	}
	msgs := make([]*message, 0, len(es))
	err = p.st.View(ctx, func(tx *store.Tx) error {
		for _, e := range es {
			recs, err := tx.ReplicaRecords(e)
			if err != nil {
				return err
			}
			if len(recs) > 0 {
				msgs = append(msgs, &message{Seq: e.Seq, Time: e.Time, Kind: e.Kind, Records: recs})
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := p.publish(ctx, msgs); err != nil {
		return 0, err
	}
	last := es[len(es)-1].Seq
	if err := p.st.Update(ctx, func(tx *store.Tx) error { return p.saveCursor(tx, last, p.prev) }); err != nil {
		return 0, err
	}
	p.cursor = last
	return len(es), nil
}

// publish appends msgs in order, pipelined: each expects the stream's last
// sequence to be its predecessor's, so a message that failed is never
// overtaken by the next (which then fails too, and the round is retried).
func (p *Publisher) publish(ctx context.Context, msgs []*message) error {
	type pending struct {
		m   *message
		ack jetstream.PubAckFuture
	}
	var futures []pending
	seq := p.lastSeq
	prev := p.prev
	for _, m := range msgs {
		m.Prev = prev
		nm, err := m.natsMsg(p.opts.Stream.Subject)
		if err != nil {
			return err
		}
		if len(nm.Data) > maxInline {
			if nm, err = p.offload(ctx, m, nm); err != nil {
				return err
			}
		}
		f, err := p.js.PublishMsgAsync(nm, jetstream.WithMsgID(strconv.FormatUint(m.Seq, 10)), jetstream.WithExpectLastSequence(seq))
		if err != nil {
			return fmt.Errorf("publishing change-log entry %d: %w", m.Seq, err)
		}
		futures = append(futures, pending{m, f})
		seq++
		prev = m.Seq
	}
	// A publish that reaches a stream without a leader (its node was
	// killed and the others are electing) is dropped without an answer:
	// only this wait ends it, and the round is retried once the cluster
	// has a leader again. So it is short, and counts from the last ack.
	timeout := time.NewTimer(ackWait)
	defer timeout.Stop()
	for _, f := range futures {
		select {
		case ack := <-f.ack.Ok():
			p.lastSeq = ack.Sequence
			p.prev = f.m.Seq
			p.published.Store(f.m.Seq)
			p.m.published.Set(float64(f.m.Seq))
			timeout.Reset(ackWait)
		case err := <-f.ack.Err():
			return fmt.Errorf("publishing change-log entry %d: %w", f.m.Seq, err)
		case <-timeout.C:
			return fmt.Errorf("publishing change-log entry %d: no acknowledgement within %s", f.m.Seq, ackWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ackWait is how long publish waits for the stream's next acknowledgement.
const ackWait = 3 * time.Second

// maxInline is the largest body sent in the message itself; larger ones
// (full CRLs of large CAs) go to the large-message bucket and the message
// names the object.
const maxInline = 512 << 10

const hdrObject = "Certcenter-Object"

func (p *Publisher) offload(ctx context.Context, m *message, nm *nats.Msg) (*nats.Msg, error) {
	name := "msg-" + strconv.FormatUint(m.Seq, 10)
	if _, err := p.large.PutBytes(ctx, name, nm.Data); err != nil {
		return nil, fmt.Errorf("storing change-log entry %d (%d bytes) in %s: %w", m.Seq, len(nm.Data), p.opts.Stream.largeBucket(), err)
	}
	out := nats.NewMsg(nm.Subject)
	out.Header = nm.Header
	out.Header.Set(hdrObject, name)
	return out, nil
}

// saveCursor records, in tx, that every entry up to cursor is handled and
// that published is the last entry in the stream.
func (p *Publisher) saveCursor(tx *store.Tx, cursor, published uint64) error {
	if err := tx.SetCursor(CursorName, cursor); err != nil {
		return err
	}
	return tx.PutBlob(publishedNS, publishedKey, []byte(strconv.FormatUint(published, 10)))
}

// savedPublished reads the last published entry saveCursor recorded; known
// is false for a store that has none (never published, or written by a
// version without it).
func (p *Publisher) savedPublished(ctx context.Context) (seq uint64, known bool, err error) {
	err = p.st.View(ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(publishedNS, publishedKey)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if seq, err = strconv.ParseUint(string(b), 10, 64); err != nil {
			return fmt.Errorf("publisher's last published entry %q: %w", b, err)
		}
		known = true
		return nil
	})
	return seq, known, err
}
