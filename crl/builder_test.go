package crl

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
)

func TestFullAndDeltaWithOpenSSL(t *testing.T) {
	for _, tc := range []struct {
		name string
		alg  signer.Algorithm
	}{
		{"ok/ecdsa-p256", signer.ECDSAP256},
		{"ok/ecdsa-p384", signer.ECDSAP384},
		{"ok/rsa-2048", signer.RSA2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{alg: tc.alg})
			ctx := context.Background()
			certs := e.issue(4)
			e.revoke(certs[0], ca.ReasonKeyCompromise)
			// Past the delta window's overlap, so the delta lists only what
			// was revoked after its base.
			e.clock.Advance(2 * deltaOverlap)
			if err := e.b.Full(ctx, "demo"); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute)
			e.revoke(certs[1], ca.ReasonUnspecified)
			if err := e.b.Delta(ctx, "demo"); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			full, delta, arl := e.blob("demo.crl"), e.blob("demo-delta.crl"), e.blob("demo-arl.crl")
			caPEM := writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", e.iss.Cert.Raw)
			fullPEM := writePEM(t, filepath.Join(dir, "full.pem"), "X509 CRL", full)
			deltaPEM := writePEM(t, filepath.Join(dir, "delta.pem"), "X509 CRL", delta)
			arlPEM := writePEM(t, filepath.Join(dir, "arl.pem"), "X509 CRL", arl)
			both := writePEM(t, filepath.Join(dir, "both.pem"), "X509 CRL", full, delta)

			text := openssl(t, "crl", "-in", fullPEM, "-text", "-noout")
			for _, want := range []string{"X509v3 CRL Number", "X509v3 Authority Key Identifier", "Key Compromise",
				strings.ToUpper(certs[0].SerialNumber.Text(16))} {
				if !strings.Contains(text, want) {
					t.Errorf("full CRL text lacks %q:\n%s", want, text)
				}
			}
			// One shard: the complete CRL covers every certificate of the CA
			// and has no IDP, which NSS would refuse (TestNSSUsesTheFullCRL).
			if strings.Contains(text, "Issuing Distribution Point") {
				t.Errorf("the complete CRL of an unsharded CA has an IDP:\n%s", text)
			}
			if strings.Contains(text, strings.ToUpper(certs[1].SerialNumber.Text(16))) {
				t.Errorf("full CRL lists the later revocation")
			}
			text = openssl(t, "crl", "-in", deltaPEM, "-text", "-noout")
			for _, want := range []string{"X509v3 Delta CRL Indicator: critical", strings.ToUpper(certs[1].SerialNumber.Text(16))} {
				if !strings.Contains(text, want) {
					t.Errorf("delta CRL text lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(text, "Issuing Distribution Point") {
				t.Errorf("the delta of a CRL without IDP has one (RFC 5280 §5.2.4: same scope):\n%s", text)
			}
			text = openssl(t, "crl", "-in", arlPEM, "-text", "-noout")
			if !strings.Contains(text, "Only CA Certificates") || !strings.Contains(text, "No Revoked Certificates") {
				t.Errorf("ARL is not an empty CA-only CRL:\n%s", text)
			}
			for _, f := range []string{fullPEM, deltaPEM, arlPEM} {
				if out := openssl(t, "crl", "-in", f, "-CAfile", caPEM, "-noout", "-verify"); !strings.Contains(out, "verify OK") {
					t.Errorf("openssl crl -verify %s: %s", f, out)
				}
			}
			leaf := func(i int) string {
				return writePEM(t, filepath.Join(dir, "leaf"+string(rune('0'+i))+".pem"), "CERTIFICATE", certs[i].Raw)
			}
			// Revoked in the full CRL: -crl_check alone sees it.
			out := opensslFails(t, "verify", "-CAfile", caPEM, "-CRLfile", fullPEM, "-crl_check", leaf(0))
			if !strings.Contains(out, "certificate revoked") {
				t.Errorf("verify of the revoked certificate: %s", out)
			}
			// Revoked after the full CRL: only the delta lists it.
			openssl(t, "verify", "-CAfile", caPEM, "-CRLfile", fullPEM, "-crl_check", leaf(1))
			out = opensslFails(t, "verify", "-CAfile", caPEM, "-CRLfile", both, "-crl_check", "-use_deltas", leaf(1))
			if !strings.Contains(out, "certificate revoked") {
				t.Errorf("verify with the delta: %s", out)
			}
			// A good certificate passes with full and delta.
			openssl(t, "verify", "-CAfile", caPEM, "-CRLfile", both, "-crl_check", "-use_deltas", leaf(2))

			rl := e.parse(delta)
			if len(rl.RevokedCertificateEntries) != 1 || rl.RevokedCertificateEntries[0].SerialNumber.Cmp(certs[1].SerialNumber) != 0 {
				t.Errorf("delta lists %d entries, want the one revoked after the base", len(rl.RevokedCertificateEntries))
			}
			base := e.parse(full)
			if rl.Number.Cmp(base.Number) <= 0 {
				t.Errorf("delta number %s not above base %s", rl.Number, base.Number)
			}
		})
	}
}
