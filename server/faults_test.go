package server

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/testfs"
)

// ocspGET asks the public listener for the status of the bootstrap
// administrator's certificate and fails unless it gets a good one.
func ocspGET(t *testing.T, dataDir, public string) {
	t.Helper()
	cert, issuer := readCert(t, filepath.Join(dataDir, bootstrap.AdminCert)), readCert(t, filepath.Join(dataDir, bootstrap.CACert))
	der, err := xocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(public + "/ocsp/" + base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatalf("OCSP GET: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r, err := xocsp.ParseResponseForCert(body, cert, issuer)
	if resp.StatusCode != 200 || err != nil || r.Status != xocsp.Good {
		t.Fatalf("OCSP GET = %d, %v", resp.StatusCode, err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(p.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// revokeSomething revokes one of the demo CA's certificates other than the
// administrator's and returns the API's status and body.
func revokeSomething(t *testing.T, cfg *Server, dataDir string) (int, string) {
	t.Helper()
	admin := adminClient(t, dataDir)
	api := "https://" + cfg.Addr("api")
	code, body := get(t, admin, api+"/api/v1/certs")
	if code != 200 {
		t.Fatalf("list = %d %s", code, body)
	}
	i := strings.Index(body, `"profile":"server-tls"`)
	j := strings.LastIndex(body[:max(i, 0)], `"serial":"`)
	if i < 0 || j < 0 {
		t.Fatalf("no server-tls certificate in %s", body)
	}
	serial := body[j+len(`"serial":"`):]
	serial = serial[:strings.IndexByte(serial, '"')]
	resp, err := admin.Post(api+"/api/v1/certs/"+serial+"/revoke", "application/json", strings.NewReader(`{"reason":"superseded"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readyz(t *testing.T, public string) (int, string) {
	t.Helper()
	return get(t, http.DefaultClient, public+"/readyz")
}

// TestDiskFullServer: on a full data disk the API refuses writes with 507,
// /readyz says why, OCSP goes on answering; freed space lets writes resume;
// a start on a full disk comes up read-only and answers OCSP.
func TestDiskFullServer(t *testing.T) {
	mnt := testfs.Tmpfs(t, 64)
	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(mnt, "data")
	cfg.Store.MinFreeMB = 16
	s, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	public := "http://" + s.Addr("http")
	waitReady(t, public)

	ballast := testfs.Fill(t, mnt, 8<<20)
	code, body := revokeSomething(t, s, cfg.DataDir)
	if code != http.StatusInsufficientStorage || !strings.Contains(body, `"code":"store_read_only"`) || !strings.Contains(body, "below floor 16 MB") {
		t.Errorf("revoke on a full disk = %d %s, want 507 store_read_only", code, body)
	}
	if code, body := readyz(t, public); code != http.StatusServiceUnavailable || !strings.Contains(body, "store: store read-only: disk free") {
		t.Errorf("/readyz on a full disk = %d %q", code, body)
	}
	ocspGET(t, cfg.DataDir, public)

	os.Remove(ballast)
	waitReady(t, public)
	if code, body := revokeSomething(t, s, cfg.DataDir); code != 200 {
		t.Errorf("revoke after freeing space = %d %s", code, body)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	testfs.Fill(t, mnt, 8<<20)
	s = startTest(t, cfg)
	public = "http://" + s.Addr("http")
	ocspGET(t, cfg.DataDir, public)
	if code, body := readyz(t, public); code != http.StatusServiceUnavailable || !strings.Contains(body, "opened read-only") || !strings.Contains(body, "restart") {
		t.Errorf("/readyz after a start on a full disk = %d %q", code, body)
	}
}

// TestDataDirTurnsReadOnly: the kernel turns the data directory's file
// system read-only under a running server: writes fail (not report
// success), /readyz says so, and shutdown returns within its deadline
// although Badger cannot flush.
func TestDataDirTurnsReadOnly(t *testing.T) {
	mnt := testfs.Ext4(t, 128)
	cfg := testConfig(t)
	cfg.DataDir = filepath.Join(mnt, "data")
	cfg.Store.MinFreeMB = 16
	// The default: with sync_writes off a commit only reaches the page
	// cache, so it cannot fail until the store's next probe (2 s) notices.
	cfg.Store.SyncWrites = true
	s, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	public := "http://" + s.Addr("http")
	waitReady(t, public)
	adminClient(t, cfg.DataDir) // read the credential while the disk is good

	testfs.Ext4Error(t, mnt)
	if code, body := revokeSomething(t, s, cfg.DataDir); code != http.StatusInsufficientStorage {
		t.Errorf("revoke on a read-only file system = %d %s, want 507", code, body)
	}
	if code, body := readyz(t, public); code != http.StatusServiceUnavailable || !strings.Contains(body, "store:") {
		t.Errorf("/readyz on a read-only file system = %d %q", code, body)
	}
	ocspGET(t, cfg.DataDir, public)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- s.Stop(ctx) }()
	select {
	case err := <-stopped:
		t.Logf("Stop: %v", err)
	case <-time.After(time.Minute): // a hang detector, not a timing check
		t.Fatal("Stop did not return after its deadline")
	}
}

// TestPipelinedNonReaderIsCut: a client that pipelines GETs and never reads
// its answers is disconnected by the server once its writes block past the
// write timeout, instead of holding the connection and its buffers for ever.
func TestPipelinedNonReaderIsCut(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.WriteTimeout = config.Duration(time.Second)
	s := startTest(t, cfg)
	public := "http://" + s.Addr("http")
	waitReady(t, public)

	cert, issuer := readCert(t, filepath.Join(cfg.DataDir, bootstrap.AdminCert)), readCert(t, filepath.Join(cfg.DataDir, bootstrap.CACert))
	der, err := xocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Enough answers (about 1.6 kB each) to overflow what loopback's socket
	// buffers take (the sender's autotunes up to tcp_wmem's 4 MiB), so the
	// server's writes block: ~16 MB, the "~3 MB held" and more.
	const pipelined = 10000
	req := "GET /ocsp/" + base64.StdEncoding.EncodeToString(der) + " HTTP/1.1\r\nHost: x\r\n\r\n"
	// A small receive buffer, set before connecting so the window stays
	// small, makes the server's writes block after a few answers instead
	// of after loopback's megabytes of autotuned buffers.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", s.Addr("http"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Write the requests from another goroutine: once the server stops
	// reading (its writes are blocked), our writes block too.
	go func() {
		w := bufio.NewWriter(c)
		for range pipelined {
			if _, err := w.WriteString(req); err != nil {
				return
			}
		}
		w.Flush()
	}()
	// The server fills its send buffer and ours, blocks, and must then close
	// the connection: the open-connection gauge drops to 0, and reading
	// ends (EOF or reset) instead of running on with all the answers.
	http.DefaultClient.CloseIdleConnections()
	waitNoPublicConns(t, s, adminClient(t, cfg.DataDir))
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open (read %d bytes)", n)
	}
	one := int64(len(okResponse(t, public, req)))
	if n >= pipelined*one {
		t.Fatalf("read all %d answers (%d bytes): the server never cut the non-reading client", pipelined, n)
	}
	t.Logf("connection closed by the server after %d bytes (%d answers of ~%d)", n, n/one, one)
}

// okResponse is the size reference for one pipelined answer.
func okResponse(t *testing.T, public, req string) []byte {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(public, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, strings.Replace(req, "Host: x\r\n", "Host: x\r\nConnection: close\r\n", 1))
	b, _ := io.ReadAll(c)
	return b
}

// TestPublicConnectionCap: connections over http.max_connections are closed
// at once and counted; those under it are served.
func TestPublicConnectionCap(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.MaxConnections = 2
	s := startTest(t, cfg)
	public := "http://" + s.Addr("http")
	waitReady(t, public)
	// waitReady's kept-alive connection counts against the cap: close it
	// and wait until the server has let go of it.
	http.DefaultClient.CloseIdleConnections()
	admin := adminClient(t, cfg.DataDir)
	waitNoPublicConns(t, s, admin)

	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", s.Addr("http"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A request answered proves the server accepted and holds it.
		fmt.Fprint(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(c)
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("connection under the cap: %v", err)
		}
		resp.Body.Close()
		held = append(held, c)
	}
	// Refused: the dial itself may already see the reset, or the request
	// gets no answer.
	if over, err := net.Dial("tcp", s.Addr("http")); err == nil {
		defer over.Close()
		fmt.Fprint(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		_ = over.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := http.ReadResponse(bufio.NewReader(over), nil); err == nil {
			t.Fatal("a connection over the cap was served")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a connection over the cap was left open")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("dialing over the cap: %v", err)
	}

	for _, c := range held {
		c.Close()
	}
	// Freed places are taken again; the refusal is on /metrics.
	var code int
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(public + "/healthz")
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
			break
		}
	}
	if code != 200 {
		t.Fatalf("no connection served after the held ones closed")
	}
	_, metrics := get(t, admin, "https://"+s.Addr("api")+"/metrics")
	// At least the one above: the loop may also have been refused while the
	// server was still closing the held connections.
	if !regexp.MustCompile(`certcenter_http_connections_refused_total\{listener="http"\} [1-9]`).MatchString(metrics) ||
		!strings.Contains(metrics, `certcenter_http_open_connections{listener="http"}`) {
		t.Errorf("connection metrics missing from /metrics:\n%s", grepLines(metrics, "connections"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitNoPublicConns waits until the public listener has no open connection.
func waitNoPublicConns(t *testing.T, s *Server, admin *http.Client) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, metrics := get(t, admin, "https://"+s.Addr("api")+"/metrics")
		if strings.Contains(metrics, `certcenter_http_open_connections{listener="http"} 0`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the public listener still has open connections:\n%s", grepLines(metrics, "open_connections"))
		}
	}
}

// TestEscrowKEKUnavailable: a key-encryption key that cannot be opened (here
// a directory where the key file should be; on an HSM, a lost or read-only
// token) does not keep the server from starting: OCSP, CRLs and the rest of
// the RA serve, /readyz says why, and the escrow routes refuse with 501.
func TestEscrowKEKUnavailable(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	kek := filepath.Join(cfg.DataDir, "keys", cfg.RA.Escrow.KEKName+".kek")
	if err := os.Remove(kek); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Mkdir(kek, 0o700); err != nil {
		t.Fatal(err)
	}
	s = startTest(t, cfg)
	public := "http://" + s.Addr("http")
	// /readyz names the first check that fails; right after the start
	// that may still be the OCSP start-up check, which ends by itself.
	replEventually(t, 15*time.Second, "/readyz saying the key escrow is unavailable", func() bool {
		_, body := readyz(t, public)
		return strings.Contains(body, "key escrow unavailable")
	})
	admin := adminClient(t, cfg.DataDir)
	code, body := post(t, admin, "https://"+s.Addr("api")+"/api/v1/ra/encryption-certificates", `{"org":"o","signing_serial":"01"}`)
	if code != http.StatusNotImplemented {
		t.Errorf("encryption certificate request without a KEK = %d %s, want 501", code, body)
	}
}
