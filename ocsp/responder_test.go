package ocsp

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"encoding/base64"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

func TestOpenSSLClient(t *testing.T) {
	e := newEnv(t)
	iss := e.issuer("demo")
	caPEM := writePEM(t, filepath.Join(e.dir, "ca.pem"), iss.Cert.Raw)
	good, goodX := e.issue("")
	revoked, _ := e.issue("")
	if _, err := e.auth.Revoke(e.ctx, revoked.Serial, ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	certPEM := writePEM(t, filepath.Join(e.dir, "good.pem"), goodX.Raw)
	unknown := "0x7F0102030405060708090A0B0C0D0E0F10111213"

	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"ok/good", []string{"-serial", hexSerial(good)}, []string{"Response verify OK", ": good", "Cert Status: good"}},
		{"ok/good-by-cert", []string{"-cert", certPEM}, []string{"Response verify OK", "Cert Status: good"}},
		{"ok/revoked", []string{"-serial", hexSerial(revoked)}, []string{"Response verify OK", ": revoked", "Reason: keyCompromise", "Revocation Time:"}},
		{"ok/sha256-certid", []string{"-sha256", "-serial", hexSerial(good)}, []string{"Response verify OK", "Hash Algorithm: sha256", "Cert Status: good"}},
		{"ok/several-certids", []string{"-serial", hexSerial(good), "-serial", hexSerial(revoked)}, []string{"Response verify OK", "Cert Status: good", "Cert Status: revoked"}},
		{"fail/unknown-serial", []string{"-serial", unknown}, []string{"Responder Error: unauthorized (6)"}},
		{"fail/one-of-several-unknown", []string{"-serial", hexSerial(good), "-serial", unknown}, []string{"Responder Error: unauthorized (6)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"ocsp", "-issuer", caPEM, "-url", e.url, "-CAfile", caPEM, "-resp_text", "-no_nonce"}, tt.args...)
			out := openssl(t, args...)
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	t.Run("ok/revocation-time", func(t *testing.T) {
		c, err := e.auth.Cert(e.ctx, revoked.Serial)
		if err != nil {
			t.Fatal(err)
		}
		out := openssl(t, "ocsp", "-issuer", caPEM, "-url", e.url, "-CAfile", caPEM, "-resp_text", "-no_nonce", "-serial", hexSerial(revoked))
		want := c.RevokedAt.UTC().Format("Jan _2 15:04:05 2006 GMT")
		if !strings.Contains(out, "Revocation Time: "+want) {
			t.Errorf("want revocation time %s in:\n%s", want, out)
		}
	})
}

func TestGoClient(t *testing.T) {
	for _, byName := range []bool{false, true} {
		name := map[bool]string{false: "byKey", true: "byName"}[byName]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.ResponderIDByName = byName })
			iss := e.issuer("demo")
			c, x := e.issue("")
			for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256, crypto.SHA384, crypto.SHA512} {
				resp := parse(t, e.post(e.request(x, iss.Cert, h)), x, iss.Cert)
				if resp.Status != xocsp.Good {
					t.Errorf("%v: status %d, want good", h, resp.Status)
				}
				if resp.IssuerHash != h {
					t.Errorf("response CertID hash %v, want the request's %v", resp.IssuerHash, h)
				}
				if resp.Certificate == nil || !resp.Certificate.Equal(e.r.responderCert("demo")) {
					t.Errorf("response does not carry the delegated responder certificate")
				}
				if got := resp.NextUpdate.Sub(resp.ThisUpdate); got != 72*time.Hour {
					t.Errorf("validity %s, want 72h", got)
				}
				if got := e.clock.Now().Sub(resp.ThisUpdate); got < time.Hour || got > time.Hour+2*time.Second {
					t.Errorf("thisUpdate backdated by %s, want 1h", got)
				}
				if byName && len(resp.RawResponderName) == 0 || !byName && len(resp.ResponderKeyHash) == 0 {
					t.Errorf("responder ID is not %s", name)
				}
				if !byName {
					bits, _ := publicKeyBits(resp.Certificate)
					if h := sha1.Sum(bits); !bytes.Equal(h[:], resp.ResponderKeyHash) {
						t.Errorf("byKey hash %x, want %x", resp.ResponderKeyHash, h)
					}
				}
			}
			if _, err := e.auth.Revoke(e.ctx, c.Serial, ca.ReasonSuperseded); err != nil {
				t.Fatal(err)
			}
			resp := parse(t, e.post(e.request(x, iss.Cert, crypto.SHA1)), x, iss.Cert)
			if resp.Status != xocsp.Revoked || resp.RevocationReason != xocsp.Superseded {
				t.Errorf("after revoke: status %d reason %d, want revoked/superseded", resp.Status, resp.RevocationReason)
			}
		})
	}
}

// requestWithPadding builds an OCSP request for x whose base64 contains "//"
// and "+", by adding a (ignored) nonce of chosen octets.
func requestWithPadding(t *testing.T, e *env, c *store.Cert) ([]byte, string) {
	t.Helper()
	iss := e.issuer("demo")
	nh := sha1.Sum(iss.Cert.RawSubject)
	bits, _ := publicKeyBits(iss.Cert)
	kh := sha1.Sum(bits)
	for pad := 0; pad < 9; pad++ {
		nonce := append(bytes.Repeat([]byte{0}, pad), bytes.Repeat([]byte{0xff}, 6)...)
		nonce = append(nonce, bytes.Repeat([]byte{0xfb, 0xef, 0xbe}, 3)...)
		der := buildRequest(t, [][]byte{mustCertID(t, SHA1, nh[:], kh[:], c.Serial)}, nonce)
		s := base64.StdEncoding.EncodeToString(der)
		if strings.Contains(s, "//") && strings.Contains(s, "+") && strings.HasSuffix(s, "=") {
			return der, s
		}
	}
	t.Fatal("could not build a request whose base64 has // and +")
	return nil, ""
}

func mustCertID(t *testing.T, h HashAlg, nh, kh, serial []byte) []byte {
	t.Helper()
	id, err := encodeCertID(h, nh, kh, serial)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// buildRequest encodes an OCSPRequest with the given CertIDs and, if nonce
// is not nil, an RFC 8954 nonce extension.
func buildRequest(t testing.TB, ids [][]byte, nonce []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, id := range ids {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(id) })
				}
			})
			if nonce != nil {
				b.AddASN1(tagExplicit2, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1(cbasn1.OBJECT_IDENTIFIER, func(b *cryptobyte.Builder) { b.AddBytes(oidNonce) })
							b.AddASN1(cbasn1.OCTET_STRING, func(b *cryptobyte.Builder) { b.AddASN1OctetString(nonce) })
						})
					})
				})
			}
		})
	})
	der, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestGETEncodings(t *testing.T) {
	e := newEnv(t)
	c, x := e.issue("")
	iss := e.issuer("demo")
	_, std := requestWithPadding(t, e, c)
	raw := strings.TrimRight(std, "=")
	urlsafe := base64.RawURLEncoding.EncodeToString(mustDecode(t, std))
	tests := []struct{ name, target string }{
		{"std-padded", "/ocsp/" + std},
		{"std-unpadded", "/ocsp/" + raw},
		{"percent-encoded", "/ocsp/" + url.QueryEscape(std)},
		{"percent-encoded-lowercase", "/ocsp/" + regexp.MustCompile(`%[0-9A-F]{2}`).ReplaceAllStringFunc(url.QueryEscape(std), strings.ToLower)},
		{"partly-encoded", "/ocsp/" + strings.ReplaceAll(std, "/", "%2F")},
		{"double-encoded", "/ocsp/" + url.QueryEscape(url.QueryEscape(std))},
		{"plus-as-space", "/ocsp/" + strings.ReplaceAll(std, "+", "%20")},
		{"base64url-unpadded", "/ocsp/" + urlsafe},
		{"base64url-padded", "/ocsp/" + base64.URLEncoding.EncodeToString(mustDecode(t, std))},
		{"leading-double-slash", "/ocsp//" + std},
		{"many-leading-slashes", "/ocsp///" + std},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, hdr, body := e.getRaw(tt.target, nil)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d", code)
			}
			if s := statusOf(t, body); s != StatusSuccessful {
				t.Fatalf("OCSP status %d", s)
			}
			if resp := parse(t, body, x, iss.Cert); resp.Status != xocsp.Good {
				t.Errorf("status %d, want good", resp.Status)
			}
			if hdr.Get("Content-Type") != "application/ocsp-response" {
				t.Errorf("Content-Type %q", hdr.Get("Content-Type"))
			}
		})
	}
}

func mustDecode(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGETHeadersAndConditional(t *testing.T) {
	e := newEnv(t)
	_, x := e.issue("")
	iss := e.issuer("demo")
	target := "/ocsp/" + base64.StdEncoding.EncodeToString(e.request(x, iss.Cert, crypto.SHA1))
	code, hdr, body := e.getRaw(target, nil)
	if code != http.StatusOK {
		t.Fatalf("HTTP %d", code)
	}
	resp := parse(t, body, x, iss.Cert)
	wantMaxAge := int(resp.NextUpdate.Sub(e.clock.Now()) / time.Second)
	cc := hdr.Get("Cache-Control")
	if m := regexp.MustCompile(`^max-age=(\d+), public, no-transform, must-revalidate$`).FindStringSubmatch(cc); m == nil || m[1] != itoa(wantMaxAge) {
		t.Errorf("Cache-Control %q, want max-age=%d, public, no-transform, must-revalidate", cc, wantMaxAge)
	}
	if lm := hdr.Get("Last-Modified"); lm != resp.ThisUpdate.Format(http.TimeFormat) {
		t.Errorf("Last-Modified %q, want thisUpdate %s", lm, resp.ThisUpdate.Format(http.TimeFormat))
	}
	if ex := hdr.Get("Expires"); ex != resp.NextUpdate.Format(http.TimeFormat) {
		t.Errorf("Expires %q, want nextUpdate %s", ex, resp.NextUpdate.Format(http.TimeFormat))
	}
	etag := hdr.Get("ETag")
	if !strings.HasPrefix(etag, `"`) {
		t.Fatalf("ETag %q", etag)
	}
	tests := []struct {
		name string
		hdr  http.Header
		want int
	}{
		{"if-none-match", http.Header{"If-None-Match": {etag}}, http.StatusNotModified},
		{"if-none-match-list", http.Header{"If-None-Match": {`"x", ` + etag}}, http.StatusNotModified},
		{"if-none-match-other", http.Header{"If-None-Match": {`"other"`}}, http.StatusOK},
		{"if-modified-since-equal", http.Header{"If-Modified-Since": {hdr.Get("Last-Modified")}}, http.StatusNotModified},
		{"if-modified-since-later", http.Header{"If-Modified-Since": {resp.ThisUpdate.Add(time.Minute).Format(http.TimeFormat)}}, http.StatusNotModified},
		{"if-modified-since-earlier", http.Header{"If-Modified-Since": {resp.ThisUpdate.Add(-time.Minute).Format(http.TimeFormat)}}, http.StatusOK},
		{"none-match-wins", http.Header{"If-None-Match": {`"other"`}, "If-Modified-Since": {hdr.Get("Last-Modified")}}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, h, body := e.getRaw(target, tt.hdr)
			if code != tt.want {
				t.Fatalf("HTTP %d, want %d", code, tt.want)
			}
			if code == http.StatusNotModified && (len(body) != 0 || h.Get("ETag") != etag) {
				t.Errorf("304 with body %d bytes, ETag %q", len(body), h.Get("ETag"))
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestErrors(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxRequestBytes = 512 })
	_, x := e.issue("")
	iss := e.issuer("demo")
	good := e.request(x, iss.Cert, crypto.SHA1)
	other := newEnv(t) // another CA: same serial space, different issuer
	_, ox := other.issue("")
	foreign := other.request(ox, other.issuer("demo").Cert, crypto.SHA1)
	nh := sha1.Sum(iss.Cert.RawSubject)
	bits, _ := publicKeyBits(iss.Cert)
	kh := sha1.Sum(bits)
	unknownSerial := buildRequest(t, [][]byte{mustCertID(t, SHA1, nh[:], kh[:], []byte{0x01, 0x02, 0x03})}, nil)
	tests := []struct {
		name   string
		method string
		target string
		body   []byte
		want   ResponseStatus
	}{
		{"malformed/garbage-post", http.MethodPost, "/ocsp", []byte("hello"), StatusMalformedRequest},
		{"malformed/empty-post", http.MethodPost, "/ocsp", nil, StatusMalformedRequest},
		{"malformed/too-big", http.MethodPost, "/ocsp", append(bytes.Repeat([]byte{0x30}, 600), good...), StatusMalformedRequest},
		{"malformed/trailing", http.MethodPost, "/ocsp", append(append([]byte{}, good...), 0), StatusMalformedRequest},
		{"malformed/bad-base64", http.MethodGet, "/ocsp/M!!!", nil, StatusMalformedRequest},
		{"malformed/empty-get", http.MethodGet, "/ocsp/", nil, StatusMalformedRequest},
		{"malformed/not-der", http.MethodGet, "/ocsp/aGVsbG8=", nil, StatusMalformedRequest},
		{"unauthorized/other-ca", http.MethodPost, "/ocsp", foreign, StatusUnauthorized},
		{"unauthorized/unknown-serial", http.MethodPost, "/ocsp", unknownSerial, StatusUnauthorized},
		{"unauthorized/get", http.MethodGet, "/ocsp/" + base64.StdEncoding.EncodeToString(unknownSerial), nil, StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, e.srv.URL, bytes.NewReader(tt.body))
			req.URL.Opaque = tt.target
			code, hdr, body := e.do(req)
			if code != http.StatusOK {
				t.Fatalf("HTTP %d", code)
			}
			if !bytes.Equal(body, errorResponse(tt.want)) {
				t.Fatalf("body %x, want status %d", body, tt.want)
			}
			if cc := hdr.Get("Cache-Control"); cc != "max-age=0, no-cache" {
				t.Errorf("Cache-Control %q on an error", cc)
			}
			if hdr.Get("ETag") != "" || hdr.Get("Expires") != "" {
				t.Errorf("error carries caching validators: %v", hdr)
			}
		})
	}
	t.Run("method-not-allowed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPut, e.url, nil)
		if code, _, _ := e.do(req); code != http.StatusMethodNotAllowed {
			t.Errorf("HTTP %d", code)
		}
	})
}

func TestSeveralIssuers(t *testing.T) {
	e := newEnv(t)
	if _, err := e.auth.Init(e.ctx, ca.InitOptions{Name: "second", CommonName: "Second Root CA", Organization: "certcenter", Algorithm: signer.ECDSAP384, Validity: 365 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	a, ax := e.issue("demo")
	_, bx := e.issue("second")
	ia, ib := e.issuer("demo"), e.issuer("second")
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		if r := parse(t, e.post(e.request(ax, ia.Cert, h)), ax, ia.Cert); r.Status != xocsp.Good {
			t.Errorf("demo %v: status %d", h, r.Status)
		}
		if r := parse(t, e.post(e.request(bx, ib.Cert, h)), bx, ib.Cert); r.Status != xocsp.Good {
			t.Errorf("second %v: status %d", h, r.Status)
		}
	}
	// A serial of demo asked of second is not ours to answer.
	if s := statusOf(t, e.post(e.request(ax, ib.Cert, crypto.SHA1))); s != StatusUnauthorized {
		t.Errorf("cross-issuer: status %d, want unauthorized", s)
	}
	// Several CertIDs of two issuers cannot share one signer.
	nh := sha1.Sum(ia.Cert.RawSubject)
	bits, _ := publicKeyBits(ia.Cert)
	kh := sha1.Sum(bits)
	nhb := sha1.Sum(ib.Cert.RawSubject)
	bitsb, _ := publicKeyBits(ib.Cert)
	khb := sha1.Sum(bitsb)
	mixed := buildRequest(t, [][]byte{mustCertID(t, SHA1, nh[:], kh[:], a.Serial), mustCertID(t, SHA1, nhb[:], khb[:], bx.SerialNumber.Bytes())}, nil)
	if s := statusOf(t, e.post(mixed)); s != StatusUnauthorized {
		t.Errorf("mixed issuers: status %d, want unauthorized", s)
	}
}

func TestNonce(t *testing.T) {
	iss := func(e *env) ([]byte, []byte) {
		c, _ := e.issue("")
		i := e.issuer("demo")
		nh := sha1.Sum(i.Cert.RawSubject)
		bits, _ := publicKeyBits(i.Cert)
		kh := sha1.Sum(bits)
		return mustCertID(t, SHA1, nh[:], kh[:], c.Serial), nil
	}
	nonce := []byte("0123456789abcdef")
	t.Run("ignored-by-default", func(t *testing.T) {
		e := newEnv(t)
		id, _ := iss(e)
		plain := e.post(buildRequest(t, [][]byte{id}, nil))
		withNonce := e.post(buildRequest(t, [][]byte{id}, nonce))
		if !bytes.Equal(plain, withNonce) {
			t.Error("a nonce changed the pre-signed response")
		}
	})
	t.Run("signed", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.SignNonces = true; o.LiveRate = 2 })
		id, _ := iss(e)
		resp, err := xocsp.ParseResponse(e.post(buildRequest(t, [][]byte{id}, nonce)), nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp
		echoed := responseNonce(t, e.post(buildRequest(t, [][]byte{id}, nonce)))
		var want cryptobyte.Builder
		want.AddASN1OctetString(nonce)
		if w, _ := want.Bytes(); !bytes.Equal(echoed, w) {
			t.Errorf("nonce %x, want %x", echoed, w)
		}
		// Over the rate: the pre-signed response, without the nonce.
		if responseNonce(t, e.post(buildRequest(t, [][]byte{id}, nonce))) != nil {
			t.Error("rate-limited nonce request was live-signed")
		}
		if s := statusOf(t, e.post(buildRequest(t, [][]byte{id}, bytes.Repeat([]byte{1}, 33)))); s != StatusMalformedRequest {
			t.Errorf("33-octet nonce: status %d, want malformedRequest", s)
		}
	})
	t.Run("openssl", func(t *testing.T) {
		e := newEnv(t, func(o *Options) { o.SignNonces = true })
		c, _ := e.issue("")
		caPEM := writePEM(t, filepath.Join(e.dir, "ca.pem"), e.issuer("demo").Cert.Raw)
		out := openssl(t, "ocsp", "-issuer", caPEM, "-url", e.url, "-CAfile", caPEM, "-serial", hexSerial(c))
		if !strings.Contains(out, "Response verify OK") || strings.Contains(out, "WARNING") || strings.Contains(out, "nonce") {
			t.Errorf("openssl with nonce:\n%s", out)
		}
	})
}

// responseNonce digs the nonce extension's extnValue out of a response's
// responseExtensions (x/crypto/ocsp does not expose them).
func responseNonce(t *testing.T, der []byte) []byte {
	t.Helper()
	s := cryptobyte.String(der)
	var resp, rb, basicOct, basic, tbs, oid, exts cryptobyte.String
	var status int64
	ok := s.ReadASN1(&resp, cbasn1.SEQUENCE) && resp.ReadASN1Int64WithTag(&status, cbasn1.ENUM) &&
		resp.ReadASN1(&rb, tagExplicit0) && rb.ReadASN1(&rb, cbasn1.SEQUENCE) && rb.ReadASN1(&oid, cbasn1.OBJECT_IDENTIFIER) &&
		rb.ReadASN1(&basicOct, cbasn1.OCTET_STRING) && basicOct.ReadASN1(&basic, cbasn1.SEQUENCE) && basic.ReadASN1(&tbs, cbasn1.SEQUENCE) &&
		tbs.SkipOptionalASN1(tagExplicit0) && skipAny(&tbs) && tbs.SkipASN1(cbasn1.GeneralizedTime) && tbs.SkipASN1(cbasn1.SEQUENCE)
	if !ok {
		t.Fatalf("cannot parse response %x", der)
	}
	var present bool
	if !tbs.ReadOptionalASN1(&exts, &present, tagExplicit1) {
		t.Fatal("bad responseExtensions")
	}
	if !present {
		return nil
	}
	exts.ReadASN1(&exts, cbasn1.SEQUENCE)
	for !exts.Empty() {
		var ext, id, val cryptobyte.String
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1(&id, cbasn1.OBJECT_IDENTIFIER) || !ext.ReadASN1(&val, cbasn1.OCTET_STRING) {
			t.Fatal("bad extension")
		}
		if bytes.Equal(id, oidNonce) {
			return val
		}
	}
	return nil
}

func skipAny(s *cryptobyte.String) bool {
	var tag cbasn1.Tag
	var v cryptobyte.String
	return s.ReadAnyASN1(&v, &tag)
}
