package crl

import (
	"context"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/crlscope"
)

// nssTools returns the NSS command-line tools' paths. scripts/test.sh
// installs libnss3-tools, so a missing tool fails the test in CI; on a
// developer machine without it the test is skipped.
func nssTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"vfychain", "certutil", "crlutil"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: scripts/test.sh installs the Debian package libnss3-tools", tool)
			}
			t.Skipf("%s not found: install the Debian package libnss3-tools", tool)
		}
	}
}

// NSSDB is an NSS certificate database in a temp dir.
type nssDB struct {
	t   *testing.T
	dir string
}

// newNSSDB creates a database trusting caDER as a CA for every usage ("C,,"
// for TLS, and the same for e-mail, which is what the personal profiles are
// checked for).
func newNSSDB(t *testing.T, caDER []byte) *nssDB {
	t.Helper()
	db := &nssDB{t: t, dir: "sql:" + t.TempDir()}
	db.run("certutil", "-N", "-d", db.dir, "--empty-password")
	ca := filepath.Join(t.TempDir(), "ca.der")
	if err := os.WriteFile(ca, caDER, 0o600); err != nil {
		t.Fatal(err)
	}
	db.run("certutil", "-A", "-d", db.dir, "-n", "certcenter-ca", "-t", "C,C,C", "-i", ca)
	return db
}

func (db *nssDB) run(name string, args ...string) string {
	db.t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		db.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// importCRL imports a CRL the way an NSS-based application keeps one.
func (db *nssDB) importCRL(der []byte) {
	db.t.Helper()
	f := filepath.Join(db.t.TempDir(), "crl.der")
	if err := os.WriteFile(f, der, 0o600); err != nil {
		db.t.Fatal(err)
	}
	db.run("crlutil", "-I", "-d", db.dir, "-t", "1", "-i", f)
}

// vfychain verifies leaf for e-mail signing with libpkix (-pp), the
// revocation method and flags given, and returns its output and whether it
// called the certificate valid.
func (db *nssDB) vfychain(leaf *x509.Certificate, revocation ...string) (string, bool) {
	db.t.Helper()
	f := filepath.Join(db.t.TempDir(), "leaf.der")
	if err := os.WriteFile(f, leaf.Raw, 0o600); err != nil {
		db.t.Fatal(err)
	}
	args := append([]string{"-d", db.dir, "-pp", "-u", "4"}, revocation...)
	out, err := exec.Command("vfychain", append(args, f)...).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			db.t.Fatalf("vfychain: %v", err)
		}
	}
	return string(out), err == nil && strings.Contains(string(out), "Chain is good!")
}

// NSS (libpkix) refuses a CRL whose issuing distribution point is critical;
// with failIfNoInfo it then calls every certificate revoked. With one shard
// the complete CRL has no IDP, so vfychain learns revocations from it.
func TestNSSUsesTheFullCRL(t *testing.T) {
	nssTools(t)
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	certs := e.issue(2)
	e.revoke(certs[1], ca.ReasonKeyCompromise)
	if err := e.b.Full(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	db := newNSSDB(t, e.iss.Cert.Raw)
	db.importCRL(e.blob("demo.crl"))
	// failIfNoInfo: a certificate is good only if a CRL said so (without
	// a usable CRL NSS calls it revoked, which is what a critical IDP
	// did). forbidFetching is not set: with it, libpkix does not use the
	// imported CRL either; the CDP's URL has no listener, so nothing is
	// fetched.
	crlOnly := []string{"-g", "leaf", "-m", "crl", "-s", "failIfNoInfo"}
	if out, ok := db.vfychain(certs[0], crlOnly...); !ok {
		t.Errorf("good certificate by CRL: vfychain says\n%s", out)
	}
	out, ok := db.vfychain(certs[1], crlOnly...)
	if ok || !strings.Contains(out, "ERROR -8180") {
		t.Errorf("revoked certificate by CRL: vfychain says\n%s", out)
	}
}

// A complete CRL stored with an IDP (by an earlier version, or before the
// CA's URLs changed) is rebuilt by Repair, so NSS can use it after an
// upgrade without waiting for the next scheduled CRL.
func TestRepairReplacesAnOutdatedIDP(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	if err := e.b.Full(ctx, "demo"); err != nil {
		t.Fatal(err)
	}
	// Store a complete CRL with the IDP the earlier version wrote.
	old := e.parse(e.blob("demo.crl"))
	u := e.ca.URLs(e.iss)
	idp, err := encodeIDP([]string{u.CRL, u.LDAPCRL}, scopeUsers)
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now().UTC().Truncate(time.Second)
	p, err := e.b.sign(e.iss, &scope{crl: crlscope.Complete("demo"), file: "demo.crl", idp: idp},
		meta{Number: old.Number.Uint64(), ThisUpdate: now, NextUpdate: now.Add(time.Hour), DeltaSince: now, Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.b.commit(ctx, "demo", []*published{p}, marks{}); err != nil {
		t.Fatal(err)
	}
	e.restart()
	if err := e.b.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	rl := e.parse(e.blob("demo.crl"))
	if rl.Number.Cmp(old.Number) <= 0 {
		t.Fatalf("Repair kept the CRL with an IDP (number %s)", rl.Number)
	}
	for _, ext := range rl.Extensions {
		if ext.Id.Equal(oidIssuingDistPoint) {
			t.Fatal("the rebuilt complete CRL still has an IDP")
		}
	}
}
