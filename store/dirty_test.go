package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/certcenter/certcenter/store"
)

var testNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func dirtyIDs(t *testing.T, st *store.Store, kind string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachDirty(kind, "", func(id string, tok []byte) error {
			out[id] = append([]byte{}, tok...)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDirtyMarks: certificates are marked for OCSP when written, issuers
// for their CRLs when a revocation is; a clear with an old token keeps a
// newer mark; EachDirty pages.
func TestDirtyMarks(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, s := range []byte{1, 2, 3} {
		if err := st.Update(ctx, func(tx *store.Tx) error {
			return tx.InsertCert(&store.Cert{Serial: []byte{s}, Issuer: "demo", Subject: "CN=x"})
		}); err != nil {
			t.Fatal(err)
		}
	}
	if got := dirtyIDs(t, st, store.DirtyOCSP); len(got) != 3 {
		t.Fatalf("OCSP marks after three issuances = %v", got)
	}
	if got := dirtyIDs(t, st, store.DirtyCRL); len(got) != 0 {
		t.Fatalf("CRL marks without a revocation = %v", got)
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		for _, id := range []string{"01", "02", "03"} {
			if err := tx.ClearDirty(store.DirtyOCSP, id); err != nil {
				return err
			}
		}
		_, err := tx.RevokeCert([]byte{2}, testNow, 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := dirtyIDs(t, st, store.DirtyOCSP); len(got) != 1 || got["02"] == nil {
		t.Fatalf("OCSP marks after the revocation = %v; want 02", got)
	}
	crl := dirtyIDs(t, st, store.DirtyCRL)
	if len(crl) != 1 || crl["demo"] == nil || len(dirtyIDs(t, st, store.DirtyCRLDelta)) != 1 {
		t.Fatalf("CRL marks after the revocation = %v", crl)
	}

	// A builder read the mark in its snapshot; another revocation marks
	// it again before the builder commits: the clear keeps the new mark.
	old := crl["demo"]
	if err := st.Update(ctx, func(tx *store.Tx) error { _, err := tx.RevokeCert([]byte{3}, testNow, 1); return err }); err != nil {
		t.Fatal(err)
	}
	var cleared bool
	if err := st.Update(ctx, func(tx *store.Tx) (err error) {
		cleared, err = tx.ClearDirtyIf(store.DirtyCRL, "demo", old)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if cleared || dirtyIDs(t, st, store.DirtyCRL)["demo"] == nil {
		t.Fatal("a clear with the token of an older snapshot removed a newer mark")
	}
	cur := dirtyIDs(t, st, store.DirtyCRL)["demo"]
	if err := st.Update(ctx, func(tx *store.Tx) (err error) {
		cleared, err = tx.ClearDirtyIf(store.DirtyCRL, "demo", cur)
		return err
	}); err != nil || !cleared || len(dirtyIDs(t, st, store.DirtyCRL)) != 0 {
		t.Fatalf("clear with the current token = %v, %v", cleared, err)
	}

	// Paging: after "01" comes "02", "03".
	var ids []string
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.EachDirty(store.DirtyOCSP, "01", func(id string, _ []byte) error { ids = append(ids, id); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != "02" || ids[1] != "03" {
		t.Fatalf("EachDirty after 01 = %v", ids)
	}

	// The covered flag.
	var ok bool
	st.View(ctx, func(tx *store.Tx) (err error) { ok, err = tx.DirtyIndexed(store.DirtyRA); return err })
	if ok {
		t.Fatal("a new store claims its RA index covers every record")
	}
	if err := st.Update(ctx, func(tx *store.Tx) error { return tx.SetDirtyIndexed(store.DirtyRA) }); err != nil {
		t.Fatal(err)
	}
	st.View(ctx, func(tx *store.Tx) (err error) { ok, err = tx.DirtyIndexed(store.DirtyRA); return err })
	if !ok {
		t.Fatal("SetDirtyIndexed did not stick")
	}
}

// TestMarkNew: a new store's walked indexes are recorded as complete; a
// store that holds records keeps walking once.
func TestMarkNew(t *testing.T) {
	ctx := context.Background()
	indexed := func(st *store.Store) bool {
		var ok bool
		if err := st.View(ctx, func(tx *store.Tx) (err error) { ok, err = tx.DirtyIndexed(store.DirtyOCSP); return err }); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.MarkNew(ctx); err != nil || !indexed(st) {
		t.Fatalf("MarkNew on an empty store = %v, indexed %v", err, indexed(st))
	}
	old, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := old.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertCert(&store.Cert{Serial: []byte{1}, Issuer: "demo", Subject: "CN=x"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := old.MarkNew(ctx); err != nil || indexed(old) {
		t.Fatalf("MarkNew on a store with records = %v, indexed %v; want untouched", err, indexed(old))
	}
}
