// Package audit is certcenter's tamper-evident audit log: every state change
// (an application, an approval, an issuance, a revocation) is appended as one
// entry whose hash covers its content and the hash of the entry before it, so
// changing, inserting or removing any entry breaks the chain from there on.
// Entries live in the store (store/audit.go); Verify walks them.
//
// It does not protect against someone who rewrites the whole chain from a
// point on, or cuts its tail together with the head: for that, publish the
// head hash elsewhere (Verify reports it).
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Record is what a caller logs.
type Record struct {
	// Actor is who did it: "staff:<id>", "admin:<id>", "system".
	Actor string
	// Action is a stable verb: "ra.submit", "ra.approve", "cert.revoke", ...
	Action string
	// Object is what it was done to: "request/req-000012", "cert/<serial>".
	Object  string
	Details map[string]string
}

// Options configure a Log.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Log appends to and verifies the audit log.
type Log struct {
	st  *store.Store
	log *slog.Logger
	now func() time.Time
	// mu serialises this process's appends so they do not conflict on the
	// head; appends from inside other transactions are retried by the store.
	mu sync.Mutex
}

// New returns a Log.
func New(o Options) *Log {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Log{st: o.Store, log: o.Logger.With("stream", "audit"), now: o.Now}
}

// Append writes one entry in its own transaction.
func (l *Log) Append(ctx context.Context, r Record) (*store.AuditEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e *store.AuditEntry
	err := l.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		e, err = l.AppendTx(tx, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("appending audit entry %s %s: %w", r.Action, r.Object, err)
	}
	l.Logged(e)
	return e, nil
}

// AppendTx adds an entry to a caller's transaction, so the state change and
// its audit entry commit together or not at all. Call Logged after the commit
// to copy it to the operational log.
func (l *Log) AppendTx(tx *store.Tx, r Record) (*store.AuditEntry, error) {
	seq, prev, err := tx.AuditHead()
	if err != nil {
		return nil, err
	}
	e := &store.AuditEntry{
		Seq: seq + 1, Time: l.now().UTC(), Actor: r.Actor, Action: r.Action, Object: r.Object,
		Details: r.Details, Prev: prev,
	}
	e.Hash = Hash(e)
	if err := tx.AppendAudit(e); err != nil {
		return nil, err
	}
	return e, nil
}

// Logged mirrors a committed entry to the slog audit stream.
func (l *Log) Logged(e *store.AuditEntry) {
	if e == nil {
		return
	}
	args := []any{"seq", e.Seq, "actor", e.Actor, "object", e.Object}
	for k, v := range e.Details {
		args = append(args, k, v)
	}
	l.log.Info(e.Action, args...)
}

// Hash is the SHA-256 of an entry's canonical form: its fields other than
// Hash as JSON (map keys sorted by encoding/json), time in UTC with
// nanoseconds, Prev in hex.
func Hash(e *store.AuditEntry) []byte {
	canon := struct {
		Seq     uint64            `json:"seq"`
		Time    string            `json:"time"`
		Actor   string            `json:"actor"`
		Action  string            `json:"action"`
		Object  string            `json:"object"`
		Details map[string]string `json:"details"`
		Prev    string            `json:"prev"`
	}{e.Seq, e.Time.UTC().Format(time.RFC3339Nano), e.Actor, e.Action, e.Object, e.Details, hex.EncodeToString(e.Prev)}
	b, _ := json.Marshal(canon) // strings and a map of strings always marshal
	h := sha256.Sum256(b)
	return h[:]
}

// ErrBroken is returned by Verify when the chain does not hold.
var ErrBroken = errors.New("audit log chain is broken")

// Report is the result of a verification.
type Report struct {
	Entries uint64 `json:"entries"`
	// Head is the hash of the last entry, hex; keep it elsewhere to detect a
	// rewritten tail later.
	Head string `json:"head"`
	// Problems lists each break found (empty when the chain holds).
	Problems []string `json:"problems,omitempty"`
}

// Verify walks the whole log and checks that sequence numbers have no gap,
// each entry's hash matches its content, each entry names the hash of the
// one before, and the head names the last entry. It returns ErrBroken
// (wrapped) with the report when anything is wrong.
func (l *Log) Verify(ctx context.Context) (Report, error) {
	var rep Report
	var headSeq, last uint64
	var headHash, prev []byte
	err := l.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if headSeq, headHash, err = tx.AuditHead(); err != nil {
			return err
		}
		var want uint64 = 1
		return tx.EachAudit(func(e *store.AuditEntry) error {
			if len(rep.Problems) >= 100 {
				return nil
			}
			if e.Seq != want {
				rep.Problems = append(rep.Problems, fmt.Sprintf("entry %d missing (next found is %d)", want, e.Seq))
			}
			if !bytes.Equal(e.Prev, prev) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("entry %d does not follow the hash of the entry before it", e.Seq))
			}
			if !bytes.Equal(Hash(e), e.Hash) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("entry %d (%s %s) was changed: its hash does not match its content", e.Seq, e.Action, e.Object))
			}
			rep.Entries++
			want, prev, last = e.Seq+1, e.Hash, e.Seq
			return nil
		})
	})
	if err != nil {
		return rep, fmt.Errorf("reading audit log: %w", err)
	}
	if headSeq != last || !bytes.Equal(headHash, prev) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the head names entry %d but the log ends at entry %d or with another hash (entries removed from the end?)", headSeq, last))
	}
	rep.Head = hex.EncodeToString(headHash)
	if len(rep.Problems) > 0 {
		return rep, fmt.Errorf("%w: %d problems, first: %s", ErrBroken, len(rep.Problems), rep.Problems[0])
	}
	return rep, nil
}
