package ocsp

import (
	"crypto"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"
)

// TestReadOnlyServesOnlyPreSigned is a read replica's responder: it serves
// the stored response byte for byte, never one past its nextUpdate (tryLater,
// not a live signature), tryLater for a request with several CertIDs, and
// picks up a replaced response after Invalidate.
func TestReadOnlyServesOnlyPreSigned(t *testing.T) {
	e := newEnv(t)
	c, x := e.issue("")
	iss := e.issuer("demo")
	req := e.request(x, iss.Cert, crypto.SHA1)
	ro := e.newResponder(func(o *Options) { o.ReadOnly = true })
	get := func() (int, []byte) {
		w := httptest.NewRecorder()
		ro.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ocsp/"+base64.StdEncoding.EncodeToString(req), nil))
		return w.Code, w.Body.Bytes()
	}
	_, first := get()
	if parse(t, first, x, iss.Cert).Status != xocsp.Good {
		t.Fatal("stored response not served")
	}
	if _, again := get(); string(again) != string(first) {
		t.Fatal("the read-only responder served other bytes than the stored response")
	}

	t.Run("replaced response after Invalidate", func(t *testing.T) {
		if _, err := e.auth.Revoke(e.ctx, c.Serial, 1); err != nil { // the primary's responder re-signs
			t.Fatal(err)
		}
		ro.Invalidate(c.Serial)
		if _, b := get(); parse(t, b, x, iss.Cert).Status != xocsp.Revoked {
			t.Fatal("the replaced response was not served after Invalidate")
		}
	})
	t.Run("past nextUpdate is tryLater, never signed", func(t *testing.T) {
		e.clock.Advance(80 * time.Hour)
		code, b := get()
		if code != http.StatusOK || statusOf(t, b) != StatusTryLater {
			t.Fatalf("got %d %x, want tryLater", code, b)
		}
	})
	t.Run("several CertIDs is tryLater", func(t *testing.T) {
		nh := sha1.Sum(iss.Cert.RawSubject)
		bits, _ := publicKeyBits(iss.Cert)
		kh := sha1.Sum(bits)
		id := mustCertID(t, SHA1, nh[:], kh[:], c.Serial)
		multi := buildRequest(t, [][]byte{id, id}, nil)
		w := httptest.NewRecorder()
		ro.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/ocsp/"+base64.StdEncoding.EncodeToString(multi), nil))
		if statusOf(t, w.Body.Bytes()) != StatusTryLater {
			t.Fatalf("got %x, want tryLater", w.Body.Bytes())
		}
	})
}
