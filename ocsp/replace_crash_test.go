package ocsp

import (
	"bytes"
	"context"
	"crypto"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// A crash (kill -9) after the revoked responder's replacement is committed
// but before every response the revoked key signed is dropped must not
// leave those responses in service: the next start finishes the drop, so
// every response is signed by the new responder.
func TestResponderReplacementFinishedAfterCrash(t *testing.T) {
	e := newEnv(t)
	_, leaf := e.issue("")
	iss := e.issuer("demo")
	old := iss.OCSPCert

	// What ReplaceResponder commits before the drop pass: the mark, the
	// revocation of the old responder and the new responder. The process
	// dies there.
	if err := e.st.Update(e.ctx, func(tx *store.Tx) error {
		if err := tx.PutBlob(replacingNamespace, "demo", []byte{1}); err != nil {
			return err
		}
		_, err := tx.RevokeCert(old.SerialNumber.Bytes(), e.clock.Now(), 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.RenewOCSPResponder(e.ctx, "demo"); err != nil {
		t.Fatal(err)
	}

	// The next start.
	r := e.newResponder()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for r.Ready(e.ctx) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	req := httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(e.request(leaf, iss.Cert, crypto.SHA1)))
	req.Header.Set("Content-Type", "application/ocsp-request")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	resp := parse(t, w.Body.Bytes(), leaf, iss.Cert)
	if resp.Certificate == nil || resp.Certificate.Equal(old) {
		t.Fatal("after the restart the response is still signed by the revoked responder")
	}
	err := e.st.View(e.ctx, func(tx *store.Tx) error {
		_, err := tx.Blob(replacingNamespace, "demo")
		return err
	})
	if err == nil {
		t.Error("the replacement mark is still there after the start-up finished it")
	}
}

// flakyAuthority fails the next fail renewals of a responder certificate.
type flakyAuthority struct {
	Authority
	fail atomic.Int32
}

func (f *flakyAuthority) RenewOCSPResponder(ctx context.Context, name string) (*ca.Issuer, error) {
	if f.fail.Add(-1) >= 0 {
		return nil, errors.New("signer unavailable")
	}
	return f.Authority.RenewOCSPResponder(ctx, name)
}

// A replacement of a revoked responder that fails (the signer is down at
// that moment) is retried while the server runs, not only at the next
// start: until then every response is signed by a revoked key.
func TestFailedResponderReplacementIsRetried(t *testing.T) {
	fa := &flakyAuthority{}
	e := newEnv(t, func(o *Options) {
		fa.Authority = o.Authority
		o.Authority = fa
		o.RefreshInterval = 20 * time.Millisecond
	})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for e.r.Ready(e.ctx) != nil {
		time.Sleep(10 * time.Millisecond)
	}
	old := e.issuer("demo").OCSPCert
	fa.fail.Store(1)
	if _, err := e.auth.Revoke(e.ctx, old.SerialNumber.Bytes(), ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if cur := e.r.responderCert("demo"); cur != nil && !cur.Equal(old) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked responder is still in use 20 s after its failed replacement")
		}
	}
}

// A response signed by the old responder but saved after the replacement
// swapped responders is not stored, so the drop pass cannot miss it.
func TestResponseOfAReplacedResponderIsNotStored(t *testing.T) {
	e := newEnv(t)
	r := e.newResponder()
	c, _ := e.issue("")
	old := e.issuer("demo").OCSPCert

	// Signed by the old responder, as a refresher racing the replacement would.
	stale, err := r.signCert(c, SHA1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ReplaceResponder(e.ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	cur, err := r.readCert(e.ctx, c.Serial)
	if err != nil {
		t.Fatal(err)
	}
	stale.certUpdatedAt = cur.UpdatedAt
	stale.thisUpdate = stale.thisUpdate.Add(time.Hour) // newer than what the replacement stored
	written, err := r.save(e.ctx, []*store.Cert{cur}, []*record{stale})
	if err != nil {
		t.Fatal(err)
	}
	if written[0] {
		t.Fatal("a response signed by the replaced responder was stored")
	}
	err = e.st.View(e.ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobNamespace, hex.EncodeToString(c.Serial))
		if err != nil {
			return err
		}
		rec, err := decodeRecord(b)
		if err != nil {
			return err
		}
		resp := parse(t, rec.der, mustParseCert(t, c.DER), e.issuer("demo").Cert)
		if resp.Certificate == nil || resp.Certificate.Equal(old) {
			t.Error("the stored response is signed by the replaced responder")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
