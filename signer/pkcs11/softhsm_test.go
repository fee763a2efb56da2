package pkcs11

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/pkcs11"
)

// Test tokens live in SoftHSM2. The CI test command installs it, so a
// machine without it fails loudly instead of skipping the HSM code path;
// CERTCENTER_SKIP_SOFTHSM=1 skips on purpose (a laptop without softhsm2).

const (
	testPIN   = "1234"
	testSOPIN = "5678"
)

// moduleCandidates are where distributions put the SoftHSM2 library.
var moduleCandidates = []string{
	"/usr/lib/softhsm/libsofthsm2.so",                   // Debian, Ubuntu
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",  // Debian multiarch
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so", // Debian arm64
	"/usr/lib64/pkcs11/libsofthsm2.so",                  // Fedora, RHEL
	"/usr/lib/pkcs11/libsofthsm2.so",                    // Arch
	"/usr/local/lib/softhsm/libsofthsm2.so",             // built from source
	"/opt/homebrew/lib/softhsm/libsofthsm2.so",          // macOS Homebrew
}

// softhsmModule returns the SoftHSM2 library or fails the test.
func softhsmModule(tb testing.TB) string {
	tb.Helper()
	if os.Getenv("CERTCENTER_SKIP_SOFTHSM") == "1" {
		tb.Skip("CERTCENTER_SKIP_SOFTHSM=1: skipping the PKCS#11 tests")
	}
	_, utilErr := exec.LookPath("softhsm2-util")
	candidates := moduleCandidates
	if env := os.Getenv("CERTCENTER_SOFTHSM_MODULE"); env != "" {
		candidates = []string{env}
	}
	mod := ""
	for _, c := range candidates {
		if _, err := os.Stat(c); err == nil {
			mod = c
			break
		}
	}
	if mod == "" || utilErr != nil {
		tb.Fatalf("SoftHSM2 is not installed (library found: %q, softhsm2-util: %v): "+
			"install softhsm2 (apt-get install softhsm2, dnf install softhsm, brew install softhsm), "+
			"point CERTCENTER_SOFTHSM_MODULE at libsofthsm2.so, or set CERTCENTER_SKIP_SOFTHSM=1 to skip these tests", mod, utilErr)
	}
	return mod
}

// testToken is a SoftHSM2 token in its own directory.
type testToken struct {
	module string
	dir    string
	label  string
}

// newToken points SoftHSM2 at a fresh token directory and initialises a
// token there. SoftHSM2 reads SOFTHSM2_CONF in C_Initialize, which is why
// every Provider of the previous test must be closed (the module finalised)
// before the next test starts; it also makes these tests sequential.
func newToken(tb testing.TB, label string) *testToken {
	tb.Helper()
	mod := softhsmModule(tb)
	modules.mu.Lock()
	leaked := len(modules.byPath)
	modules.mu.Unlock()
	if leaked != 0 {
		tb.Fatalf("a previous test left %d PKCS#11 module(s) open: close every Provider", leaked)
	}
	dir := tb.TempDir()
	conf := filepath.Join(dir, "softhsm2.conf")
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	cfg := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Setenv("SOFTHSM2_CONF", conf)
	tok := &testToken{module: mod, dir: tokens, label: label}
	tok.initToken(tb)
	return tok
}

func (tok *testToken) initToken(tb testing.TB) {
	tb.Helper()
	softhsmUtil(tb, "--init-token", "--free", "--label", tok.label, "--pin", testPIN, "--so-pin", testSOPIN)
}

func (tok *testToken) deleteToken(tb testing.TB) {
	tb.Helper()
	softhsmUtil(tb, "--delete-token", "--token", tok.label)
}

func softhsmUtil(tb testing.TB, args ...string) {
	tb.Helper()
	out, err := exec.Command("softhsm2-util", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// open opens a Provider on the token and closes it when the test ends.
func (tok *testToken) open(tb testing.TB, poolSize int) *Provider {
	tb.Helper()
	p, err := Open(context.Background(), tok.options(tb, poolSize))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
	})
	return p
}

func (tok *testToken) options(tb testing.TB, poolSize int) Options {
	o := Options{
		Module:     tok.module,
		TokenLabel: tok.label,
		PIN:        testPIN,
		PoolSize:   poolSize,
		MaxBackoff: 100e6, // 100ms: recovery tests wait for it
	}
	if t, ok := tb.(*testing.T); ok {
		o.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o
}

// rawSession is an independent handle on the same module, the way another
// part of the process (or an operator's tool sharing the library) would
// touch the token underneath the Provider.
type rawSession struct {
	ctx  *pkcs11.Ctx
	slot uint
	h    pkcs11.SessionHandle
}

func (tok *testToken) raw(tb testing.TB) *rawSession {
	tb.Helper()
	c := pkcs11.New(tok.module)
	if c == nil {
		tb.Fatal("loading the module a second time failed")
	}
	if err := c.Initialize(); err != nil && err != pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		tb.Fatal(err)
	}
	r := &rawSession{ctx: c}
	slots, err := c.GetSlotList(true)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range slots {
		if ti, err := c.GetTokenInfo(s); err == nil && ti.Label == tok.label {
			r.slot = s
		}
	}
	if r.h, err = c.OpenSession(r.slot, pkcs11.CKF_SERIAL_SESSION); err != nil {
		tb.Fatal(err)
	}
	// Only unload; finalising would pull the module out from under the
	// Provider, which the tests that want that do on purpose.
	tb.Cleanup(c.Destroy)
	return r
}
