package ocsp

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// storedRecord reads the stored response of a serial (nil if none).
func (e *env) storedRecord(serial []byte) *record {
	e.t.Helper()
	var rec *record
	err := e.st.View(e.ctx, func(tx *store.Tx) error {
		b, err := tx.Blob(blobNamespace, hex.EncodeToString(serial))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		rec, err = decodeRecord(append([]byte{}, b...))
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func TestIssueAndRevokePreSign(t *testing.T) {
	e := newEnv(t)
	c, _ := e.issue("")
	rec := e.storedRecord(c.Serial)
	if rec == nil || rec.revoked || !rec.certUpdatedAt.Equal(c.UpdatedAt) {
		t.Fatalf("no current stored response right after Issue returned: %+v", rec)
	}
	rc, err := e.auth.Revoke(e.ctx, c.Serial, ca.ReasonKeyCompromise)
	if err != nil {
		t.Fatal(err)
	}
	rec = e.storedRecord(c.Serial)
	if rec == nil || !rec.revoked || !rec.certUpdatedAt.Equal(rc.UpdatedAt) {
		t.Fatalf("stored response not re-signed before Revoke returned: %+v", rec)
	}
}

// TestStartupRepair: certificates issued and revoked while no responder was
// listening (certcenter seed, or a crash between commit and re-signing) get
// current responses before the responder says it is ready.
func TestStartupRepair(t *testing.T) {
	e := newEnv(t)
	c0, x0 := e.issue("") // has a stored "good" response
	offline := e.newAuthority()
	if err := offline.Load(e.ctx); err != nil {
		t.Fatal(err)
	}
	var missing []*store.Cert
	for range 40 {
		key, _ := ecKey()
		c, err := offline.Issue(e.ctx, ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(), Subject: subject("offline")})
		if err != nil {
			t.Fatal(err)
		}
		missing = append(missing, c)
	}
	if _, err := offline.Revoke(e.ctx, c0.Serial, ca.ReasonCessationOfOperation); err != nil {
		t.Fatal(err)
	}
	if e.storedRecord(missing[0].Serial) != nil {
		t.Fatal("offline issuance stored a response")
	}
	if err := e.r.Ready(e.ctx); err == nil {
		t.Fatal("ready before the start-up repair")
	}
	// Before the repair a certificate without a stored response is answered
	// live, never unauthorized.
	iss := e.issuer("demo")
	x1 := mustParseCert(t, missing[1].DER)
	if r := parse(t, e.post(e.request(x1, iss.Cert, crypto.SHA1)), x1, iss.Cert); r.Status != xocsp.Good {
		t.Fatalf("missing response: status %d", r.Status)
	}

	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for e.r.Ready(e.ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", e.r.Ready(e.ctx))
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := e.st.View(e.ctx, func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			b, err := tx.Blob(blobNamespace, c.SerialHex())
			if err != nil {
				t.Errorf("%x: %v", c.Serial, err)
				return nil
			}
			rec, err := decodeRecord(b)
			if err != nil || !rec.certUpdatedAt.Equal(c.UpdatedAt) || rec.revoked != (c.Status == store.StatusRevoked) {
				t.Errorf("%x: stored response not current after repair", c.Serial)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := parse(t, e.post(e.request(x0, iss.Cert, crypto.SHA1)), x0, iss.Cert); r.Status != xocsp.Revoked {
		t.Errorf("certificate revoked offline: status %d after repair, want revoked", r.Status)
	}
}

func TestRefreshAndExpiry(t *testing.T) {
	e := newEnv(t)
	_, x := e.issue("")
	iss := e.issuer("demo")
	req := e.request(x, iss.Cert, crypto.SHA1)
	first := parse(t, e.post(req), x, iss.Cert)

	t.Run("repair", func(t *testing.T) {
		// The responder certificate was issued by Init, before the
		// responder subscribed: only it lacks a response.
		st, err := e.r.Refresh(e.ctx)
		if err != nil || st.Signed != 1 {
			t.Fatalf("repair: %+v %v", st, err)
		}
	})
	t.Run("not-due", func(t *testing.T) {
		st, err := e.r.Refresh(e.ctx)
		if err != nil || st.Signed != 0 {
			t.Fatalf("fresh responses re-signed: %+v %v", st, err)
		}
	})
	t.Run("due-at-half-validity", func(t *testing.T) {
		e.clock.Advance(36*time.Hour - e.r.opts.RefreshInterval - time.Hour) // thisUpdate is 1h back
		st, err := e.r.Refresh(e.ctx)
		if err != nil || st.Signed == 0 || st.Signed != st.Checked {
			t.Fatalf("refresh: %+v %v", st, err)
		}
		second := parse(t, e.post(req), x, iss.Cert)
		if !second.ThisUpdate.After(first.ThisUpdate) {
			t.Errorf("served thisUpdate %s, not newer than %s", second.ThisUpdate, first.ThisUpdate)
		}
	})
	t.Run("past-nextUpdate-is-re-signed-live", func(t *testing.T) {
		e.clock.Advance(80 * time.Hour)
		r := parse(t, e.post(req), x, iss.Cert)
		if !r.NextUpdate.After(e.clock.Now()) {
			t.Errorf("served a response past its nextUpdate %s (now %s)", r.NextUpdate, e.clock.Now())
		}
	})
	t.Run("past-nextUpdate-signer-down-is-tryLater", func(t *testing.T) {
		e.clock.Advance(80 * time.Hour)
		broken := e.newResponder(func(o *Options) { o.Authority = failingAuthority{e.auth} })
		w := httptest.NewRecorder()
		broken.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ocsp/"+base64.StdEncoding.EncodeToString(req), nil))
		if got := w.Body.Bytes(); statusOf(t, got) != StatusTryLater || w.Header().Get("Cache-Control") != "max-age=0, no-cache" {
			t.Errorf("got %x %v, want uncacheable tryLater", got, w.Header())
		}
	})
}

type failingAuthority struct{ *ca.Authority }

func (f failingAuthority) Issuers() []*ca.Issuer {
	var out []*ca.Issuer
	for _, iss := range f.Authority.Issuers() {
		c := *iss
		c.OCSPSigner = failingSigner{iss.OCSPSigner}
		out = append(out, &c)
	}
	return out
}

type failingSigner struct{ crypto.Signer }

func (failingSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("HSM unavailable")
}

func TestResponderRenewal(t *testing.T) {
	e := newEnv(t)
	_, x := e.issue("")
	iss := e.issuer("demo")
	old := e.r.responderCert("demo")
	e.r.renewResponders(e.ctx)
	if !e.r.responderCert("demo").Equal(old) {
		t.Fatal("renewed a responder certificate with 90 days left")
	}
	e.clock.Advance(old.NotAfter.Sub(e.clock.Now()) - 29*24*time.Hour)
	e.r.renewResponders(e.ctx)
	cur := e.r.responderCert("demo")
	if cur.Equal(old) || !cur.NotAfter.After(old.NotAfter) {
		t.Fatal("responder certificate not renewed 29 days before expiry")
	}
	r := parse(t, e.post(e.request(x, iss.Cert, crypto.SHA1)), x, iss.Cert)
	if !r.Certificate.Equal(cur) {
		t.Error("response not signed by the renewed responder")
	}
	if err := e.r.Ready(e.ctx); err != nil && !strings.Contains(err.Error(), "checking stored") {
		t.Errorf("ready: %v", err)
	}
}

// TestRevokeUnderLoad revokes certificates while clients query them, and
// checks every answer against the store's history: "revoked" only once the
// revocation started, never "good" once Revoke returned before the request
// was sent.
func TestRevokeUnderLoad(t *testing.T) {
	for _, size := range []int{8, 1000} {
		t.Run("cache-"+itoa(size), func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.CacheEntries = size })
			iss := e.issuer("demo")
			const n = 40
			certs := make([]*store.Cert, n)
			xs := make([]*x509Cert, n)
			for i := range certs {
				certs[i], xs[i] = e.issue("")
			}
			var started, done [n]atomic.Bool
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var answers atomic.Int64
			for w := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					client := &http.Client{}
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						k := rand.IntN(n)
						wasDone := done[k].Load()
						h := []crypto.Hash{crypto.SHA1, crypto.SHA256}[(i+w)%2]
						reqDER := e.request(xs[k], iss.Cert, h)
						var res *http.Response
						var err error
						if i%2 == 0 {
							res, err = client.Post(e.url, "application/ocsp-request", strings.NewReader(string(reqDER)))
						} else {
							res, err = client.Get(e.url + "/" + base64.StdEncoding.EncodeToString(reqDER))
						}
						if err != nil {
							t.Error(err)
							return
						}
						body, _ := io.ReadAll(res.Body)
						res.Body.Close()
						r, err := xocsp.ParseResponseForCert(body, xs[k], iss.Cert)
						if err != nil {
							t.Errorf("serial %d: %v (%x)", k, err, body)
							return
						}
						switch {
						case r.Status == xocsp.Revoked && !started[k].Load():
							t.Errorf("serial %d revoked before its revocation began", k)
						case r.Status == xocsp.Good && wasDone:
							t.Errorf("serial %d good after Revoke had returned", k)
						case r.Status == xocsp.Unknown:
							t.Errorf("serial %d unknown", k)
						}
						answers.Add(1)
					}
				}()
			}
			for k := 0; k < n; k += 2 {
				// Interleave by progress, not by time: a few answers
				// between revocations.
				for seen := answers.Load(); answers.Load() < seen+3 && !t.Failed(); {
					time.Sleep(time.Millisecond)
				}
				started[k].Store(true)
				if _, err := e.auth.Revoke(e.ctx, certs[k].Serial, ca.ReasonKeyCompromise); err != nil {
					t.Fatal(err)
				}
				done[k].Store(true)
			}
			time.Sleep(100 * time.Millisecond)
			close(stop)
			wg.Wait()
			for k := range n {
				for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
					r := parse(t, e.post(e.request(xs[k], iss.Cert, h)), xs[k], iss.Cert)
					if want := map[bool]int{true: xocsp.Revoked, false: xocsp.Good}[k%2 == 0]; r.Status != want {
						t.Errorf("serial %d %v: final status %d, want %d", k, h, r.Status, want)
					}
				}
			}
		})
	}
}
