package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Audit log key layout:
//
//	audit\0e\0<seq be64>   one entry
//	audit\0head            the sequence number and hash of the last entry
//
// The head is written in the same transaction as the entry, so a second
// appender racing on the same head conflicts and is retried: sequence numbers
// have no gaps. Hashing belongs to internal/audit; the store only keeps the
// entries in order.
var (
	pAuditEntry = []byte("audit\x00e\x00")
	kAuditHead  = []byte("audit\x00head")
)

// AuditEntry is one record of the append-only audit log.
type AuditEntry struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Object  string            `json:"object"`
	Details map[string]string `json:"details,omitempty"`
	// Prev is the hash of the entry before (empty for the first) and Hash
	// this entry's own hash over all other fields.
	Prev []byte `json:"prev,omitempty"`
	Hash []byte `json:"hash"`
}

// ErrAuditOrder is returned by AppendAudit for an entry that does not follow
// the current head.
var ErrAuditOrder = errors.New("audit entry does not follow the log head")

func auditKey(seq uint64) []byte {
	k := append([]byte{}, pAuditEntry...)
	return binary.BigEndian.AppendUint64(k, seq)
}

// AuditHead returns the sequence number and hash of the last entry (0 and
// nil for an empty log).
func (tx *Tx) AuditHead() (uint64, []byte, error) {
	b, err := tx.get(kAuditHead)
	if errors.Is(err, ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("reading audit head: %w", err)
	}
	if len(b) < 8 {
		return 0, nil, errors.New("audit head is corrupt")
	}
	return binary.BigEndian.Uint64(b), append([]byte{}, b[8:]...), nil
}

// AppendAudit writes e as the next entry and moves the head to it. e.Seq must
// be the head's plus one.
func (tx *Tx) AppendAudit(e *AuditEntry) error {
	seq, _, err := tx.AuditHead()
	if err != nil {
		return err
	}
	if e.Seq != seq+1 {
		return fmt.Errorf("appending audit entry %d after %d: %w", e.Seq, seq, ErrAuditOrder)
	}
	if err := tx.putAudit(e); err != nil {
		return err
	}
	head := binary.BigEndian.AppendUint64(nil, e.Seq)
	if err := tx.set(kAuditHead, append(head, e.Hash...)); err != nil {
		return fmt.Errorf("writing audit head: %w", err)
	}
	return nil
}

func (tx *Tx) putAudit(e *AuditEntry) error {
	v, err := encode(e)
	if err != nil {
		return fmt.Errorf("encoding audit entry %d: %w", e.Seq, err)
	}
	if err := tx.set(auditKey(e.Seq), v); err != nil {
		return fmt.Errorf("writing audit entry %d: %w", e.Seq, err)
	}
	return nil
}

// EachAudit streams the entries in sequence order.
func (tx *Tx) EachAudit(fn func(*AuditEntry) error) error {
	return tx.scan(pAuditEntry, nil, true, func(k, v []byte) error {
		var e AuditEntry
		if err := decode(v, &e); err != nil {
			return fmt.Errorf("decoding audit entry %x: %w", k[len(pAuditEntry):], err)
		}
		return fn(&e)
	})
}
