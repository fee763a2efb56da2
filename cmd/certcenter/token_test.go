package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTokenUnlockCommand runs the USBKey walk-through of the README with the
// binary against a served server, a SoftHSM2 token playing the USBKey:
// personalise (the derived SO PIN set on the token), request the unlock,
// approve it, `certcenter token unlock --module --token-serial` resets the
// user PIN once, and the token logs in with the new PIN.
func TestTokenUnlockCommand(t *testing.T) {
	if os.Getenv("CERTCENTER_SKIP_SOFTHSM") == "1" {
		t.Skip("CERTCENTER_SKIP_SOFTHSM=1")
	}
	mod := "/usr/lib/softhsm/libsofthsm2.so"
	if env := os.Getenv("CERTCENTER_SOFTHSM_MODULE"); env != "" {
		mod = env
	}
	if _, err := os.Stat(mod); err != nil {
		t.Fatalf("SoftHSM2 is not installed (apt-get install softhsm2): %v", err)
	}
	work := t.TempDir()
	tokens := filepath.Join(work, "tokens")
	os.Mkdir(tokens, 0o700)
	conf := filepath.Join(work, "softhsm2.conf")
	os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600)
	t.Setenv("SOFTHSM2_CONF", conf)
	if out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", "usbkey", "--pin", "111111", "--so-pin", "transport").CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util: %v\n%s", err, out)
	}
	out, err := exec.Command("softhsm2-util", "--show-slots").CombinedOutput()
	m := regexp.MustCompile(`Serial number:\s+([0-9a-f]{16})`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("softhsm2-util --show-slots: %v\n%s", err, out)
	}
	serial := string(m[1])

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
	step("organisation hospital", "org", "add", "hospital", "--name", "City Hospital")
	step("credential", "staff", "add", "olga", "--name", "Olga Officer", "--role", "ra_officer", "--out", creds)
	step("credential", "org", "add-admin", "hospital", "--id", "alice", "--name", "Alice Admin", "--out", creds)
	olga := []string{"--cert", filepath.Join(creds, "olga.crt"), "--key", filepath.Join(creds, "olga.key")}
	alice := []string{"--cert", filepath.Join(creds, "alice.crt"), "--key", filepath.Join(creds, "alice.key")}

	csrPath := filepath.Join(work, "zhang.csr")
	if out, err := exec.Command("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(work, "zhang.key"), "-subj", "/CN=Zhang San", "-out", csrPath).CombinedOutput(); err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	csr, _ := os.ReadFile(csrPath)
	app, _ := json.Marshal(map[string]any{"org": "hospital", "kind": "issue", "items": []map[string]string{{"name": "Zhang San", "csr": string(csr)}}})
	appPath := filepath.Join(work, "application.json")
	os.WriteFile(appPath, app, 0o600)
	out2 := step("received", append([]string{"ra", "apply", appPath}, alice...)...)
	req := regexp.MustCompile(`(?m)^(\S+)\s+issue\s+hospital`).FindStringSubmatch(out2)
	if req == nil {
		t.Fatalf("no request in:\n%s", out2)
	}
	step("request "+req[1], append([]string{"ra", "approve", req[1]}, olga...)...)
	var cert []string
	for deadline := time.Now().Add(15 * time.Second); cert == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		cert = regexp.MustCompile(`(?m)^([0-9a-f]{40})\s+valid\s+personal-signing`).FindStringSubmatch(step("", "cert", "list", "--cn", "Zhang San"))
	}
	if cert == nil {
		t.Fatal("the certificate was not issued")
	}

	transport := filepath.Join(work, "transport")
	os.WriteFile(transport, []byte("transport\n"), 0o600)
	step("token "+serial+" (pkcs11): in_stock", append([]string{"token", "add", serial, "--model", "pkcs11"}, olga...)...)
	step("SO PIN is now the derived one", append([]string{"token", "personalise", serial, "--org", "hospital", "--certificate", cert[1], "--module", mod, "--transport-so-pin-file", transport}, olga...)...)
	step(serial+"  pkcs11  issued", append([]string{"token", "list", "--org", "hospital"}, alice...)...)

	out3 := step("unlock request", append([]string{"token", "request-unlock", serial, "--comment", "PIN forgotten"}, alice...)...)
	unlockReq := regexp.MustCompile(`unlock request (\S+) received`).FindStringSubmatch(out3)
	step("request "+unlockReq[1], append([]string{"ra", "approve", unlockReq[1]}, olga...)...)

	pinFile := filepath.Join(work, "new-pin")
	os.WriteFile(pinFile, []byte("975310\n"), 0o600)
	unlock := append([]string{"token", "unlock", "--module", mod, "--token-serial", serial, "--new-pin-file", pinFile}, alice...)
	out4 := step("token "+serial+" unlocked", unlock...)
	if !strings.Contains(out4, "warning: tokens count failed unblock attempts") {
		t.Errorf("no warning in:\n%s", out4)
	}
	if out, err := s.client(t, unlock...); err == nil || !strings.Contains(out, "already used") {
		t.Errorf("second unlock: %v\n%s", err, out)
	}
	login := func(pin string) error {
		return exec.Command("pkcs11-tool", "--module", mod, "--token-label", "usbkey", "--login", "--pin", pin, "--list-objects").Run()
	}
	if err := login("975310"); err != nil {
		t.Errorf("pkcs11-tool login with the new PIN: %v", err)
	}
	if err := login("111111"); err == nil {
		t.Error("the old PIN still logs in")
	}
}
