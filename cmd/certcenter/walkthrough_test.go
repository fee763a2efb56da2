package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWalkthrough is the README's walk-through, run as an operator would:
// from an empty server to a delivered certificate that openssl verifies,
// with no curl.
func TestWalkthrough(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"))
	creds := t.TempDir()
	step := func(want string, args ...string) string {
		t.Helper()
		out, err := s.client(t, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("certcenter %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	step("organisation hospital (City Hospital) added", "org", "add", "hospital", "--name", "City Hospital")
	step("hospital", "org", "list")
	step("credential", "staff", "add", "olga", "--name", "Olga Officer", "--role", "ra_officer", "--out", creds)
	step("credential", "org", "add-admin", "hospital", "--id", "alice", "--name", "Alice Admin", "--email", "alice@hospital.test", "--out", creds)
	if st, err := os.Stat(filepath.Join(creds, "alice.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("alice.key: %v", err)
	}
	t.Run("fail/unknown role changes nothing", func(t *testing.T) {
		out, err := s.client(t, "staff", "add", "eve", "--name", "Eve", "--role", "root", "--out", creds)
		if err == nil || !strings.Contains(out, "role") {
			t.Errorf("staff add --role root: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(creds, "eve.key")); err == nil {
			t.Error("a refused enrolment left a key file")
		}
	})

	// The subscriber makes a key and a request; their organisation's
	// certificate administrator signs and submits the application.
	work := t.TempDir()
	csrPath := filepath.Join(work, "zhang.csr")
	if out, err := exec.Command("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(work, "zhang.key"), "-subj", "/CN=Zhang San", "-out", csrPath).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	csr, _ := os.ReadFile(csrPath)
	app, _ := json.Marshal(map[string]any{"org": "hospital", "kind": "issue", "items": []map[string]string{
		{"name": "Zhang San", "email": "zhang@hospital.test", "csr": string(csr)}}})
	appPath := filepath.Join(work, "application.json")
	os.WriteFile(appPath, app, 0o600)
	alice := []string{"--cert", filepath.Join(creds, "alice.crt"), "--key", filepath.Join(creds, "alice.key")}
	out := step("received", append([]string{"ra", "apply", appPath}, alice...)...)
	m := regexp.MustCompile(`(?m)^(\S+)\s+issue\s+hospital`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no request in:\n%s", out)
	}
	req := m[1]

	olga := []string{"--cert", filepath.Join(creds, "olga.crt"), "--key", filepath.Join(creds, "olga.key")}
	step("request "+req, append([]string{"ra", "approve", req, "--comment", "documents checked"}, olga...)...)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(step(req, append([]string{"ra", "show", req}, olga...)...), "issued") {
		if time.Now().After(deadline) {
			t.Fatalf("request %s not issued", req)
		}
		time.Sleep(100 * time.Millisecond)
	}
	certPath := filepath.Join(work, "zhang.pem")
	step("", append([]string{"ra", "download", req, "-o", certPath}, olga...)...)
	if out, err := exec.Command("openssl", "verify", "-CAfile", filepath.Join(creds, "ca.crt"), certPath).CombinedOutput(); err != nil || !strings.Contains(string(out), ": OK") {
		t.Fatalf("openssl verify: %v\n%s", err, out)
	}
	if out, err := exec.Command("openssl", "x509", "-in", certPath, "-noout", "-subject").CombinedOutput(); err != nil || !strings.Contains(string(out), "Zhang San") {
		t.Errorf("delivered certificate: %v\n%s", err, out)
	}

	// The hospital's information system gets a directory account (Art. 14).
	out = step("password (shown once): ", "ldap-account", "add", "his", "--dn", "cn=his,ou=systems,o=certcenter,c=CN", "--org", "hospital", "--valid-days", "90")
	if out, err := s.client(t, "ldap-account", "add", "his2", "--dn", "cn=his2", "--org", "nowhere"); err == nil || !strings.Contains(out, "no organisation nowhere") {
		t.Errorf("ldap-account add for an unknown organisation: %v\n%s", err, out)
	}
	// a system with a certificate of its own binds with it (SASL EXTERNAL)
	step("binds with SASL EXTERNAL and the client certificate", "ldap-account", "add", "his-tls", "--dn", "cn=his-tls,ou=systems,o=certcenter,c=CN",
		"--org", "hospital", "--client-cert", filepath.Join(creds, "alice.crt"))
	step("directory account his-tls binds with the client certificate", "ldap-account", "set-cert", "his-tls", "--client-cert", filepath.Join(creds, "olga.crt"))
	if out := step("his-tls", "ldap-account", "list"); !regexp.MustCompile(`(?m)^his-tls\s+active.*\sclient_cert\s`).MatchString(out) {
		t.Errorf("ldap-account list:\n%s", out)
	}
	step("his  ", "ldap-account", "list")
	step("directory account his revoked", "ldap-account", "revoke", "his")
	if out := step("his", "ldap-account", "list"); !regexp.MustCompile(`(?m)^his\s+revoked`).MatchString(out) {
		t.Errorf("ldap-account list after revoke:\n%s", out)
	}

	t.Run("fail/revoking the last administrator credential", func(t *testing.T) {
		out := step("bootstrap-admin", "cert", "list", "--cn", "bootstrap-admin")
		m := regexp.MustCompile(`(?m)^([0-9a-f]{40})\s+valid\s+cert-admin`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no bootstrap credential in:\n%s", out)
		}
		out, err := s.client(t, "cert", "revoke", m[1])
		if err == nil || !strings.Contains(out, "last active administrator") {
			t.Errorf("cert revoke of the last admin credential: %v\n%s", err, out)
		}
	})
	t.Run("fail/admin recover while serving", func(t *testing.T) {
		out, err := run(t, "admin", "recover", "--data", s.data)
		if err == nil || !strings.Contains(out, "stop the running server") {
			t.Errorf("admin recover while serving: %v\n%s", err, out)
		}
	})
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	out, err := run(t, "admin", "recover", "--data", s.data)
	if err != nil || !regexp.MustCompile(`new administrator credential [0-9a-f]{40}`).MatchString(out) {
		t.Fatalf("admin recover: %v\n%s", err, out)
	}
	out, err = run(t, "audit", "verify", "--data", s.data)
	if err != nil || !strings.Contains(out, "audit log intact") {
		t.Errorf("audit verify after recover: %v\n%s", err, out)
	}
}
