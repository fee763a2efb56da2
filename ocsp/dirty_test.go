package ocsp

import (
	"bytes"
	"crypto"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/store"
)

// dirtySet and schedule read the two indexes Refresh works from.
func (e *env) dirtySet() []string {
	e.t.Helper()
	var ids []string
	if err := e.st.View(e.ctx, func(tx *store.Tx) error {
		return tx.EachDirty(store.DirtyOCSP, "", func(id string, _ []byte) error { ids = append(ids, id); return nil })
	}); err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func (e *env) schedule() []string {
	e.t.Helper()
	var keys []string
	if err := e.st.View(e.ctx, func(tx *store.Tx) error {
		return tx.EachBlob(dueNamespace, func(k string, _ []byte) error { keys = append(keys, k); return nil })
	}); err != nil {
		e.t.Fatal(err)
	}
	return keys
}

// TestRefreshReadsDirtySetAndSchedule: a pass over a store whose responses
// are current checks nothing; a status change committed without the
// responder (a crash before its event ran) is found through the dirty mark
// the revocation wrote, and is the only response signed; a response comes
// due through the schedule, not through a walk.
func TestRefreshReadsDirtySetAndSchedule(t *testing.T) {
	e := newEnv(t)
	var leaves []*store.Cert
	for range 5 {
		c, _ := e.issue("")
		leaves = append(leaves, c)
	}
	// The first pass walks once (the store has no index yet) and writes it.
	if _, err := e.r.Refresh(e.ctx); err != nil {
		t.Fatal(err)
	}
	if d := e.dirtySet(); len(d) != 0 {
		t.Fatalf("after issuance and a refresh the dirty set is %v; want empty", d)
	}
	certs := len(e.schedule())
	if certs < len(leaves) {
		t.Fatalf("schedule has %d keys; want one per stored response (at least %d)", certs, len(leaves))
	}
	st, err := e.r.Refresh(e.ctx)
	if err != nil || st.Checked != 0 || st.Signed != 0 {
		t.Fatalf("pass over current responses = %+v, %v; want nothing checked", st, err)
	}

	// The revocation commits; the process dies before the responder hears.
	victim := leaves[2]
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		_, err := tx.RevokeCert(victim.Serial, e.clock.Now(), 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if d := e.dirtySet(); len(d) != 1 || d[0] != hex.EncodeToString(victim.Serial) {
		t.Fatalf("dirty set after the revocation = %v; want the revoked serial", d)
	}
	r := e.newResponder() // the next start: an empty cache
	st, err = r.Refresh(e.ctx)
	if err != nil || st.Checked != 1 || st.Signed != 1 {
		t.Fatalf("pass after the revocation = %+v, %v; want one checked and signed", st, err)
	}
	if d := e.dirtySet(); len(d) != 0 {
		t.Fatalf("dirty set after the repair = %v", d)
	}
	x := mustParseCert(t, victim.DER)
	req := httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(e.request(x, e.issuer("demo").Cert, crypto.SHA1)))
	req.Header.Set("Content-Type", "application/ocsp-request")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	resp := parse(t, w.Body.Bytes(), x, e.issuer("demo").Cert)
	if resp.Status != xocsp.Revoked {
		t.Fatalf("status after the repair = %d; want revoked", resp.Status)
	}
	if n := len(e.schedule()); n != certs {
		t.Fatalf("schedule has %d keys after re-signing; want %d (the old key replaced)", n, certs)
	}

	// Half the validity later every response is due, found by the schedule.
	e.clock.Advance(r.opts.Validity/2 - r.opts.RefreshInterval + time.Second)
	st, err = r.Refresh(e.ctx)
	if err != nil || st.Signed != certs {
		t.Fatalf("pass at half validity = %+v, %v; want all %d re-signed", st, err, certs)
	}
	if n := len(e.schedule()); n != certs {
		t.Fatalf("schedule has %d keys after the refresh; want %d", n, certs)
	}
	if st, err = r.Refresh(e.ctx); err != nil || st.Signed != 0 {
		t.Fatalf("second pass = %+v, %v; want nothing left to sign", st, err)
	}
}

// TestRefreshDropsStaleScheduleKeys: a response deleted without its
// schedule key (HandleEvent drops a stale response when signing fails) is
// signed again when the refresher reaches the key, and the key replaced.
func TestRefreshDropsStaleScheduleKeys(t *testing.T) {
	e := newEnv(t)
	c, _ := e.issue("")
	if _, err := e.r.Refresh(e.ctx); err != nil {
		t.Fatal(err)
	}
	before := e.schedule()
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		return tx.DeleteBlob(blobNamespace, hex.EncodeToString(c.Serial))
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(e.r.opts.Validity/2 - e.r.opts.RefreshInterval + time.Second)
	st, err := e.r.Refresh(e.ctx)
	if err != nil || st.Signed < 1 {
		t.Fatalf("pass = %+v, %v; want the deleted response signed", st, err)
	}
	if err := e.st.View(e.ctx, func(tx *store.Tx) error {
		_, err := tx.Blob(blobNamespace, hex.EncodeToString(c.Serial))
		return err
	}); err != nil {
		t.Fatalf("response after the pass: %v", err)
	}
	after := e.schedule()
	if len(after) != len(before) {
		t.Fatalf("schedule %v -> %v; want the same number of keys", before, after)
	}
	for _, k := range after {
		for _, o := range before {
			if k == o {
				t.Fatalf("key %s kept after its response was re-signed", k)
			}
		}
	}
}
