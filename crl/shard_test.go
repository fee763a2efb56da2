package crl

import (
	"context"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/ca"
)

// With shards, each certificate's CRL distribution point names its shard's
// CRL, freshestCRL its shard's delta, and openssl accepts that CRL (its IDP
// matches) and no other shard's.
func TestShards(t *testing.T) {
	const shards = 3
	e := newEnv(t, envOpts{shards: shards})
	// The builder takes the shard count from the CA, not an option of its own.
	layout := e.ca.CRLLayout()
	if layout.N() != shards || e.b.shards != shards {
		t.Fatalf("CA layout %d shards, builder %d, want %d", layout.N(), e.b.shards, shards)
	}
	ctx := context.Background()
	// Issue until every shard has two certificates (serials are random).
	var certs []*x509.Certificate
	byShard := map[int][]*x509.Certificate{}
	for full := 0; full < shards && len(certs) < 200; {
		c := e.issue(1)[0]
		certs = append(certs, c)
		k := layout.ShardOf(c.SerialNumber.Bytes())
		byShard[k] = append(byShard[k], c)
		if len(byShard[k]) == 2 {
			full++
		}
		want := fmt.Sprintf("http://127.0.0.1:8080/crl/demo-%d.crl", k)
		if len(c.CRLDistributionPoints) != 2 || c.CRLDistributionPoints[0] != want || !strings.HasPrefix(c.CRLDistributionPoints[1], "ldap://") {
			t.Fatalf("CRL distribution points %v, want %s and the ldap URL", c.CRLDistributionPoints, want)
		}
	}
	// Revoke one certificate of every shard.
	var revoked []*x509.Certificate
	for k := range shards {
		e.revoke(byShard[k][0], ca.ReasonKeyCompromise)
		revoked = append(revoked, byShard[k][0])
	}
	if err := e.b.Full(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * deltaOverlap)
	dir := t.TempDir()
	caPEM := writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", e.iss.Cert.Raw)
	// With shards every CRL keeps its critical IDP: it is what tells the
	// shards apart, and the complete CRL from them.
	for _, f := range []string{"demo.crl", "demo-delta.crl", "demo-0.crl", "demo-0-delta.crl", "demo-arl.crl"} {
		p := writePEM(t, filepath.Join(dir, "idp.pem"), "X509 CRL", e.blob(f))
		if text := openssl(t, "crl", "-in", p, "-noout", "-text"); !strings.Contains(text, "X509v3 Issuing Distribution Point: critical") {
			t.Errorf("%s has no critical IDP:\n%s", f, text)
		}
	}
	total := 0
	for k := range shards {
		rl := e.parse(e.blob(fmt.Sprintf("demo-%d.crl", k)))
		total += len(rl.RevokedCertificateEntries)
		for _, ent := range rl.RevokedCertificateEntries {
			if got := layout.ShardOf(ent.SerialNumber.Bytes()); got != k {
				t.Errorf("shard %d lists a serial of shard %d", k, got)
			}
		}
	}
	if total != len(revoked) || len(e.parse(e.blob("demo.crl")).RevokedCertificateEntries) != len(revoked) {
		t.Errorf("shards list %d entries, want %d, and the complete CRL all of them", total, len(revoked))
	}
	// A revocation after the base shows in its shard's delta, which openssl uses.
	for k := range shards {
		late := byShard[k][1]
		e.revoke(late, ca.ReasonSuperseded)
		if err := e.b.Delta(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
		full, delta := e.blob(fmt.Sprintf("demo-%d.crl", k)), e.blob(fmt.Sprintf("demo-%d-delta.crl", k))
		both := writePEM(t, filepath.Join(dir, "both.pem"), "X509 CRL", full, delta)
		leaf := writePEM(t, filepath.Join(dir, "leaf.pem"), "CERTIFICATE", late.Raw)
		out := opensslFails(t, "verify", "-CAfile", caPEM, "-CRLfile", both, "-crl_check", "-use_deltas", leaf)
		if !strings.Contains(out, "certificate revoked") {
			t.Errorf("shard %d delta: %s", k, out)
		}
		// Another shard's CRL does not cover this certificate.
		other := writePEM(t, filepath.Join(dir, "other.pem"), "X509 CRL", e.blob(fmt.Sprintf("demo-%d.crl", (k+1)%shards)))
		out = opensslFails(t, "verify", "-CAfile", caPEM, "-CRLfile", other, "-crl_check", leaf)
		if !strings.Contains(out, "different CRL scope") {
			t.Errorf("shard %d certificate checked against shard %d: %s", k, (k+1)%shards, out)
		}
		text := openssl(t, "x509", "-in", leaf, "-noout", "-text")
		if !strings.Contains(text, "X509v3 Freshest CRL") || !strings.Contains(text, fmt.Sprintf("/crl/demo-%d-delta.crl", k)) {
			t.Errorf("certificate lacks its shard's freshest CRL:\n%s", text)
		}
	}
}
