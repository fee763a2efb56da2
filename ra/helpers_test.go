package ra_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/server"
)

// world is a running certcenter with an SMTP relay and a webhook receiver.
type world struct {
	t       *testing.T
	dir     string
	srv     *server.Server
	base    string
	caPEM   []byte
	admin   *http.Client // bootstrap administrator
	mail    *mailbox
	hooks   *hookbox
	smtpSrv *smtp.Server
}

func requireTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required for this test: apt-get install %s", name, pkg)
	}
}

func newWorld(t *testing.T, tweak func(*config.Config)) *world {
	t.Helper()
	return newWorldLog(t, tweak, nil)
}

// newWorldLog is newWorld with the server's log (debug and up) written to
// logTo, when not nil.
func newWorldLog(t *testing.T, tweak func(*config.Config), logTo io.Writer) *world {
	t.Helper()
	requireTool(t, "openssl", "openssl")
	w := &world{t: t, dir: t.TempDir(), mail: &mailbox{}, hooks: &hookbox{}}
	// SMTP relay.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.smtpSrv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: w.mail}, nil }))
	w.smtpSrv.Domain = "localhost"
	go w.smtpSrv.Serve(ln)
	t.Cleanup(func() { w.smtpSrv.Close() })
	// Webhook receiver.
	hs := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var m map[string]any
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(rw, err.Error(), 400)
			return
		}
		w.hooks.add(m)
	}))
	t.Cleanup(hs.Close)

	cfg := config.Default()
	cfg.DataDir = w.dir
	cfg.Store.SyncWrites = false
	cfg.HTTP.Addr, cfg.API.Addr, cfg.LDAP.Addr, cfg.LDAP.LDAPSAddr = "127.0.0.1:0", "127.0.0.1:0", "", ""
	cfg.RA.SMTP.Addr = ln.Addr().String()
	cfg.RA.SMTP.From = "ca@certcenter.test"
	cfg.RA.Webhook.URL = hs.URL + "/hook"
	if tweak != nil {
		tweak(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("RA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if logTo != nil {
		log = slog.New(slog.NewTextHandler(logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	w.srv, err = server.Start(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.srv.Stop(sctx); err != nil {
			t.Errorf("stopping server: %v", err)
		}
	})
	w.base = "https://" + w.srv.Addr("api")
	w.caPEM, err = os.ReadFile(filepath.Join(w.dir, bootstrap.CACert))
	if err != nil {
		t.Fatal(err)
	}
	w.admin = w.client(filepath.Join(w.dir, bootstrap.AdminCert), filepath.Join(w.dir, bootstrap.AdminKey))
	return w
}

// client is an HTTPS client presenting the given credential (none if empty).
func (w *world) client(certFile, keyFile string) *http.Client {
	w.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(w.caPEM)
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			w.t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// call sends a request; body is JSON unless it is []byte (sent as CMS).
func (w *world) call(c *http.Client, method, path string, body any, out any) (int, string) {
	w.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd, ct = bytes.NewReader(b), "application/pkcs7-mime"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			w.t.Fatal(err)
		}
		rd, ct = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, w.base+path, rd)
	if err != nil {
		w.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			w.t.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, string(raw)
}

// must calls and fails the test unless the status is want.
func (w *world) must(c *http.Client, want int, method, path string, body, out any) string {
	w.t.Helper()
	st, raw := w.call(c, method, path, body, out)
	if st != want {
		w.t.Fatalf("%s %s = %d %s; want %d", method, path, st, raw, want)
	}
	return raw
}

// credential is a key and certificate on disk, for mTLS and openssl cms.
type credential struct {
	id, certFile, keyFile string
	serial                string
	http                  *http.Client
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func csrPEM(t *testing.T, key any, cn string) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func weakCSR(t *testing.T) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	return csrPEM(t, k, "weak")
}

// badSigCSR is a CSR whose signature does not verify.
func badSigCSR(t *testing.T) string {
	t.Helper()
	b, _ := pem.Decode([]byte(csrPEM(t, newKey(t), "forged")))
	b.Bytes[len(b.Bytes)-3] ^= 0xff
	return string(pem.EncodeToMemory(b))
}

// enrol creates a credential through the API: path is /api/v1/ra/staff or
// /api/v1/ra/orgs/{org}/admins.
func (w *world) enrol(path, id, role, email string) *credential {
	w.t.Helper()
	key := newKey(w.t)
	var resp struct {
		Serial      string `json:"serial"`
		Certificate string `json:"certificate"`
		CA          string `json:"ca"`
	}
	w.must(w.admin, 201, "POST", path, map[string]string{"id": id, "name": "Name of " + id, "role": role, "email": email, "csr": csrPEM(w.t, key, id)}, &resp)
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	c := &credential{id: id, serial: resp.Serial,
		certFile: filepath.Join(w.dir, id+".crt"), keyFile: filepath.Join(w.dir, id+".key")}
	if err := os.WriteFile(c.certFile, []byte(resp.Certificate+resp.CA), 0o600); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		w.t.Fatal(err)
	}
	c.http = w.client(c.certFile, c.keyFile)
	return c
}

// sign makes the CMS SignedData of an application with openssl, exactly as
// an administrator would.
func (w *world) sign(c *credential, app any) []byte {
	w.t.Helper()
	j, err := json.Marshal(app)
	if err != nil {
		w.t.Fatal(err)
	}
	in := filepath.Join(w.t.TempDir(), "app.json")
	if err := os.WriteFile(in, j, 0o600); err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command("openssl", "cms", "-sign", "-nodetach", "-binary", "-outform", "DER", "-signer", c.certFile, "-inkey", c.keyFile, "-in", in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("openssl cms -sign: %v: %s", err, stderr.String())
	}
	return out
}

type mailbox struct {
	mu   sync.Mutex
	msgs []mail
}

type mail struct {
	from string
	to   []string
	data string
}

func (m *mailbox) all() []mail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mail{}, m.msgs...)
}

type mailSession struct {
	box *mailbox
	cur mail
}

func (s *mailSession) Reset()                                      { s.cur = mail{} }
func (s *mailSession) Logout() error                               { return nil }
func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error { s.cur.from = from; return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = string(b)
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.cur)
	s.box.mu.Unlock()
	return nil
}

type hookbox struct {
	mu     sync.Mutex
	events []map[string]any
}

func (h *hookbox) add(m map[string]any) {
	h.mu.Lock()
	h.events = append(h.events, m)
	h.mu.Unlock()
}

func (h *hookbox) of(event string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, e := range h.events {
		if e["event"] == event {
			out = append(out, e)
		}
	}
	return out
}

type reqView struct {
	ID           string    `json:"id"`
	State        string    `json:"state"`
	Serial       string    `json:"serial"`
	TargetSerial string    `json:"target_serial"`
	Reason       string    `json:"reason"`
	DueAt        time.Time `json:"due_at"`
	ReceivedAt   time.Time `json:"received_at"`
	CAReceivedAt time.Time `json:"ca_received_at"`
	History      []struct {
		Actor, Action, State, Comment string
	} `json:"history"`
}

type submitResp struct {
	Application string    `json:"application"`
	Requests    []reqView `json:"requests"`
}

func (w *world) countRequests() int {
	w.t.Helper()
	var l struct {
		Items []reqView `json:"items"`
	}
	w.must(w.admin, 200, "GET", "/api/v1/requests?limit=1000", nil, &l)
	return len(l.Items)
}
