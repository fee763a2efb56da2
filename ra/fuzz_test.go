package ra

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

func FuzzParseApplication(f *testing.F) {
	good, _ := json.Marshal(Application{Org: "o", Items: []Item{{Name: "n", CSR: testCSR(f)}}})
	f.Add(good)
	f.Add([]byte(`{"org":"o","kind":"revoke","items":[{"serial":"0a","cause":"key_lost"}]}`))
	f.Add([]byte(`{"org":"o","kind":"renew","items":[{"serial":"zz"}]}`))
	f.Add([]byte(`{"org":"o","items":[]} trailing`))
	f.Add([]byte("\xff\xfe"))
	f.Add([]byte(`{"org":"o","kind":"revoke","leader":{"name":"Director","date":"2026-02-27","document":"JVBERi0xLjQK"},"items":[{"serial":"0a","cause":"key_lost"}]}`))
	f.Add([]byte(`{"org":"o","kind":"revoke","leader":{"name":"","date":"2026-02-30","document":"!"},"items":[{"serial":"0a","cause":"key_lost"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		app, csrs, err := ParseApplication(b)
		if err != nil {
			return
		}
		if app.Leader != nil {
			if _, _, err := app.Leader.check(); err != nil {
				t.Fatalf("accepted a bad leader approval %+v: %v", app.Leader, err)
			}
		}
		if app.Org == "" || len(app.Items) == 0 || len(csrs) != len(app.Items) {
			t.Fatalf("accepted an incomplete application: %+v", app)
		}
		for i, it := range app.Items {
			if app.Kind != KindRevoke && csrs[i] == nil {
				t.Fatalf("item %d accepted without a CSR", i)
			}
			if app.Kind == KindIssue && !issuableProfiles[it.Profile] {
				t.Fatalf("item %d accepted with profile %q", i, it.Profile)
			}
		}
	})
}

func FuzzParseSigned(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)
	sd, err := pkcs7.NewSignedData([]byte(`{"org":"o","items":[]}`))
	if err != nil {
		f.Fatal(err)
	}
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}); err != nil {
		f.Fatal(err)
	}
	signed, err := sd.Finish()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now()
	if _, err := ParseSigned(signed, now); err != nil {
		f.Fatalf("seed does not verify: %v", err)
	}
	f.Add(signed)
	f.Add(signed[:len(signed)/2])
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSigned(b, now)
		if err != nil {
			return
		}
		if s.Signer == nil || len(s.Content) == 0 {
			t.Fatalf("accepted a document without signer or content")
		}
	})
}
