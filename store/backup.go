package store

import (
	"context"
	"fmt"
	"io"
)

// Backup writes a full backup of the database to w in Badger's backup stream
// format. It runs against a consistent snapshot while the store stays usable.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.db.Backup(w, 0); err != nil {
		return fmt.Errorf("writing backup stream: %w", err)
	}
	return nil
}

// Restore loads a backup stream made by Backup into this store, which should
// be empty.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.db.Load(r, 256); err != nil {
		return fmt.Errorf("loading backup stream: %w", err)
	}
	return nil
}

// Empty reports whether the store holds no records at all.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := s.View(ctx, func(tx *Tx) error {
		return tx.scan(nil, nil, false, func(_, _ []byte) error { empty = false; return errStop })
	})
	if err == errStop {
		err = nil
	}
	return empty, err
}
