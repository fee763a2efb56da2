package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/internal/benchproc"
)

// bin is the certcenter binary built once for these end-to-end tests: they
// run it the way an operator does.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "certcenter-bin-")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "certcenter")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building certcenter: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddrs returns n distinct loopback addresses that were free a moment
// ago (benchproc.FreePorts keeps every listener open until all n are
// chosen: closed one by one, the kernel may hand one port out twice, and
// serve then fails to bind its second listener).
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := benchproc.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

type served struct {
	data, http, api string
	cmd             *exec.Cmd
	log             *bytes.Buffer
}

// serve starts `certcenter serve` on a new data directory and waits for /healthz.
func serve(t *testing.T, data string) *served {
	t.Helper()
	addrs := freeAddrs(t, 2)
	s := &served{data: data, http: addrs[0], api: addrs[1], log: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "serve", "--data", data, "--http-addr", s.http, "--api-addr", s.api,
		"--ldap-addr", "", "--ldaps-addr", "")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	start := time.Now()
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	for time.Since(start) < 20*time.Second {
		resp, err := http.Get("http://" + s.http + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Logf("serve answered /healthz %s after start", time.Since(start).Round(time.Millisecond))
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("serve did not come up:\n%s", s.log)
	return nil
}

func (s *served) client(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, append(args, "--data", s.data, "--server", "https://"+s.api)...)
}

func TestServeRevokeAndShutdown(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"))
	out, err := s.client(t, "cert", "list")
	if err != nil {
		t.Fatalf("cert list: %v\n%s", err, out)
	}
	serial := regexp.MustCompile(`(?m)^([0-9a-f]{40})\s+valid\s+cert-admin`).FindStringSubmatch(out)
	if serial == nil {
		t.Fatalf("no admin certificate in:\n%s", out)
	}
	other := regexp.MustCompile(`(?m)^([0-9a-f]{40})\s+valid\s+server-tls`).FindStringSubmatch(out)
	out, err = s.client(t, "cert", "revoke", other[1], "--reason", "keyCompromise")
	if err != nil || !strings.Contains(out, "keyCompromise") {
		t.Fatalf("cert revoke: %v\n%s", err, out)
	}
	out, err = s.client(t, "cert", "show", other[1])
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("cert show: %v\n%s", err, out)
	}
	t.Run("ok/serial as other tools print it", func(t *testing.T) {
		// Without leading zeros (an odd digit count when the serial starts
		// with 0x0?), upper case with 0x, and openssl's colon groups.
		var colons []string
		for i := 0; i < len(other[1]); i += 2 {
			colons = append(colons, other[1][i:i+2])
		}
		for _, form := range []string{strings.TrimLeft(other[1], "0"), "0x" + strings.ToUpper(other[1]), strings.Join(colons, ":")} {
			out, err := s.client(t, "cert", "show", form)
			if err != nil || !strings.Contains(out, other[1]) {
				t.Errorf("cert show %s: %v\n%s", form, err, out)
			}
		}
		out, err := s.client(t, "cert", "revoke", "10135g", "--reason", "keyCompromise")
		if err == nil || !strings.Contains(out, "not hex") {
			t.Errorf("cert revoke 10135g: %v\n%s", err, out)
		}
	})
	out, err = s.client(t, "cert", "revoke", other[1], "--reason", "keyCompromise")
	if err == nil || !strings.Contains(out, "already revoked") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("second revoke: %v, output %q (want one line)", err, out)
	}

	t.Run("ok/ra list", func(t *testing.T) {
		out, err := s.client(t, "ra", "list")
		if err != nil {
			t.Errorf("ra list: %v\n%s", err, out)
		}
	})
	t.Run("ok/audit verify through the API while serving", func(t *testing.T) {
		out, err := run(t, "audit", "verify", "--data", s.data, "--server", "https://"+s.api)
		if err != nil || !strings.Contains(out, "audit log intact") {
			t.Errorf("audit verify: %v\n%s", err, out)
		}
	})
	t.Run("fail/second serve on the same data directory", func(t *testing.T) {
		addrs := freeAddrs(t, 2)
		out, err := run(t, "serve", "--data", s.data, "--http-addr", addrs[0], "--api-addr", addrs[1], "--ldap-addr", "", "--ldaps-addr", "")
		if err == nil || !strings.Contains(out, "in use") {
			t.Errorf("second serve: %v\n%s", err, out)
		}
	})
	t.Run("fail/seed while serving", func(t *testing.T) {
		out, err := run(t, "seed", "--data", s.data, "--count", "1")
		if err == nil || !strings.Contains(out, "in use by another certcenter process") {
			t.Errorf("seed while serving: %v\n%s", err, out)
		}
	})

	// SIGTERM drains and exits 0.
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve exited with %v after SIGTERM:\n%s", err, s.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop after SIGTERM")
	}

	// The revocation is in the hash-chained audit log, readable offline.
	out, err = run(t, "audit", "verify", "--data", s.data)
	if err != nil || !regexp.MustCompile(`audit log intact: [1-9]\d* entries`).MatchString(out) {
		t.Errorf("audit verify: %v\n%s", err, out)
	}
}

func TestBadConfigChangesNothing(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, yaml, want string }{
		{"fail/unknown key", "http:\n  adr: :1\n", `unknown key "http.adr"`},
		{"fail/bad address", "http:\n  addr: not-an-address\n", "http.addr"},
		{"fail/bad algorithm", "ca:\n  key_algorithm: ed448\n", "ca.key_algorithm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c.yaml")
			os.WriteFile(cfg, []byte(tt.yaml), 0o600)
			data := filepath.Join(dir, "data-"+strings.ReplaceAll(tt.name, "/", "-"))
			out, err := run(t, "serve", "--config", cfg, "--data", data)
			if err == nil {
				t.Fatal("serve accepted a bad config")
			}
			if !strings.Contains(out, tt.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("output %q: want one line naming %q", out, tt.want)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Error("a bad config created the data directory")
			}
		})
	}
	t.Run("fail/bad flag address", func(t *testing.T) {
		out, err := run(t, "serve", "--data", filepath.Join(dir, "x"), "--http-addr", "nope")
		if err == nil || !strings.Contains(out, "http.addr") {
			t.Errorf("%v %q", err, out)
		}
	})
}

func TestSeedBackupRestore(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	out, err := run(t, "seed", "--data", data, "--count", "300", "--revoked-fraction", "0.1")
	if err != nil || !strings.Contains(out, "seeded 300 subscribers (seed-0000000 .. seed-0000299)") {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	out, err = run(t, "seed", "--data", data, "--count", "5")
	if err != nil || !strings.Contains(out, "(seed-0000300 .. seed-0000304)") {
		t.Fatalf("second seed: %v\n%s", err, out)
	}
	backup := filepath.Join(t.TempDir(), "b.tar.gz")
	if out, err := run(t, "backup", "--data", data, "--out", backup); err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	restored := filepath.Join(t.TempDir(), "restored")
	out, err = run(t, "restore", "--data", restored, "--in", backup)
	if err != nil || !strings.Contains(out, "308 certificates") || !strings.Contains(out, "305 subscribers") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	out, err = run(t, "restore", "--data", restored, "--in", backup)
	if err == nil || !strings.Contains(out, "already holds a store") {
		t.Errorf("restore over a store: %v\n%s", err, out)
	}
	s := serve(t, restored)
	out, err = s.client(t, "cert", "list", "--cn", "seed-0000042")
	if err != nil || !strings.Contains(out, "CN=seed-0000042") {
		t.Errorf("restored server lookup: %v\n%s", err, out)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "certcenter ") {
		t.Errorf("version: %v %q", err, out)
	}
}

// TestPKCS11InitAndServe puts the CA and OCSP keys in a real SoftHSM2 token
// and serves from it: the data directory holds no key of theirs.
func TestPKCS11InitAndServe(t *testing.T) {
	if os.Getenv("CERTCENTER_SKIP_SOFTHSM") == "1" {
		t.Skip("CERTCENTER_SKIP_SOFTHSM=1")
	}
	module := "/usr/lib/softhsm/libsofthsm2.so"
	if _, err := os.Stat(module); err != nil {
		t.Fatalf("SoftHSM2 is not installed (%v): apt-get install softhsm2", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	os.Mkdir(filepath.Join(dir, "tokens"), 0o700)
	os.WriteFile(conf, []byte("directories.tokendir = "+filepath.Join(dir, "tokens")+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "cc-e2e", "--pin", "1234", "--so-pin", "5678").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	t.Setenv("CC_TEST_PIN", "1234")
	data := filepath.Join(dir, "data")
	out, err := run(t, "init", "--data", data, "--signer", "pkcs11", "--pkcs11-module", module, "--pkcs11-token", "cc-e2e", "--pkcs11-pin-env", "CC_TEST_PIN")
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	if keys, _ := filepath.Glob(filepath.Join(data, "keys", "*")); len(keys) != 0 {
		t.Errorf("the data directory holds CA/OCSP key files: %v", keys)
	}
	// init recorded the signer (not the PIN): seed without a config finds
	// the keys in the token; a config naming another token is refused.
	if b, err := os.ReadFile(filepath.Join(data, "signer.yaml")); err != nil || strings.Contains(string(b), "1234") || !strings.Contains(string(b), "cc-e2e") {
		t.Errorf("signer.yaml: %v\n%s", err, b)
	}
	if out, err := run(t, "seed", "--data", data, "--count", "1"); err != nil {
		t.Errorf("seed without a config after init --signer pkcs11: %v\n%s", err, out)
	}
	other := filepath.Join(dir, "other.yaml")
	os.WriteFile(other, []byte("signer:\n  provider: pkcs11\n  pkcs11:\n    module: "+module+"\n    token_label: not-it\n    pin_env: CC_TEST_PIN\n"), 0o600)
	if out, err := run(t, "seed", "--config", other, "--data", data, "--count", "1"); err == nil || !strings.Contains(out, "not-it") || !strings.Contains(out, "cc-e2e") {
		t.Errorf("seed with a contradicting config: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "certcenter.yaml")
	// Two module instances: seeding pre-signs every OCSP response in
	// batches spread over both (signer/pkcs11 SignBatch).
	os.WriteFile(cfg, []byte("signer:\n  provider: pkcs11\n  pkcs11:\n    module: "+module+"\n    token_label: cc-e2e\n    pin_env: CC_TEST_PIN\n    module_instances: 2\n"), 0o600)

	t.Run("fail/wrong PIN", func(t *testing.T) {
		t.Setenv("CC_TEST_PIN", "9999")
		out, err := run(t, "seed", "--config", cfg, "--data", data, "--count", "1")
		if err == nil || !strings.Contains(out, "cc-e2e") {
			t.Errorf("wrong PIN: %v\n%s", err, out)
		}
	})
	out, err = run(t, "seed", "--config", cfg, "--data", data, "--count", "20", "--revoked-fraction", "0.5")
	if err != nil {
		t.Fatalf("seed through the HSM: %v\n%s", err, out)
	}
	addrs := freeAddrs(t, 2)
	s := &served{data: data, http: addrs[0], api: addrs[1], log: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "serve", "--config", cfg, "--data", data, "--http-addr", s.http, "--api-addr", s.api, "--ldap-addr", "", "--ldaps-addr", "")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + s.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve with pkcs11 not ready:\n%s", s.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A seeded subscriber's certificate: the first valid one by serial may be
	// the bootstrap administrator's, which the last-admin rule keeps.
	out, err = s.client(t, "cert", "list", "--status", "valid", "--limit", "1000")
	m := regexp.MustCompile(`(?m)^([0-9a-f]{40})\s+valid\b.*seed-`).FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("no valid seeded certificate: %v\n%s", err, out)
	}
	leaf, issuer := fetchCertAndIssuer(t, s, m[1])
	if st := ocspStatus(t, s, leaf, issuer); st != ocsp.Good {
		t.Fatalf("pre-signed OCSP status %d, want good", st)
	}
	out, err = s.client(t, "cert", "revoke", m[1], "--reason", "superseded")
	if err != nil {
		t.Fatalf("revoke signed through the HSM: %v\n%s", err, out)
	}
	deadline = time.Now().Add(10 * time.Second)
	for ocspStatus(t, s, leaf, issuer) != ocsp.Revoked {
		if time.Now().After(deadline) {
			t.Fatal("OCSP does not report the revocation")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fetchCertAndIssuer gets a certificate through the admin API and its
// issuer from the public /ca/ path its AIA names.
func fetchCertAndIssuer(t *testing.T, s *served, serial string) (*x509.Certificate, *x509.Certificate) {
	t.Helper()
	out, err := s.client(t, "cert", "show", serial, "--pem")
	if err != nil {
		t.Fatalf("cert show: %v\n%s", err, out)
	}
	blk, _ := pem.Decode([]byte(out))
	if blk == nil {
		t.Fatalf("cert show --pem printed no PEM:\n%s", out)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || len(leaf.IssuingCertificateURL) == 0 {
		t.Fatalf("leaf: %v, AIA %v", err, leaf.IssuingCertificateURL)
	}
	u, err := url.Parse(leaf.IssuingCertificateURL[0])
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.http + u.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	der, _ := io.ReadAll(resp.Body)
	issuer, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("issuer from %s: %v", u.Path, err)
	}
	return leaf, issuer
}

// ocspStatus asks the responder about leaf and verifies the answer: the
// response must be signed by the HSM's OCSP key, delegated by issuer.
func ocspStatus(t *testing.T, s *served, leaf, issuer *x509.Certificate) int {
	t.Helper()
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+s.http+"/ocsp", "application/ocsp-request", bytes.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(body, leaf, issuer)
	if err != nil {
		t.Fatalf("OCSP response: %v", err)
	}
	return r.Status
}
