package ocsp

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	xocsp "golang.org/x/crypto/ocsp"
)

func TestParseRequest(t *testing.T) {
	e := newEnv(t)
	c, x := e.issue("")
	iss := e.issuer("demo")
	nh := sha1.Sum(iss.Cert.RawSubject)
	bits, _ := publicKeyBits(iss.Cert)
	kh := sha1.Sum(bits)
	id := mustCertID(t, SHA1, nh[:], kh[:], c.Serial)

	// openssl's own encoding, several CertIDs and a nonce.
	caPEM := writePEM(t, filepath.Join(e.dir, "ca.pem"), iss.Cert.Raw)
	reqFile := filepath.Join(e.dir, "req.der")
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is required (Debian package: openssl)")
	}
	if out, err := exec.Command("openssl", "ocsp", "-issuer", caPEM, "-serial", hexSerial(c), "-serial", "0x01", "-reqout", reqFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	opensslReq := readFile(t, reqFile)

	withTrailing := func(b []byte) []byte { return append(append([]byte{}, b...), 0) }
	tooMany := make([][]byte, MaxCertIDs+1)
	for i := range tooMany {
		tooMany[i] = id
	}
	var v2 cryptobyte.Builder
	v2.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(tagExplicit0, func(b *cryptobyte.Builder) { b.AddASN1Int64(1) })
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddBytes(id) })
			})
		})
	})
	v2DER, _ := v2.Bytes()
	shortHash := mustCertID(t, SHA1, nh[:10], kh[:], c.Serial)

	tests := []struct {
		name     string
		der      []byte
		wantErr  bool
		wantIDs  int
		wantHash HashAlg
		nonce    bool
	}{
		{"ok/go-sha1", e.request(x, iss.Cert, crypto.SHA1), false, 1, SHA1, false},
		{"ok/go-sha256", e.request(x, iss.Cert, crypto.SHA256), false, 1, SHA256, false},
		{"ok/go-sha512", e.request(x, iss.Cert, crypto.SHA512), false, 1, SHA512, false},
		{"ok/openssl-two-with-nonce", opensslReq, false, 2, SHA1, true},
		{"ok/ours", buildRequest(t, [][]byte{id}, nil), false, 1, SHA1, false},
		{"ok/max-certids", buildRequest(t, tooMany[:MaxCertIDs], nil), false, MaxCertIDs, SHA1, false},
		{"fail/too-many-certids", buildRequest(t, tooMany, nil), true, 0, 0, false},
		{"fail/empty", nil, true, 0, 0, false},
		{"fail/trailing", withTrailing(buildRequest(t, [][]byte{id}, nil)), true, 0, 0, false},
		{"fail/no-certids", buildRequest(t, nil, nil), true, 0, 0, false},
		{"fail/version-2", v2DER, true, 0, 0, false},
		{"fail/short-hash", buildRequest(t, [][]byte{shortHash}, nil), true, 0, 0, false},
		{"fail/truncated", buildRequest(t, [][]byte{id}, nil)[:20], true, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Request
			err := ParseRequest(tt.der, &r)
			if tt.wantErr {
				if err == nil {
					t.Fatal("parsed a bad request")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.CertIDs) != tt.wantIDs || r.CertIDs[0].Hash != tt.wantHash || r.HasNonce != tt.nonce {
				t.Fatalf("got %d CertIDs, hash %v, nonce %v", len(r.CertIDs), r.CertIDs[0].Hash, r.HasNonce)
			}
			if got := r.CertIDs[0].LookupSerial(); !bytes.Equal(got, c.Serial) {
				t.Errorf("serial %x, want %x", got, c.Serial)
			}
			if tt.wantHash == SHA1 && !bytes.Equal(r.CertIDs[0].Raw, id) {
				t.Errorf("raw CertID %x, want %x", r.CertIDs[0].Raw, id)
			}
		})
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzParseRequest checks the parser never panics and that what it accepts
// is consistent: CertIDs within bounds, their parts inside the input, the
// same result when parsed twice into a reused Request.
func FuzzParseRequest(f *testing.F) {
	nh := sha1.Sum([]byte("name"))
	kh := sha1.Sum([]byte("key"))
	id, _ := encodeCertID(SHA1, nh[:], kh[:], []byte{0x80, 1, 2})
	f.Add(buildRequest(f, [][]byte{id}, nil))
	f.Add(buildRequest(f, [][]byte{id, id}, []byte("nonce")))
	f.Add([]byte{0x30, 0x00})
	f.Add([]byte{0x30, 0x03, 0x30, 0x01, 0x30})
	f.Add([]byte("MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ"))
	var reused Request
	f.Fuzz(func(t *testing.T, der []byte) {
		var r Request
		err := ParseRequest(der, &r)
		err2 := ParseRequest(der, &reused)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("reused Request changed the outcome: %v vs %v", err, err2)
		}
		if err != nil {
			return
		}
		if len(r.CertIDs) == 0 || len(r.CertIDs) > MaxCertIDs || len(r.CertIDs) != len(reused.CertIDs) {
			t.Fatalf("%d CertIDs", len(r.CertIDs))
		}
		for _, id := range r.CertIDs {
			if len(id.Serial) == 0 || !bytes.Contains(der, id.Raw) || !bytes.Contains(id.Raw, id.Serial) {
				t.Fatalf("CertID parts outside the input")
			}
			if id.Hash != HashUnknown && len(id.KeyHash) != id.Hash.Crypto().Size() {
				t.Fatalf("key hash length %d for %v", len(id.KeyHash), id.Hash)
			}
		}
		// Where x/crypto/ocsp reads the same request, it finds the same
		// first CertID.
		if xr, err := xocsp.ParseRequest(der); err == nil && xr.SerialNumber.Sign() > 0 {
			first := &r.CertIDs[0]
			if new(big.Int).SetBytes(first.LookupSerial()).Cmp(xr.SerialNumber) != 0 || !bytes.Equal(first.KeyHash, xr.IssuerKeyHash) {
				t.Fatalf("first CertID differs from x/crypto/ocsp's: %x vs %x", first.Serial, xr.SerialNumber)
			}
		}
	})
}

// FuzzDecodeGET: whatever a GET path holds, decoding neither panics nor
// reads past its buffers, and the fast path for standard base64 agrees
// with the normalising decoder wherever it accepts.
func FuzzDecodeGET(f *testing.F) {
	for _, s := range []string{"MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ=", "MEIwQDA-MDwwOjAJBgUrDgMCGgUABBQ", "%2FMEIw%2BQA%3D%3D", "//MA==", "QQ==QQ==", "M E", "\r\nMA==", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rest string) {
		b := newReqBuf(1024)
		der, ok := b.decodeGET(rest)
		if !ok {
			return
		}
		got := append([]byte(nil), der...)
		ref := newReqBuf(1024)
		want, ok := ref.normalise(strings.TrimLeft(rest, "/"))
		if strings.ContainsRune(rest, '%') {
			return // percent-decoded first: compared through decodeGET only
		}
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("%q: fast path %x, normalising decoder %x (ok %v)", rest, got, want, ok)
		}
	})
}
