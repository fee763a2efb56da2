package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
)

// The dirty index names work a change left for a consumer: a certificate
// whose OCSP response must be (re)signed, an issuer whose CRLs miss a
// revocation, an RA request left executing. A mark is written in the
// transaction that makes the work and cleared in the transaction that
// finishes it, so a crash between the two leaves the mark, and start-up
// repair reads the marks instead of walking every record: its time is
// proportional to what was in flight, not to the store.
//
//	dirty\0<kind>\0<id>   value: an 8-byte token, new at every mark
//	dirtyok\0<kind>       the index of kind covers every record (see DirtyIndexed)
//
// A consumer that builds from a snapshot and commits later remembers the
// token it saw (Dirty) and clears with ClearDirtyIf: a mark written again
// after the snapshot has another token and stays.

// Kinds of marks. The store writes the first three itself, in the
// transaction of the change.
const (
	// DirtyOCSP: id is a certificate serial in lower-case hex; marked at
	// issuance and at every status change.
	DirtyOCSP = "ocsp"
	// DirtyCRL: id is an issuer; marked at every revocation, cleared by a
	// full CRL rebuild (which re-issues the deltas too).
	DirtyCRL = "crl"
	// DirtyCRLDelta: id is an issuer; marked at every revocation, cleared by
	// a delta CRL rebuild.
	DirtyCRLDelta = "crl-delta"
	// DirtyRA: id is an RA request; marked by the ra package while the
	// request is left executing or a renewal's old certificate is still to
	// be revoked.
	DirtyRA = "ra"
)

var (
	pDirty   = []byte("dirty\x00")
	pDirtyOK = []byte("dirtyok\x00")
)

func dirtyKey(kind, id string) []byte { return cat(pDirty, []byte(kind), []byte(id)) }

// MarkDirty records that id of kind has work pending. Marking again gives
// the mark a new token.
func (tx *Tx) MarkDirty(kind, id string) error {
	if err := tx.set(dirtyKey(kind, id), binary.BigEndian.AppendUint64(nil, rand.Uint64()|1)); err != nil {
		return fmt.Errorf("marking %s/%s dirty: %w", kind, id, err)
	}
	return nil
}

// Dirty returns the token of id's mark, or nil if it is not marked.
func (tx *Tx) Dirty(kind, id string) ([]byte, error) {
	v, err := tx.get(dirtyKey(kind, id))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading dirty mark %s/%s: %w", kind, id, err)
	}
	return v, nil
}

// ClearDirty removes id's mark, whatever its token.
func (tx *Tx) ClearDirty(kind, id string) error {
	if err := tx.txn.Delete(dirtyKey(kind, id)); err != nil {
		return fmt.Errorf("clearing dirty mark %s/%s: %w", kind, id, err)
	}
	return nil
}

// ClearDirtyIf removes id's mark if its token is still token, and reports
// whether it did (or there was no mark). The read makes a concurrent mark
// conflict with this transaction, so a mark made after token was read is
// never lost.
func (tx *Tx) ClearDirtyIf(kind, id string, token []byte) (bool, error) {
	cur, err := tx.Dirty(kind, id)
	if err != nil || cur == nil {
		return cur == nil, err
	}
	if string(cur) != string(token) {
		return false, nil
	}
	return true, tx.ClearDirty(kind, id)
}

// EachDirty streams the ids of kind that are marked, in key order, starting
// after after ("" for the start). The token is only valid during fn. An
// error from fn stops the walk and is returned as is.
func (tx *Tx) EachDirty(kind, after string, fn func(id string, token []byte) error) error {
	prefix := cat(pDirty, []byte(kind), nil)
	var start []byte
	if after != "" {
		start = append(append(append([]byte{}, prefix...), after...), 0)
	}
	return tx.scan(prefix, start, true, func(k, v []byte) error {
		return fn(string(k[len(prefix):]), v)
	})
}

// DirtyIndexed reports whether kind's index covers every record: a store
// written before the index existed must be walked once (by the consumer,
// which knows what is dirty) and then SetDirtyIndexed.
func (tx *Tx) DirtyIndexed(kind string) (bool, error) {
	return tx.exists(cat(pDirtyOK, []byte(kind)))
}

// SetDirtyIndexed records that kind's index covers every record.
func (tx *Tx) SetDirtyIndexed(kind string) error {
	if err := tx.set(cat(pDirtyOK, []byte(kind)), nil); err != nil {
		return fmt.Errorf("recording the %s dirty index: %w", kind, err)
	}
	return nil
}

// MarkNew records, on a store that holds no records yet, that every index
// built by walking a store written before it existed (the dirty indexes of
// DirtyOCSP and DirtyRA, the subscriber attribute indexes) already covers
// every record: the records to come are written with them. Without it the
// first start after an offline seed of a million walks them all once.
// It does nothing on a store that holds records.
func (s *Store) MarkNew(ctx context.Context) error {
	if s.Writable() != nil {
		// A store that refuses writes gets its first records later, from
		// a start that can write; the walk then is of an empty store.
		return nil
	}
	empty, err := s.Empty(ctx)
	if err != nil || !empty {
		return err
	}
	return s.Update(ctx, func(tx *Tx) error {
		for _, kind := range []string{DirtyOCSP, DirtyRA} {
			if err := tx.SetDirtyIndexed(kind); err != nil {
				return err
			}
		}
		return tx.set(append([]byte{}, kSubIdxMarker...), nil)
	})
}
