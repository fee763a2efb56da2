package server

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/signer"
)

// needTool fails in CI (scripts/test.sh installs the package) and skips
// elsewhere when a client program is missing.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found: scripts/test.sh installs the Debian package %s", tool, pkg)
		}
		t.Skipf("%s not found: install the Debian package %s", tool, pkg)
	}
}

func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), err
}

func writeDER(t *testing.T, dir, name string, der []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, der, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func crlLists(rl *x509.RevocationList, serial *big.Int) bool {
	for _, e := range rl.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// ldapCRL reads the CA entry's certificateRevocationList;binary with
// ldapsearch, at the ldap URL the certificate's CRL distribution point names.
func ldapCRL(t *testing.T, ldapURL string, issuer *x509.Certificate) *x509.RevocationList {
	t.Helper()
	// ldap://host:port/<dn>?certificateRevocationList;binary
	rest, _ := strings.CutPrefix(ldapURL, "ldap://")
	host, path, _ := strings.Cut(rest, "/")
	dn, attr, _ := strings.Cut(path, "?")
	dn = strings.ReplaceAll(dn, "%20", " ")
	out, err := runTool(t, "ldapsearch", "-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=10",
		"-H", "ldap://"+host, "-b", dn, "-s", "base", "(objectClass=*)", attr)
	if err != nil {
		t.Fatalf("ldapsearch %s: %v\n%s", ldapURL, err, out)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if v, ok := strings.CutPrefix(line, attr+":: "); ok {
			der, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			rl, err := x509.ParseRevocationList(der)
			if err != nil {
				t.Fatal(err)
			}
			if err := rl.CheckSignatureFrom(issuer); err != nil {
				t.Fatal(err)
			}
			return rl
		}
	}
	t.Fatalf("ldapsearch %s: no %s in\n%s", ldapURL, attr, out)
	return nil
}

// A revocation reaches the full CRL served over HTTP and the directory's
// certificateRevocationList;binary within seconds (clients that ignore
// deltas see it), and NSS's libpkix (vfychain -pp) gets the right answer
// for a good and a revoked certificate both from the CRL it fetches at the
// certificate's CRL distribution point and from OCSP at its AIA URL.
func TestFullCRLAfterRevocationWithNSS(t *testing.T) {
	needTool(t, "ldapsearch", "ldap-utils")
	needTool(t, "vfychain", "libnss3-tools")
	cfg := testConfig(t)
	addrs := freeAddrs(t, 2)
	cfg.HTTP.Addr = addrs[0]
	cfg.CA.PublicURL = "http://" + cfg.HTTP.Addr
	cfg.LDAP.Addr = addrs[1]
	cfg.CA.LDAPURL = "ldap://" + cfg.LDAP.Addr
	s := startTest(t, cfg)
	core := s.c.core
	iss, err := core.ca.Issuer(cfg.CA.Name)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var certs []*x509.Certificate
	for _, cn := range []string{"good", "revoked"} {
		key, err := signer.GenerateKey(signer.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		c, err := core.ca.Issue(ctx, ca.IssueRequest{Profile: ca.ProfilePersonalSigning, PublicKey: key.Public(),
			Subject: &pkix.Name{CommonName: cn}})
		if err != nil {
			t.Fatal(err)
		}
		x, err := x509.ParseCertificate(c.DER)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, x)
	}
	good, revoked := certs[0], certs[1]
	httpURL, ldapURL := revoked.CRLDistributionPoints[0], revoked.CRLDistributionPoints[1]

	start := time.Now()
	if _, err := core.ca.Revoke(ctx, revoked.SerialNumber.Bytes(), ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	var httpAfter, ldapAfter time.Duration
	for httpAfter == 0 || ldapAfter == 0 {
		if httpAfter == 0 && crlLists(fetchCRL(t, httpURL, iss.Cert), revoked.SerialNumber) {
			httpAfter = time.Since(start)
		}
		if ldapAfter == 0 && crlLists(ldapCRL(t, ldapURL, iss.Cert), revoked.SerialNumber) {
			ldapAfter = time.Since(start)
		}
		if time.Since(start) > 30*time.Second { // generous: the target is 5 s
			t.Fatalf("after 30 s the full CRL lists the revocation over http: %v, ldap: %v", httpAfter != 0, ldapAfter != 0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("revocation in the full CRL over HTTP after %s, over LDAP after %s (crl.delta_delay %s)",
		httpAfter.Round(time.Millisecond), ldapAfter.Round(time.Millisecond), cfg.CRL.DeltaDelay.D())

	// NSS: a database trusting the CA, nothing else; the CRL and the OCSP
	// response are fetched from the URLs in the certificates.
	dir := t.TempDir()
	db := "sql:" + dir
	if out, err := runTool(t, "certutil", "-N", "-d", db, "--empty-password"); err != nil {
		t.Fatalf("certutil -N: %s", out)
	}
	if out, err := runTool(t, "certutil", "-A", "-d", db, "-n", "ca", "-t", "C,C,C", "-i", writeDER(t, dir, "ca.der", iss.Cert.Raw)); err != nil {
		t.Fatalf("certutil -A: %s", out)
	}
	for _, method := range []string{"crl", "ocsp"} {
		// failIfNoInfo: good only if the CRL or the OCSP response said so.
		flags := []string{"-d", db, "-pp", "-u", "4", "-g", "leaf", "-m", method, "-s", "failIfNoInfo"}
		out, err := runTool(t, "vfychain", append(flags, writeDER(t, dir, "good.der", good.Raw))...)
		if err != nil || !strings.Contains(out, "Chain is good!") {
			t.Errorf("vfychain by %s, good certificate: %v\n%s", method, err, out)
		}
		out, err = runTool(t, "vfychain", append(flags, writeDER(t, dir, "revoked.der", revoked.Raw))...)
		if err == nil || !strings.Contains(out, "ERROR -8180") {
			t.Errorf("vfychain by %s, revoked certificate: %v\n%s", method, err, out)
		}
	}
}
