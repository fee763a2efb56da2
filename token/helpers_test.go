package token_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/server"
)

// The tests run a whole server (file signer, so the token master secret is
// an HMAC key file) on loopback ports, with SoftHSM2 tokens playing the
// holders' USBKeys.

const (
	transportSOPIN = "transport-so"
	transportPIN   = "111111"
)

var moduleCandidates = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
	"/usr/lib/pkcs11/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// softhsm points SoftHSM2 at a fresh token directory and initialises one
// token per label, each with the transport SO PIN and user PIN a vendor
// ships; it returns the module.
func softhsm(t *testing.T, labels ...string) string {
	t.Helper()
	if os.Getenv("CERTCENTER_SKIP_SOFTHSM") == "1" {
		t.Skip("CERTCENTER_SKIP_SOFTHSM=1")
	}
	mod := os.Getenv("CERTCENTER_SOFTHSM_MODULE")
	for _, c := range moduleCandidates {
		if _, err := os.Stat(c); mod == "" && err == nil {
			mod = c
		}
	}
	if _, err := exec.LookPath("softhsm2-util"); err != nil || mod == "" {
		t.Fatalf("SoftHSM2 is not installed (apt-get install softhsm2): module %q, softhsm2-util: %v", mod, err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	for _, l := range labels {
		out, err := exec.Command("softhsm2-util", "--init-token", "--free", "--label", l, "--pin", transportPIN, "--so-pin", transportSOPIN).CombinedOutput()
		if err != nil {
			t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
		}
	}
	return mod
}

// logBuffer collects the server's log, audit stream included.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type world struct {
	t     *testing.T
	dir   string
	base  string
	cfg   *config.Config
	caPEM []byte
	admin *http.Client
	logs  *logBuffer
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir(), logs: &logBuffer{}}
	cfg := config.Default()
	cfg.DataDir = w.dir
	cfg.Store.SyncWrites = false
	cfg.HTTP.Addr, cfg.API.Addr, cfg.LDAP.Addr, cfg.LDAP.LDAPSAddr = "127.0.0.1:0", "127.0.0.1:0", "", ""
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w.cfg = cfg
	srv, err := server.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(w.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stopping server: %v", err)
		}
	})
	w.base = "https://" + srv.Addr("api")
	if w.caPEM, err = os.ReadFile(filepath.Join(w.dir, bootstrap.CACert)); err != nil {
		t.Fatal(err)
	}
	w.admin = w.client(filepath.Join(w.dir, bootstrap.AdminCert), filepath.Join(w.dir, bootstrap.AdminKey))
	return w
}

func (w *world) client(certFile, keyFile string) *http.Client {
	w.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.caPEM)
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		w.t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}}}
}

// call sends a JSON request and decodes a JSON answer into out.
func (w *world) call(c *http.Client, method, path string, body, out any) (int, string) {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			w.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			w.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, string(b)
}

// must is call that fails the test on another status.
func (w *world) must(c *http.Client, want int, method, path string, body, out any) string {
	w.t.Helper()
	code, b := w.call(c, method, path, body, out)
	if code != want {
		w.t.Fatalf("%s %s = %d %s; want %d", method, path, code, b, want)
	}
	return b
}

// refused checks a refusal: the status, a reason containing msg.
func (w *world) refused(c *http.Client, want int, msg, method, path string, body any) {
	w.t.Helper()
	code, b := w.call(c, method, path, body, nil)
	if code != want || !strings.Contains(b, msg) {
		w.t.Fatalf("%s %s = %d %s; want %d with %q", method, path, code, b, want, msg)
	}
}

// enrol makes a credential (staff or certificate administrator) at path.
func (w *world) enrol(path, id, role string) *http.Client {
	w.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var resp struct {
		Certificate string `json:"certificate"`
		CA          string `json:"ca"`
	}
	w.must(w.admin, 201, "POST", path, map[string]string{"id": id, "name": "Name of " + id, "role": role, "csr": csrPEM(w.t, key, id)}, &resp)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	cf, kf := filepath.Join(w.dir, id+".crt"), filepath.Join(w.dir, id+".key")
	if err := os.WriteFile(cf, []byte(resp.Certificate+resp.CA), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return w.client(cf, kf)
}

func csrPEM(t *testing.T, key crypto.Signer, cn string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

type requestView struct {
	ID     string    `json:"id"`
	Kind   string    `json:"kind"`
	State  string    `json:"state"`
	Serial string    `json:"serial"`
	DueAt  time.Time `json:"due_at"`
	CAAt   time.Time `json:"ca_received_at"`
	Token  *struct {
		Serial       string   `json:"serial"`
		NewSerial    string   `json:"new_serial"`
		Revoked      []string `json:"revoked"`
		RecoveryNote string   `json:"recovery_note"`
	} `json:"token"`
	LastError string `json:"last_error"`
}

// issue has the bootstrap administrator enter a walk-in application for
// one person of org and an RA officer approve it; it returns the serial.
func (w *world) issue(officer *http.Client, org, name, profile, csr string) string {
	w.t.Helper()
	var sub struct{ Requests []requestView }
	w.must(w.admin, 201, "POST", "/api/v1/applications", map[string]any{"org": org, "kind": "issue",
		"items": []map[string]any{{"name": name, "profile": profile, "csr": csr}}}, &sub)
	var rq requestView
	w.must(officer, 200, "POST", "/api/v1/requests/"+sub.Requests[0].ID+"/approve", map[string]string{"comment": "checked"}, &rq)
	if rq.State != "issued" || rq.Serial == "" {
		w.t.Fatalf("issuance request %+v", rq)
	}
	return rq.Serial
}

// requestCount is how many RA requests exist.
func (w *world) requestCount() int {
	w.t.Helper()
	var page struct{ Items []requestView }
	w.must(w.admin, 200, "GET", "/api/v1/requests?limit=1000", nil, &page)
	return len(page.Items)
}

// refusalsLogged counts ra.refuse entries in the audit stream.
func (w *world) refusalsLogged() int {
	return strings.Count(w.logs.String(), "msg=ra.refuse")
}
