package store_test

import (
	"context"
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
