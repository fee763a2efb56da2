package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestKeyWalkthrough is the README's encryption certificate walk-through
// with the CLI only: a signing certificate on an RSA key, an encryption
// certificate whose key the CA escrows, a message encrypted to it with
// openssl, the key recovered as PKCS#12 and the message decrypted.
func TestKeyWalkthrough(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"))
	creds, work := t.TempDir(), t.TempDir()
	step := func(want string, args ...string) string {
		t.Helper()
		out, err := s.client(t, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("certcenter %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	sh := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("openssl", args...)
		cmd.Dir = work
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	step("added", "org", "add", "hospital", "--name", "City Hospital")
	step("credential", "staff", "add", "olga", "--name", "Olga Officer", "--role", "ra_officer", "--out", creds)
	step("credential", "org", "add-admin", "hospital", "--id", "alice", "--name", "Alice Admin", "--out", creds)
	alice := []string{"--cert", filepath.Join(creds, "alice.crt"), "--key", filepath.Join(creds, "alice.key")}
	olga := []string{"--cert", filepath.Join(creds, "olga.crt"), "--key", filepath.Join(creds, "olga.key")}
	requestID := func(out string) string {
		t.Helper()
		m := regexp.MustCompile(`request (req-\d+)`).FindStringSubmatch(out)
		if m == nil {
			m = regexp.MustCompile(`(?m)^(req-\d+)\s`).FindStringSubmatch(out)
		}
		if m == nil {
			t.Fatalf("no request in:\n%s", out)
		}
		return m[1]
	}
	serialOf := func(out string) string {
		t.Helper()
		m := regexp.MustCompile(`certificate ([0-9a-f]{16,})`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no certificate in:\n%s", out)
		}
		return m[1]
	}

	// Zhang San's signing certificate, on an RSA key.
	sh("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "sign.key", "-subj", "/CN=Zhang San", "-out", "sign.csr")
	csr, _ := os.ReadFile(filepath.Join(work, "sign.csr"))
	app, _ := json.Marshal(map[string]any{"org": "hospital", "items": []map[string]string{{"name": "Zhang San", "csr": string(csr)}}})
	os.WriteFile(filepath.Join(work, "app.json"), app, 0o600)
	req := requestID(step("received", append([]string{"ra", "apply", filepath.Join(work, "app.json")}, alice...)...))
	signing := serialOf(step("issued", append([]string{"ra", "approve", req}, olga...)...))
	step("", append([]string{"ra", "download", req, "-o", filepath.Join(work, "sign.crt")}, olga...)...)

	// The encryption certificate.
	req = requestID(step("ca_review", append([]string{"ra", "key", "request", "--org", "hospital", "--signing-serial", signing}, alice...)...))
	enc := serialOf(step("issued", append([]string{"ra", "approve", req}, olga...)...))
	step("", append([]string{"ra", "download", req, "-o", filepath.Join(work, "enc.crt")}, olga...)...)
	if out := sh("x509", "-in", "enc.crt", "-noout", "-subject", "-ext", "keyUsage"); !strings.Contains(out, "Zhang San") || !strings.Contains(out, "Key Encipherment") || strings.Contains(out, "Digital Signature") {
		t.Fatalf("encryption certificate:\n%s", out)
	}
	os.WriteFile(filepath.Join(work, "msg.txt"), []byte("lab results 9\n"), 0o600)
	sh("cms", "-encrypt", "-aes256", "-in", "msg.txt", "-outform", "DER", "-out", "msg.p7m", "enc.crt")

	// Delivered enveloped to the signing certificate.
	link := strings.Fields(step("key-downloads", append([]string{"ra", "key", "link", req}, alice...)...))[0]
	step("wrote", "ra", "key", "download", link, "--out", filepath.Join(work, "key.p7m"))
	if out, err := s.client(t, "ra", "key", "download", link, "--out", filepath.Join(work, "again.p7m")); err == nil || !strings.Contains(out, "404") {
		t.Errorf("second download: %v\n%s", err, out)
	}
	sh("cms", "-decrypt", "-inform", "DER", "-in", "key.p7m", "-recip", "sign.crt", "-inkey", "sign.key", "-out", "enc.der")
	sh("pkey", "-inform", "DER", "-in", "enc.der", "-out", "enc.key")
	if out := sh("cms", "-decrypt", "-inform", "DER", "-in", "msg.p7m", "-recip", "enc.crt", "-inkey", "enc.key"); !strings.Contains(out, "lab results 9") {
		t.Fatalf("decrypted %q", out)
	}

	// Recovered as PKCS#12 after the USBKey is lost.
	req = requestID(step("ca_review", append([]string{"ra", "key", "recover", "--org", "hospital", "--serial", enc, "--reason", "USBKey lost", "--delivery", "pkcs12"}, alice...)...))
	if out, err := s.client(t, append([]string{"ra", "key", "link", req}, alice...)...); err == nil || !strings.Contains(out, "not released") {
		t.Errorf("link before approval: %v\n%s", err, out)
	}
	step("recovered", append([]string{"ra", "approve", req}, olga...)...)
	link = strings.Fields(step("pkcs12", append([]string{"ra", "key", "link", req}, alice...)...))[0]
	out := step("password (shown once)", "ra", "key", "download", link, "--out", filepath.Join(work, "rec.p12"))
	pass := strings.TrimSpace(out[strings.Index(out, "once): ")+len("once): "):])
	sh("pkcs12", "-in", "rec.p12", "-passin", "pass:"+pass, "-nodes", "-out", "rec.pem")
	if out := sh("cms", "-decrypt", "-inform", "DER", "-in", "msg.p7m", "-recip", "rec.pem", "-inkey", "rec.pem"); !strings.Contains(out, "lab results 9") {
		t.Fatalf("decrypted with the recovered key %q", out)
	}
}
