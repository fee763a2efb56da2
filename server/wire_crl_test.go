package server

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/signer"
)

// freePort reserves a loopback port so that the public URL in certificates
// can name the address the server will listen on.
func freePort(t *testing.T) string { return freeAddrs(t, 1)[0] }

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago (benchproc.FreePorts keeps every listener open until all n are
// chosen: closed one by one, the kernel may hand one port out twice, and a
// CI run had a replica's HTTP port equal to another node's NATS port).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := benchproc.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func fetchCRL(t *testing.T, url string, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/pkix-crl" {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rl, err := x509.ParseRevocationList(body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if err := rl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return rl
}

// A revocation is in the delta CRL served at the certificate's own
// freshestCRL URL within 5 s, and CRL numbers keep rising over a restart.
func TestCRLOverHTTP(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.Addr = freePort(t)
	cfg.CA.PublicURL = "http://" + cfg.HTTP.Addr
	cfg.CRL.Shards = 2
	s := startTest(t, cfg)
	core := s.c.core
	iss, err := core.ca.Issuer(cfg.CA.Name)
	if err != nil {
		t.Fatal(err)
	}
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := core.ca.Issue(ctx, ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: "alice"}})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.DER)
	if err != nil {
		t.Fatal(err)
	}
	full := fetchCRL(t, leaf.CRLDistributionPoints[0], iss.Cert) // the shard's URL, as a relying party would
	fetchCRL(t, cfg.CA.PublicURL+"/crl/"+cfg.CA.Name+".crl", iss.Cert)
	deltaURL := cfg.CA.PublicURL + "/crl/" + crlscope.Layout{Shards: 2}.For(cfg.CA.Name, c.Serial).DeltaCRL().File()

	start := time.Now()
	if _, err := core.ca.Revoke(ctx, c.Serial, ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	for {
		d := fetchCRL(t, deltaURL, iss.Cert)
		if len(d.RevokedCertificateEntries) == 1 && d.RevokedCertificateEntries[0].SerialNumber.Cmp(leaf.SerialNumber) == 0 {
			if d.Number.Cmp(full.Number) <= 0 {
				t.Errorf("delta number %s not above the base %s", d.Number, full.Number)
			}
			t.Logf("revocation visible in %s after %s", deltaURL, time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("revocation not in the delta CRL after 5 s (it lists %d entries)", len(d.RevokedCertificateEntries))
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitReady(t, "http://"+s.Addr("http"))
	last := fetchCRL(t, deltaURL, iss.Cert).Number
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	s2 := startTest(t, cfg)
	_ = s2
	if n := fetchCRL(t, deltaURL, iss.Cert).Number; n.Cmp(last) < 0 {
		t.Errorf("after restart the delta is CRL %s, before it was %s", n, last)
	}
}
