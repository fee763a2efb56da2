package ra

import (
	"testing"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/signer"
)

// FuzzEscrowRequests feeds the two escrow request documents, which arrive
// signed from outside, to their parsers: no panic, and whatever is
// accepted is complete.
func FuzzEscrowRequests(f *testing.F) {
	for _, s := range []string{
		`{"org":"h","signing_serial":"0a1b","algorithm":"ecdsa-p256","delivery":"pkcs12"}`,
		`{"org":"h","signing_serial":"zz"}`,
		`{"org":"h","serial":"0a","reason":"USBKey lost"}`,
		`{"org":"h","serial":"0a","reason":"court","judicial":true,"case_reference":"(2026)京0105刑初123号","recipient":"0b"}`,
		`{"org":"h","serial":"0a","reason":"x","case_reference":"1"}`,
		`{"org":"h","serial":"0a","reason":"a\nb"} {}`,
		`{"org":"h","signing_serial":"0a","extra":1}`,
		"\xff",
	} {
		f.Add([]byte(s))
	}
	cfg := config.Default().RA.Escrow
	f.Fuzz(func(t *testing.T, b []byte) {
		if in, signing, err := parseEncryptionCert(b, cfg); err == nil {
			if in.Org == "" || len(signing) == 0 || (in.Algorithm != string(signer.RSA2048) && in.Algorithm != string(signer.ECDSAP256)) || (in.Delivery != "cms" && in.Delivery != "pkcs12") {
				t.Fatalf("accepted an incomplete encryption certificate request %+v", in)
			}
		}
		if in, serial, _, err := parseKeyRecovery(b, cfg); err == nil {
			if in.Org == "" || len(serial) == 0 || in.Reason == "" || in.Judicial != (in.CaseReference != "") || (in.Delivery != "cms" && in.Delivery != "pkcs12") {
				t.Fatalf("accepted an incomplete key recovery %+v", in)
			}
		}
	})
}
