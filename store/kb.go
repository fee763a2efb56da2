package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Knowledge-base key layout (package desk/kb):
//
//	kbart\0<id>     article
//	kbdirty\0<id>   the article's version not yet in the full-text index (be64)
//
// The store is the knowledge base's source of truth; the full-text index is
// derived from it. Every write of an article also writes its dirty mark in
// the same transaction, and the indexer removes the mark once that version
// is in the index, so after a crash the marks left are exactly what the
// index missed.
var (
	pKBArticle = []byte("kbart\x00")
	pKBDirty   = []byte("kbdirty\x00")
)

// KindKBArticle is the Change of a written knowledge-base article; its key is the ID.
const KindKBArticle Kind = "kb-article"

// KBArticle is a knowledge-base article (SPEC Art. 15-17: training and FAQ).
type KBArticle struct {
	ID string `json:"id"`
	// Lang is "zh" or "en".
	Lang     string `json:"lang"`
	Title    string `json:"title"`
	Body     string `json:"body"`
	Category string `json:"category"`
	// Level is who may read it: "public", "agent", "engineer".
	Level string   `json:"level"`
	Tags  []string `json:"tags,omitempty"`
	// Translation is the ID of the same article in the other language.
	Translation string `json:"translation,omitempty"`
	// Version counts the writes, from 1.
	Version   uint64    `json:"version"`
	Retired   bool      `json:"retired,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
	RetiredAt time.Time `json:"retired_at,omitzero"`
	RetiredBy string    `json:"retired_by,omitempty"`
}

// PutKBArticle writes an article and marks its version for the index.
func (tx *Tx) PutKBArticle(a *KBArticle) error {
	if a.ID == "" {
		return errors.New("knowledge-base article without ID")
	}
	b, err := encode(a)
	if err != nil {
		return fmt.Errorf("encoding knowledge-base article %s: %w", a.ID, err)
	}
	if err := tx.set(cat(pKBArticle, []byte(a.ID)), b); err != nil {
		return fmt.Errorf("writing knowledge-base article %s: %w", a.ID, err)
	}
	if err := tx.set(cat(pKBDirty, []byte(a.ID)), binary.BigEndian.AppendUint64(nil, a.Version)); err != nil {
		return fmt.Errorf("marking knowledge-base article %s for indexing: %w", a.ID, err)
	}
	tx.changed(KindKBArticle, a.ID)
	return nil
}

// KBArticle reads an article; ErrNotFound if there is none.
func (tx *Tx) KBArticle(id string) (*KBArticle, error) {
	var a KBArticle
	return &a, tx.readRA(pKBArticle, id, &a, "knowledge-base article")
}

// EachKBArticle streams every article in ID order.
func (tx *Tx) EachKBArticle(fn func(*KBArticle) error) error {
	return tx.scan(pKBArticle, nil, true, func(k, v []byte) error {
		var a KBArticle
		if err := decode(v, &a); err != nil {
			return fmt.Errorf("decoding knowledge-base article %q: %w", k[len(pKBArticle):], err)
		}
		return fn(&a)
	})
}

// EachKBDirty streams the articles whose latest version is not yet known to
// be in the full-text index, with that version.
func (tx *Tx) EachKBDirty(fn func(id string, version uint64) error) error {
	return tx.scan(pKBDirty, nil, true, func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("knowledge-base dirty mark %q: %d bytes, want 8", k[len(pKBDirty):], len(v))
		}
		return fn(string(k[len(pKBDirty):]), binary.BigEndian.Uint64(v))
	})
}

// ClearKBDirty removes an article's dirty mark if it still names version:
// a write that came after the indexed version keeps its mark.
func (tx *Tx) ClearKBDirty(id string, version uint64) error {
	k := cat(pKBDirty, []byte(id))
	v, err := tx.get(k)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return fmt.Errorf("reading knowledge-base dirty mark %s: %w", id, err)
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) != version {
		return nil
	}
	if err := tx.txn.Delete(k); err != nil {
		return fmt.Errorf("clearing knowledge-base dirty mark %s: %w", id, err)
	}
	return nil
}
