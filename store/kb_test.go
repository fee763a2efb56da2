package store

import (
	"context"
	"testing"
)

// A dirty mark is cleared only for the version that was indexed: a write
// that came after it keeps its mark for the indexer's next pass.
func TestKBDirtyMarks(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	a := &KBArticle{ID: "kb-000001", Lang: "en", Title: "t", Body: "b", Category: "cert_use", Level: "public", Version: 1}
	put := func() {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { return tx.PutKBArticle(a) }); err != nil {
			t.Fatal(err)
		}
	}
	marks := func() map[string]uint64 {
		t.Helper()
		m := map[string]uint64{}
		if err := s.View(ctx, func(tx *Tx) error {
			return tx.EachKBDirty(func(id string, v uint64) error { m[id] = v; return nil })
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	clear := func(v uint64) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error { return tx.ClearKBDirty(a.ID, v) }); err != nil {
			t.Fatal(err)
		}
	}
	put()
	a.Version = 2
	put()
	if m := marks(); m[a.ID] != 2 {
		t.Fatalf("marks %v, want version 2", m)
	}
	clear(1) // an indexer that read version 1
	if m := marks(); m[a.ID] != 2 {
		t.Fatalf("clearing version 1 took the mark of version 2: %v", m)
	}
	clear(2)
	if m := marks(); len(m) != 0 {
		t.Fatalf("marks %v after clearing version 2", m)
	}
	clear(2) // nothing to clear is not an error
	var got *KBArticle
	if err := s.View(ctx, func(tx *Tx) error {
		var err error
		got, err = tx.KBArticle(a.ID)
		return err
	}); err != nil || got.Version != 2 {
		t.Fatalf("article %+v %v", got, err)
	}
}
