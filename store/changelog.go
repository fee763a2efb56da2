package store

// The change log: one ordered record of every change that a consumer outside
// the process may need (a publishing target now, a read replica later),
// written in the same transaction as the change, with a cursor per consumer.
//
// Key layout:
//
//	log\0<seq be64>          entry (kind, key, time); the record itself stays where it is
//	logcur\0<consumer>       the consumer's cursor: every entry <= it is applied
//	seq\0changelog           the Badger sequence the numbers come from
//
// Ordering. Numbers come from a Badger sequence, taken while the transaction
// runs, so two transactions committing at once may commit out of number
// order: 11 may be visible while 10 is still being committed. A reader that
// took 11 and moved its cursor past it would skip 10 for ever. So the store
// remembers, in memory, the numbers handed to transactions that have not
// finished (committed or discarded), and a reader only reads below the
// lowest of them — the horizon. Below the horizon every number is either
// committed or belongs to a transaction that failed and will never commit
// (a gap, which readers skip). The store is single-process (certcenter.lock),
// so in-memory bookkeeping covers every writer; after a restart nothing is
// in flight and the sequence resumes above every number handed out before.
//
// Entries name the record (a serial, a CRL file, a CA name) instead of
// copying it: a consumer reads the record's current state when it applies
// the entry, so a record changed twice before delivery is delivered once, as
// its newest state, when the consumer coalesces a batch by key.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// LogKind is what a change-log entry records.
type LogKind string

const (
	// LogCertIssued: a certificate was stored (Key: its serial in hex).
	LogCertIssued LogKind = "cert-issued"
	// LogCertRevoked: a certificate's status changed (Key: serial in hex).
	LogCertRevoked LogKind = "cert-revoked"
	// LogCRLPublished: a CRL was stored (Key: its file, crlscope.CRL.File).
	LogCRLPublished LogKind = "crl-published"
	// LogCACert: a CA record was created or its certificate changed (Key:
	// the CA name).
	LogCACert LogKind = "ca-cert"
)

// LogEntry is one change-log entry.
type LogEntry struct {
	Seq  uint64    `json:"-"`
	Kind LogKind   `json:"kind"`
	Key  string    `json:"key"`
	Time time.Time `json:"time"`
}

var (
	pLog    = []byte("log\x00")
	pLogCur = []byte("logcur\x00")
)

const logSequence = "seq\x00changelog"

// logBandwidth is how many numbers one sequence lease covers: a lease is a
// synced write, so a large one keeps issuance from paying it often; a crash
// skips at most this many numbers (gaps are harmless).
const logBandwidth = 1000

func logKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte{}, pLog...), seq)
}

// AppendLog appends e to the change log in this transaction: the entry
// commits if and only if the transaction does. e.Seq is assigned; a zero
// e.Time is the current time.
func (tx *Tx) AppendLog(e LogEntry) error {
	if tx.readOnly {
		return errors.New("appending to the change log in a read-only transaction")
	}
	if e.Kind == "" || e.Key == "" {
		return fmt.Errorf("change-log entry needs a kind and a key (got %q, %q)", e.Kind, e.Key)
	}
	if tx.s.logSuspended.Load() {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	seq, err := tx.s.allocLog()
	if err != nil {
		return err
	}
	tx.logSeqs = append(tx.logSeqs, seq)
	v, err := encode(&e)
	if err != nil {
		return fmt.Errorf("encoding change-log entry: %w", err)
	}
	if err := tx.set(logKey(seq), v); err != nil {
		return fmt.Errorf("writing change-log entry %d: %w", seq, err)
	}
	return nil
}

// logState is the store's in-memory bookkeeping of the change log.
type logState struct {
	seq      *badger.Sequence
	last     uint64         // the last number handed out by this process
	inflight map[uint64]int // numbers of transactions not yet finished
	wake     map[int]chan struct{}
	nextWake int
}

// allocLog hands out the next number and records it as in flight.
func (s *Store) allocLog() (uint64, error) {
	if err := s.beforeWrite(); err != nil {
		return 0, fmt.Errorf("change log: %w", err)
	}
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if err := s.openLogSeq(); err != nil {
		return 0, err
	}
	n, err := s.nextLogLocked()
	if err != nil {
		return 0, err
	}
	s.logs.inflight[n]++
	return n, nil
}

func (s *Store) openLogSeq() error {
	if s.logs.seq != nil {
		return nil
	}
	q, err := s.db.GetSequence([]byte(logSequence), logBandwidth)
	if err != nil {
		return fmt.Errorf("opening the change-log sequence: %w", err)
	}
	s.logs.seq = q
	return nil
}

func (s *Store) nextLogLocked() (uint64, error) {
	for {
		n, err := s.logs.seq.Next()
		if err != nil {
			return 0, fmt.Errorf("change-log sequence: %w", err)
		}
		if n > 0 {
			s.logs.last = n
			return n, nil
		}
	}
}

// logDone ends the transaction that held seqs (committed or not), and wakes
// log watchers if it committed entries.
func (s *Store) logDone(seqs []uint64, committed bool) {
	if len(seqs) == 0 {
		return
	}
	s.logMu.Lock()
	for _, n := range seqs {
		if s.logs.inflight[n]--; s.logs.inflight[n] <= 0 {
			delete(s.logs.inflight, n)
		}
	}
	if committed {
		for _, ch := range s.logs.wake {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	s.logMu.Unlock()
}

// horizon is the lowest number that may still commit: every entry below it
// is committed (and visible to a transaction opened after this call) or
// will never exist.
func (s *Store) horizon() (uint64, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if s.logs.last == 0 {
		// Nothing handed out by this process yet: take one number (left
		// as a gap) so that every later one is known to be above it.
		if err := s.beforeWrite(); err != nil {
			// No write can commit while the gate is shut; but it may
			// open while we read, so refuse rather than guess.
			return 0, fmt.Errorf("change log: %w", err)
		}
		if err := s.openLogSeq(); err != nil {
			return 0, err
		}
		if _, err := s.nextLogLocked(); err != nil {
			return 0, err
		}
	}
	h := s.logs.last + 1
	for n := range s.logs.inflight {
		h = min(h, n)
	}
	return h, nil
}

// WatchLog returns a channel that receives (without blocking the
// committer, coalesced) after every commit that appended to the change log,
// so a consumer waits on it instead of polling. cancel releases it.
func (s *Store) WatchLog() (wake <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	s.logMu.Lock()
	id := s.logs.nextWake
	s.logs.nextWake++
	s.logs.wake[id] = ch
	s.logMu.Unlock()
	return ch, func() {
		s.logMu.Lock()
		delete(s.logs.wake, id)
		s.logMu.Unlock()
	}
}

// ReadLog returns up to limit committed entries numbered above after, in
// number order. Numbers may have gaps. An entry appears here only once
// every lower-numbered entry that will ever commit has committed, so a
// consumer that advances its cursor to the last entry it applied never
// skips one.
func (s *Store) ReadLog(ctx context.Context, after uint64, limit int) ([]LogEntry, error) {
	h, err := s.horizon()
	if err != nil {
		return nil, err
	}
	var out []LogEntry
	err = s.View(ctx, func(tx *Tx) error {
		if after == math.MaxUint64 {
			return nil
		}
		return tx.scan(pLog, logKey(after+1), true, func(k, v []byte) error {
			seq := binary.BigEndian.Uint64(k[len(pLog):])
			if seq >= h || len(out) >= limit {
				return errStop
			}
			var e LogEntry
			if err := decode(v, &e); err != nil {
				return fmt.Errorf("decoding change-log entry %d: %w", seq, err)
			}
			e.Seq = seq
			out = append(out, e)
			return nil
		})
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the change log after %d: %w", after, err)
	}
	return out, nil
}

// ViewSnapshot runs fn in a read-only transaction with the change-log
// position it reflects: every entry numbered up to head is visible in tx,
// and every change committed after tx was opened is numbered above head.
// A new consumer walks the state in fn, then follows the log after head
// (entries between head and tx may be seen twice; consumers apply
// idempotently).
func (s *Store) ViewSnapshot(ctx context.Context, fn func(tx *Tx, head uint64) error) error {
	h, err := s.horizon()
	if err != nil {
		return err
	}
	return s.View(ctx, func(tx *Tx) error { return fn(tx, h-1) })
}

// ---- cursors ----

// SetCursor records that consumer has applied every entry up to seq. Call
// it in the same transaction as the consumer's own bookkeeping, if any.
func (tx *Tx) SetCursor(consumer string, seq uint64) error {
	if consumer == "" {
		return errors.New("change-log cursor needs a consumer name")
	}
	if err := tx.set(cat(pLogCur, []byte(consumer)), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
		return fmt.Errorf("writing the change-log cursor of %s: %w", consumer, err)
	}
	return nil
}

// Cursor returns consumer's cursor; ok is false for an unknown consumer.
func (tx *Tx) Cursor(consumer string) (seq uint64, ok bool, err error) {
	b, err := tx.get(cat(pLogCur, []byte(consumer)))
	if errors.Is(err, ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading the change-log cursor of %s: %w", consumer, err)
	}
	if len(b) != 8 {
		return 0, false, fmt.Errorf("change-log cursor of %s is %d bytes, want 8", consumer, len(b))
	}
	return binary.BigEndian.Uint64(b), true, nil
}

// Cursors lists every registered consumer's cursor.
func (tx *Tx) Cursors() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := tx.scan(pLogCur, nil, true, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("change-log cursor of %s is %d bytes, want 8", k[len(pLogCur):], len(v))
		}
		out[string(k[len(pLogCur):])] = binary.BigEndian.Uint64(v)
		return nil
	})
	return out, err
}

// RegisterConsumer returns consumer's cursor, registering it at the current
// head if it is new (fresh is then true: the consumer has seen nothing and
// must first walk the current state — any transaction opened after this
// call shows every entry up to the cursor). Registration and CompactLog
// exclude each other, so compaction never removes entries a consumer
// registering at that moment still needs.
func (s *Store) RegisterConsumer(ctx context.Context, consumer string) (cursor uint64, fresh bool, err error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if s.logSuspended.Load() {
		return 0, false, fmt.Errorf("registering change-log consumer %s: the change log is suspended (an offline seed is writing)", consumer)
	}
	err = s.View(ctx, func(tx *Tx) error {
		cursor, fresh, err = tx.Cursor(consumer)
		fresh = !fresh
		return err
	})
	if err != nil || !fresh {
		return cursor, false, err
	}
	h, err := s.horizon()
	if err != nil {
		return 0, false, err
	}
	cursor = h - 1
	if err := s.Update(ctx, func(tx *Tx) error { return tx.SetCursor(consumer, cursor) }); err != nil {
		return 0, false, fmt.Errorf("registering change-log consumer %s: %w", consumer, err)
	}
	return cursor, true, nil
}

// DropConsumer removes consumer's cursor, so it no longer holds back
// compaction (a publishing target removed from the configuration).
func (s *Store) DropConsumer(ctx context.Context, consumer string) error {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	return s.Update(ctx, func(tx *Tx) error {
		if err := tx.txn.Delete(cat(pLogCur, []byte(consumer))); err != nil {
			return fmt.Errorf("deleting the change-log cursor of %s: %w", consumer, err)
		}
		return nil
	})
}

// compactBatch bounds one compaction transaction (Badger refuses very
// large ones).
const compactBatch = 5000

// CompactLog deletes the entries every registered consumer has passed (all
// committed entries when none is registered: a consumer that registers
// later starts from a snapshot, not from the log). It returns how many it
// deleted.
func (s *Store) CompactLog(ctx context.Context) (int, error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	h, err := s.horizon()
	if err != nil {
		return 0, err
	}
	upTo := h - 1
	if err := s.View(ctx, func(tx *Tx) error {
		cs, err := tx.Cursors()
		for _, c := range cs {
			upTo = min(upTo, c)
		}
		return err
	}); err != nil {
		return 0, fmt.Errorf("compacting the change log: %w", err)
	}
	deleted := 0
	for {
		var keys [][]byte
		if err := s.View(ctx, func(tx *Tx) error {
			return tx.scan(pLog, nil, false, func(k, _ []byte) error {
				if binary.BigEndian.Uint64(k[len(pLog):]) > upTo || len(keys) >= compactBatch {
					return errStop
				}
				keys = append(keys, append([]byte{}, k...))
				return nil
			})
		}); err != nil && !errors.Is(err, errStop) {
			return deleted, fmt.Errorf("compacting the change log: %w", err)
		}
		if len(keys) == 0 {
			return deleted, nil
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			for _, k := range keys {
				if err := tx.txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return deleted, fmt.Errorf("compacting the change log: %w", err)
		}
		deleted += len(keys)
	}
}

// LogStats describes the change log now.
type LogStats struct {
	// Head is the newest number every entry below which has committed.
	Head uint64
	// Oldest is the number of the oldest entry kept (0: the log is empty).
	Oldest uint64
	// Entries is how many entries are kept.
	Entries int
}

// LogStats counts the kept entries (a scan of keys only).
func (s *Store) LogStats(ctx context.Context) (LogStats, error) {
	h, err := s.horizon()
	if err != nil {
		return LogStats{}, err
	}
	st := LogStats{Head: h - 1}
	err = s.View(ctx, func(tx *Tx) error {
		return tx.scan(pLog, nil, false, func(k, _ []byte) error {
			if st.Oldest == 0 {
				st.Oldest = binary.BigEndian.Uint64(k[len(pLog):])
			}
			st.Entries++
			return nil
		})
	})
	return st, err
}

// PendingFor counts the committed entries after cursor (what a consumer at
// cursor has still to apply) and returns the time of the oldest.
func (s *Store) PendingFor(ctx context.Context, cursor uint64) (n int, oldest time.Time, err error) {
	h, err := s.horizon()
	if err != nil {
		return 0, time.Time{}, err
	}
	err = s.View(ctx, func(tx *Tx) error {
		if err := tx.scan(pLog, logKey(cursor+1), true, func(k, v []byte) error {
			if binary.BigEndian.Uint64(k[len(pLog):]) < h {
				var e LogEntry
				if err := decode(v, &e); err == nil {
					oldest = e.Time
				}
			}
			return errStop
		}); err != nil && !errors.Is(err, errStop) {
			return err
		}
		return tx.scan(pLog, logKey(cursor+1), false, func(k, _ []byte) error {
			if binary.BigEndian.Uint64(k[len(pLog):]) >= h {
				return errStop
			}
			n++
			return nil
		})
	})
	if errors.Is(err, errStop) {
		err = nil
	}
	return n, oldest, err
}
