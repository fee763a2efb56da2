// Package store persists certcenter's records in an embedded Badger database.
//
// It owns the key layout, the record codecs, transactions, secondary indexes,
// sequences and committed-change notification. No other package imports badger:
// features read and write typed records through Tx, View and the iterators here,
// and learn about committed changes through Watch.
//
// Key layout (every key starts with a short namespace and a NUL separator):
//
//	ca\0<name>                                  CA record
//	cert\0<serial>                              certificate record
//	sub\0<id>                                   subscriber record
//	staff\0<id>                                 staff record
//	i\0subj\0<lower subject>\0<serial>          certificates by subject DN
//	i\0cn\0<lower cn>\0<serial>                 certificates by subject CN
//	i\0sub\0<subscriber>\0<serial>              certificates by subscriber
//	i\0exp\0<notAfter be64>\0<serial>           certificates by expiry
//	i\0rev\0<issuer>\0<serial>                  revoked certificates per issuer (value: time+reason)
//	i\0revt\0<issuer>\0<revokedAt be64><serial> revocations per issuer in time order (delta CRLs)
//	i\0subcn\0<lower cn>\0<id>                  subscribers by CN
//	i\0staffcert\0<serial>                      staff member by client certificate serial
//	blob\0<namespace>\0<key>                    opaque records of feature packages (OCSP responses, CRLs)
//	seq\0<name>                                 sequences
//	log\0<seq be64>, logcur\0<consumer>         the change log and its cursors (changelog.go)
//	dirty\0<kind>\0<id>, dirtyok\0<kind>        work a change left for a consumer (dirty.go)
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrInUse is returned by Open when another process holds the database.
var ErrInUse = errors.New("data directory is in use by another certcenter process")

// ErrConflict is returned when a transaction conflicted with a concurrent one;
// callers may retry.
var ErrConflict = errors.New("transaction conflict")

// Options configure Open.
type Options struct {
	// Dir is the database directory; it is created if missing.
	Dir string
	// InMemory keeps everything in memory (tests only); Dir is ignored.
	InMemory bool
	// SyncWrites fsyncs every commit, so a commit survives power loss and not only
	// a process crash. Default in config: true.
	SyncWrites bool
	// MinFreeBytes is the floor of free space on Dir's file system: below it
	// writes fail with ErrReadOnly (reads go on), and Open opens the database
	// read-only. It also sizes Badger's memtables and value-log files to a
	// quarter of it (at most 64 MiB; memtables at most 32 MiB, memory.go),
	// so that what Badger writes without asking always fits (see space.go).
	// 0 disables the gate (tests).
	MinFreeBytes int64
	// CacheBytes is Badger's cache budget (see memory.go): its block and
	// index caches share it. 0 means DefaultCacheBytes.
	CacheBytes int64
	Logger     *slog.Logger
}

// Store is the embedded database. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	lock *os.File
	log  *slog.Logger

	// dir is the database directory whose file system is watched ("" in
	// memory or without a floor); floor is Options.MinFreeBytes.
	dir   string
	floor int64
	// gate is why writes are refused now ("" or nil: they are not).
	gate atomic.Pointer[string]
	// probeFailed is why the last test write failed ("": it did not).
	probeFailed atomic.Pointer[string]
	// openedReadOnly says why Badger was opened read-only ("" if it was not).
	openedReadOnly string

	mu       sync.RWMutex
	watchers map[int]func([]Change)
	nextW    int

	seqMu sync.Mutex
	seqs  map[string]*badger.Sequence

	// logMu guards logs, the change log's in-flight numbers and wakeups
	// (changelog.go); compactMu orders compaction and registration.
	logMu     sync.Mutex
	logs      logState
	compactMu sync.Mutex
	// repl is the replicated key prefixes (replicate.go); nil: off.
	repl replState
	// ocspPresigned: certificate writes leave no OCSP mark (presigned.go).
	ocspPresigned atomic.Bool
	// logSuspended: change-log appends write nothing (changelog_suspend.go).
	logSuspended atomic.Bool
}

// Open opens (creating if needed) the database in opts.Dir.
func Open(opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log, watchers: map[int]func([]Change){}, seqs: map[string]*badger.Sequence{},
		logs: logState{inflight: map[uint64]int{}, wake: map[int]chan struct{}{}}}
	bopts := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(opts.SyncWrites).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false)
	bopts = withMemory(bopts, opts.CacheBytes)
	if opts.MinFreeBytes > 0 && !opts.InMemory {
		mt, vl := sizesFor(opts.MinFreeBytes)
		mt = min(mt, bopts.MemTableSize) // the budget's cap (memory.go)
		// Badger refuses a value threshold above its largest batch (15 %
		// of a memtable); small floors (tests) have small memtables.
		bopts = bopts.WithMemTableSize(mt).WithValueLogFileSize(vl).
			WithValueThreshold(min(bopts.ValueThreshold, mt*15/100/2))
		s.dir, s.floor = opts.Dir, opts.MinFreeBytes
	}
	if opts.InMemory {
		bopts = bopts.WithInMemory(true).WithDir("").WithValueDir("")
	} else {
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating database directory %s: %w", opts.Dir, err)
		}
		// Our own lock, taken before Badger's, turns "another process has it"
		// into one clear error instead of Badger's internal message.
		f, err := os.OpenFile(filepath.Join(opts.Dir, "certcenter.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if errors.Is(err, syscall.EROFS) {
			// A read-only file system still takes a lock on an existing file.
			f, err = os.Open(filepath.Join(opts.Dir, "certcenter.lock"))
		}
		if err != nil {
			return nil, fmt.Errorf("opening database lock in %s: %w", opts.Dir, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("%s: %w", opts.Dir, ErrInUse)
			}
			return nil, fmt.Errorf("locking database %s: %w", opts.Dir, err)
		}
		s.lock = f
	}
	db, err := s.openBadger(bopts)
	if err != nil {
		if s.lock != nil {
			s.lock.Close()
		}
		return nil, fmt.Errorf("opening database %s: %w", opts.Dir, err)
	}
	s.db = db
	return s, nil
}

// openBadger opens Badger read-write, or read-only when the file system is
// below the floor or read-only: a read-write open writes at once (a new
// memtable log, the flush of the logs a crash left), and on a full disk that
// write is the SIGBUS that made the last run die.
func (s *Store) openBadger(bopts badger.Options) (*badger.DB, error) {
	if s.dir == "" {
		return badger.Open(bopts)
	}
	err := s.checkSpace(false)
	if err == nil {
		return badger.Open(bopts)
	}
	reason := strings.TrimPrefix(err.Error(), ErrReadOnly.Error()+": ")
	db, roErr := badger.Open(bopts.WithReadOnly(true))
	if roErr == nil {
		s.openedReadOnly = "opened read-only at start: " + reason
		s.log.Error("database opened read-only: reads are served, writes refused until space is freed and certcenter restarted",
			"component", "store", "dir", s.dir, "reason", reason)
		_ = s.checkSpace(false)
		return db, nil
	}
	// Badger's y.Wrapf does not unwrap: match its sentinel's text too.
	if !errors.Is(roErr, badger.ErrTruncateNeeded) && !strings.Contains(roErr.Error(), badger.ErrTruncateNeeded.Error()) {
		return nil, fmt.Errorf("%s, and opening read-only failed: %w", reason, roErr)
	}
	// A crashed run left a memtable log that only a read-write open can
	// recover (it truncates the log and flushes it to a table). That needs
	// about the log's data in free space, which the floor usually still
	// leaves; with less, a read-write open would die of SIGBUS, so refuse
	// with the reason instead.
	// The flushed table is about as big as the log's data; twice that and
	// a megabyte for the new logs' first pages and the manifest is ample.
	need := 2*memLogBytes(s.dir) + 1<<20
	d, serr := statDisk(s.dir)
	if serr != nil || d.readOnly || d.free < need {
		return nil, fmt.Errorf("%s; the write-ahead log of an interrupted run needs about %d MB free to be recovered: free space and start again: %w",
			reason, need>>20, ErrReadOnly)
	}
	s.log.Warn("recovering the write-ahead log of an interrupted run below the free-space floor; writes stay refused",
		"component", "store", "dir", s.dir, "reason", reason)
	return badger.Open(bopts)
}

// memLogBytes is the space the memtable logs (*.mem) in dir really use.
func memLogBytes(dir string) int64 {
	var n int64
	files, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	for _, f := range files {
		var st syscall.Stat_t
		if syscall.Stat(f, &st) == nil {
			n += int64(st.Blocks) * 512
		}
	}
	return n
}

// Close releases sequences, closes the database and drops the lock.
func (s *Store) Close() error {
	s.seqMu.Lock()
	for _, q := range s.seqs {
		_ = q.Release()
	}
	s.seqs = map[string]*badger.Sequence{}
	s.seqMu.Unlock()
	s.logMu.Lock()
	if s.logs.seq != nil {
		_ = s.logs.seq.Release()
		s.logs.seq = nil
	}
	s.logMu.Unlock()
	err := s.db.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	if err != nil {
		return fmt.Errorf("closing database: %w", err)
	}
	return nil
}

// Run collects value-log garbage and watches the free space of the data
// directory (see space.go) until ctx is done.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	space := time.NewTicker(spaceInterval)
	defer space.Stop()
	compact := time.NewTicker(time.Minute)
	defer compact.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-compact.C:
			if n, err := s.CompactLog(ctx); err != nil {
				s.log.Warn("compacting the change log failed", "component", "store", "err", err)
			} else if n > 0 {
				s.log.Debug("change log compacted", "component", "store", "deleted", n)
			}
		case <-space.C:
			_ = s.checkSpace(true)
		case <-t.C:
			if s.gate.Load() != nil && *s.gate.Load() != "" {
				continue // GC rewrites value-log files: it needs space
			}
			for s.db.RunValueLogGC(0.5) == nil {
			}
		}
	}
}

// Change describes one committed write.
type Change struct {
	Kind Kind
	// Key identifies the record: a CA name, a hex serial, a subscriber ID, or
	// "<namespace>/<key>" for blobs.
	Key string
}

// Kind names a record type in a Change.
type Kind string

const (
	KindCA         Kind = "ca"
	KindCert       Kind = "cert"
	KindSubscriber Kind = "subscriber"
	KindStaff      Kind = "staff"
	KindBlob       Kind = "blob"
)

// Watch registers fn to be called with the changes of every committed
// transaction, in commit order per goroutine. fn runs on the committing
// goroutine, so it must be quick (hand work to a channel). The returned
// function unregisters it.
func (s *Store) Watch(fn func([]Change)) (cancel func()) {
	s.mu.Lock()
	id := s.nextW
	s.nextW++
	s.watchers[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.watchers, id)
		s.mu.Unlock()
	}
}

func (s *Store) notify(changes []Change) {
	if len(changes) == 0 {
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, fn := range s.watchers {
		fn(changes)
	}
}

// maxConflictRetries bounds how often Update re-runs a transaction that lost
// a write conflict (about half a second of backoff in all).
const maxConflictRetries = 100

// Update runs fn in a read-write transaction and commits it. Watchers are
// notified after the commit succeeded. A conflict re-runs fn, with backoff,
// so fn must not have effects outside the transaction.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if err := s.beforeWrite(); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		tx := &Tx{txn: s.db.NewTransaction(true), s: s}
		err := fn(tx)
		committing := err == nil
		if committing {
			err = tx.txn.Commit()
		}
		tx.txn.Discard()
		s.logDone(tx.logSeqs, err == nil)
		if errors.Is(err, badger.ErrConflict) && attempt < maxConflictRetries {
			// Hot records (the audit log's head, a CRL's metadata) are
			// written by many transactions at once: back off a little,
			// with jitter, so the retries do not collide again in step.
			d := time.Duration(min(attempt+1, 50)) * 100 * time.Microsecond
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d/2 + time.Duration(rand.Int64N(int64(d)))):
			}
			continue
		}
		if errors.Is(err, badger.ErrConflict) {
			return ErrConflict
		}
		if err != nil {
			// Only a failed commit says anything about the disk; fn's own
			// refusals (a 4xx) must not cost a synced probe each.
			if committing && s.dir != "" {
				// A failed commit may be the file system going away
				// under Badger: probe it, so the caller and /readyz
				// learn why and later writes are refused up front.
				if gerr := s.checkSpace(true); gerr != nil {
					return fmt.Errorf("%w (the commit failed: %w)", gerr, err)
				}
			}
			return err
		}
		s.notify(tx.changes)
		return nil
	}
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	tx := &Tx{txn: s.db.NewTransaction(false), s: s, readOnly: true}
	defer tx.txn.Discard()
	return fn(tx)
}

// Tx is one transaction. It must not be used after Update or View returns.
type Tx struct {
	txn      *badger.Txn
	s        *Store
	readOnly bool
	changes  []Change
	// logSeqs are the change-log numbers this transaction took.
	logSeqs []uint64
	// replLogged are the replicated keys this transaction logged.
	replLogged map[string]bool
}

func (tx *Tx) changed(k Kind, key string) {
	tx.changes = append(tx.changes, Change{Kind: k, Key: key})
}

func (tx *Tx) get(key []byte) ([]byte, error) {
	item, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (tx *Tx) set(key, val []byte) error {
	err := tx.txn.Set(key, val)
	if errors.Is(err, badger.ErrTxnTooBig) {
		return fmt.Errorf("transaction too big: %w", err)
	}
	if err == nil {
		err = tx.logReplicated(key)
	}
	return err
}

func (tx *Tx) exists(key []byte) (bool, error) {
	_, err := tx.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// scanKeys calls fn with each key (and, if withValues, the value) under
// prefix, in key order, starting at start if it is not nil. Values are only
// valid during fn.
func (tx *Tx) scan(prefix, start []byte, withValues bool, fn func(key, val []byte) error) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = withValues
	opts.Prefix = prefix
	if withValues {
		opts.PrefetchSize = 64
	}
	it := tx.txn.NewIterator(opts)
	defer it.Close()
	if start == nil {
		start = prefix
	}
	for it.Seek(start); it.ValidForPrefix(prefix); it.Next() {
		item := it.Item()
		var val []byte
		if withValues {
			if err := item.Value(func(v []byte) error { val = v; return fn(item.Key(), val) }); err != nil {
				return err
			}
			continue
		}
		if err := fn(item.Key(), nil); err != nil {
			return err
		}
	}
	return nil
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop")

// Next returns the next value of the named sequence. Values strictly increase
// across restarts; a crash may skip some.
func (s *Store) Next(name string) (uint64, error) {
	if err := s.beforeWrite(); err != nil {
		return 0, fmt.Errorf("sequence %s: %w", name, err)
	}
	s.seqMu.Lock()
	defer s.seqMu.Unlock()
	q, ok := s.seqs[name]
	if !ok {
		var err error
		q, err = s.db.GetSequence([]byte("seq\x00"+name), 16)
		if err != nil {
			return 0, fmt.Errorf("opening sequence %s: %w", name, err)
		}
		s.seqs[name] = q
	}
	for {
		v, err := q.Next()
		if err != nil {
			return 0, fmt.Errorf("sequence %s: %w", name, err)
		}
		if v > 0 { // Badger sequences start at 0; we want 1-based numbers.
			return v, nil
		}
	}
}

type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn(fmt.Sprintf(f, a...), "component", "badger")
}
func (b badgerLogger) Infof(string, ...any)  {}
func (b badgerLogger) Debugf(string, ...any) {}
