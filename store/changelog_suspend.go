package store

import (
	"context"
	"fmt"
)

// SuspendUnfollowedLog turns change-log appends off if no consumer follows
// the log, and reports whether it did; resume turns them on again.
//
// It is for the offline seed. The log exists for its consumers, and one
// that registers later starts from a snapshot of the records, never from
// entries written before it: with no consumer registered, every entry is
// deleted by the server's first compaction of the log, a minute after it
// starts. For a million seeded certificates that is a million deletes, and
// then minutes of Badger compacting their tombstones while the server
// answers (OCSP fell from 0.9x to 0.65x the bare server over the rounds
// after a fresh 1 M seed). Only the store's sole writer may call it, with
// nothing else writing until resume (the seed opens the store with the
// server stopped); a consumer that tries to register meanwhile is refused.
func (s *Store) SuspendUnfollowedLog(ctx context.Context) (resume func(), suspended bool, err error) {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	var cursors map[string]uint64
	if err := s.View(ctx, func(tx *Tx) error {
		cursors, err = tx.Cursors()
		return err
	}); err != nil {
		return nil, false, fmt.Errorf("reading the change log's consumers: %w", err)
	}
	if len(cursors) > 0 {
		return func() {}, false, nil
	}
	s.logSuspended.Store(true)
	return func() { s.logSuspended.Store(false) }, true, nil
}
