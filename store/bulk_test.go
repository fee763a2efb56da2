package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/certcenter/certcenter/store"
)

// TestOCSPPresigned: while the seed says it stores each certificate's
// OCSP response itself, issuing and revoking leave no OCSP mark (the CRL
// marks of a revocation stay); turned off, marks are written again.
func TestOCSPPresigned(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetOCSPPresigned(true)
	if err := st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertCert(&store.Cert{Serial: []byte{1}, Issuer: "demo", Subject: "CN=a"}); err != nil {
			return err
		}
		_, err := tx.RevokeCert([]byte{1}, testNow, 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := dirtyIDs(t, st, store.DirtyOCSP); len(got) != 0 {
		t.Errorf("OCSP marks while pre-signed = %v", got)
	}
	if got := dirtyIDs(t, st, store.DirtyCRL); len(got) != 1 {
		t.Errorf("CRL marks of a revocation while pre-signed = %v; want the issuer's", got)
	}
	st.SetOCSPPresigned(false)
	if err := st.Update(ctx, func(tx *store.Tx) error {
		return tx.InsertCert(&store.Cert{Serial: []byte{2}, Issuer: "demo", Subject: "CN=b"})
	}); err != nil {
		t.Fatal(err)
	}
	if got := dirtyIDs(t, st, store.DirtyOCSP); len(got) != 1 || got["02"] == nil {
		t.Errorf("OCSP marks after turning pre-signing off = %v; want 02", got)
	}
}

// TestBulkLoadReopens: a store written with the bulk-load options, in
// transactions big enough to fill several memtables and compact, reads
// back the same under the normal options.
func TestBulkLoadReopens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: dir, BulkLoad: true, MinFreeBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	val := func(i int) string { return fmt.Sprintf("%d|%0900d", i, 0) }
	for b := 0; b < n; b += 100 {
		if err := st.Update(ctx, func(tx *store.Tx) error {
			for i := b; i < b+100; i++ {
				if err := tx.PutBlob("bulk", fmt.Sprintf("%06d", i), []byte(val(i))); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = store.Open(store.Options{Dir: dir, MinFreeBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.View(ctx, func(tx *store.Tx) error {
		seen := 0
		if err := tx.EachBlob("bulk", func(k string, v []byte) error {
			if k != fmt.Sprintf("%06d", seen) || string(v) != val(seen) {
				return fmt.Errorf("blob %d: %s = %.20q", seen, k, v)
			}
			seen++
			return nil
		}); err != nil {
			return err
		}
		if seen != n {
			return fmt.Errorf("%d blobs read back; want %d", seen, n)
		}
		_, err := tx.Blob("bulk", "missing")
		if !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("missing blob: %v", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
