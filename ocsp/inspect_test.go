package ocsp

import (
	"encoding/hex"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// Inspect reports the response lookup would serve, from where, without
// filling the cache or signing: the cache after issuance, the store when
// the cache has no entry, live when nothing is stored, and a corrupt stored
// record as invalid.
func TestInspect(t *testing.T) {
	e := newEnv(t)
	c, _ := e.issue("")
	cur := e.issuer("demo").OCSPCert.SerialNumber.Bytes()

	s, err := e.r.Inspect(e.ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != SourceCache || s.Status != "good" || s.Invalid != "" || hex.EncodeToString(s.ResponderSerial) != hex.EncodeToString(cur) ||
		!s.SignedForUpdate.Equal(c.UpdatedAt) || !s.ThisUpdate.Before(s.NextUpdate) || s.ProducedAt.IsZero() {
		t.Errorf("after issuance: %+v", s)
	}

	rc, err := e.auth.Revoke(e.ctx, c.Serial, ca.ReasonKeyCompromise)
	if err != nil {
		t.Fatal(err)
	}
	e.r.invalidate(c.Serial)
	if s, _ = e.r.Inspect(e.ctx, rc); s.Source != SourceStore || s.Status != "revoked" || s.Reason != int(ca.ReasonKeyCompromise) || !s.RevokedAt.Equal(rc.RevokedAt.Truncate(1e9)) {
		t.Errorf("revoked, from the store: %+v", s)
	}
	if k, _ := makeKey(SHA1, c.Serial); e.r.cache.get(&k) != nil {
		t.Error("Inspect filled the cache")
	}

	if err := e.st.Update(e.ctx, func(tx *store.Tx) error { return tx.PutBlob(blobNamespace, c.SerialHex(), []byte{9, 9}) }); err != nil {
		t.Fatal(err)
	}
	if s, _ = e.r.Inspect(e.ctx, rc); s.Source != SourceLive || s.Status != "revoked" || s.Invalid == "" {
		t.Errorf("corrupt record: %+v", s)
	}
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error { return tx.DeleteBlob(blobNamespace, c.SerialHex()) }); err != nil {
		t.Fatal(err)
	}
	if s, _ = e.r.Inspect(e.ctx, rc); s.Source != SourceLive || s.Invalid != "" {
		t.Errorf("no record: %+v", s)
	}
	var stored bool
	_ = e.st.View(e.ctx, func(tx *store.Tx) error {
		_, err := tx.Blob(blobNamespace, c.SerialHex())
		stored = err == nil
		return nil
	})
	if stored {
		t.Error("Inspect stored a response")
	}
}
