package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.API.Addr = "127.0.0.1:0"
	cfg.LDAP.Addr, cfg.LDAP.LDAPSAddr = "", ""
	cfg.Store.SyncWrites = false
	return cfg
}

func startTest(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	s, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}

// adminClient is an HTTPS client holding the bootstrap administrator's credential.
func adminClient(t *testing.T, dataDir string) *http.Client {
	t.Helper()
	kp, err := tls.LoadX509KeyPair(filepath.Join(dataDir, bootstrap.AdminCert), filepath.Join(dataDir, bootstrap.AdminKey))
	if err != nil {
		t.Fatal(err)
	}
	return tlsClient(t, dataDir, []tls.Certificate{kp})
}

func tlsClient(t *testing.T, dataDir string, certs []tls.Certificate) *http.Client {
	caPEM, err := os.ReadFile(filepath.Join(dataDir, bootstrap.CACert))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: certs}}}
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeOnEmptyDataDir(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	public := "http://" + s.Addr("http")
	api := "https://" + s.Addr("api")

	if code, body := get(t, http.DefaultClient, public+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	waitReady(t, public)
	if code, _ := get(t, http.DefaultClient, public+"/ca/demo.crt"); code != 200 {
		t.Errorf("/ca/demo.crt = %d", code)
	}
	for _, f := range []string{bootstrap.AdminCert, bootstrap.AdminKey, bootstrap.CACert} {
		if _, err := os.Stat(filepath.Join(cfg.DataDir, f)); err != nil {
			t.Errorf("bootstrap credential: %v", err)
		}
	}
	if st, _ := os.Stat(filepath.Join(cfg.DataDir, bootstrap.AdminKey)); st != nil && st.Mode().Perm() != 0o600 {
		t.Errorf("admin key mode %v", st.Mode().Perm())
	}

	t.Run("fail/no client certificate", func(t *testing.T) {
		code, body := get(t, tlsClient(t, cfg.DataDir, nil), api+"/api/v1/certs")
		if code != http.StatusUnauthorized || !strings.Contains(body, `"code":"unauthenticated"`) {
			t.Errorf("got %d %s", code, body)
		}
	})
	admin := adminClient(t, cfg.DataDir)
	var list struct {
		Items []struct{ Serial, Profile, Status string }
	}
	code, body := get(t, admin, api+"/api/v1/certs")
	if code != 200 {
		t.Fatalf("list = %d %s", code, body)
	}
	json.Unmarshal([]byte(body), &list)
	var target string
	for _, it := range list.Items {
		if it.Profile == "server-tls" {
			target = it.Serial
		}
	}
	if len(list.Items) != 3 || target == "" {
		t.Fatalf("list = %s", body)
	}
	t.Run("ok/revoke", func(t *testing.T) {
		resp, err := admin.Post(api+"/api/v1/certs/"+target+"/revoke", "application/json", strings.NewReader(`{"reason":"keyCompromise"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"reason":"keyCompromise"`) {
			t.Fatalf("revoke = %d %s", resp.StatusCode, b)
		}
		code, body := get(t, admin, api+"/api/v1/certs/"+target)
		if code != 200 || !strings.Contains(body, `"status":"revoked"`) {
			t.Errorf("show after revoke = %d %s", code, body)
		}
	})
	t.Run("fail/bad revoke input", func(t *testing.T) {
		for _, tc := range []struct {
			serial, body string
			want         int
		}{
			{target, `{"reason":"keyCompromise"}`, http.StatusConflict},
			{target, `{"reason":"lost it"}`, http.StatusBadRequest},
			{"zz", `{}`, http.StatusBadRequest},
			{"0102", `{"reason":"superseded"}`, http.StatusNotFound},
			{target, `{"reason":1`, http.StatusBadRequest},
		} {
			resp, err := admin.Post(api+"/api/v1/certs/"+tc.serial+"/revoke", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !bytes.Contains(b, []byte(`"error"`)) {
				t.Errorf("%s %s = %d %s, want %d", tc.serial, tc.body, resp.StatusCode, b, tc.want)
			}
		}
	})
	if code, body := get(t, admin, api+"/metrics"); code != 200 || !strings.Contains(body, "certcenter_http_requests_total") {
		t.Errorf("/metrics = %d", code)
	}
}

func TestRestartKeepsCA(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	first, _ := os.ReadFile(filepath.Join(cfg.DataDir, bootstrap.CACert))
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	s2 := startTest(t, cfg)
	second, _ := os.ReadFile(filepath.Join(cfg.DataDir, bootstrap.CACert))
	if !bytes.Equal(first, second) {
		t.Error("CA certificate changed across restart")
	}
	if code, _ := get(t, adminClient(t, cfg.DataDir), "https://"+s2.Addr("api")+"/api/v1/status"); code != 200 {
		t.Errorf("status after restart = %d", code)
	}
}

func TestSecondServerOnSameDataDir(t *testing.T) {
	cfg := testConfig(t)
	startTest(t, cfg)
	_, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Start: %v", err)
	}
}

func TestCorruptKeyFile(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	s.Stop(context.Background())
	if err := os.WriteFile(filepath.Join(cfg.DataDir, keysDir, "demo-ca.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "demo-ca.key") {
		t.Fatalf("Start with a corrupt key: %v", err)
	}
}

func TestUnwritableDataDir(t *testing.T) {
	if os.Geteuid() == 0 {
		// root ignores permissions; a file where the directory should be fails for everyone.
		cfg := testConfig(t)
		cfg.DataDir = filepath.Join(t.TempDir(), "file")
		os.WriteFile(cfg.DataDir, nil, 0o600)
		if _, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "data directory") {
			t.Fatalf("Start on a file: %v", err)
		}
		return
	}
	cfg := testConfig(t)
	os.Chmod(cfg.DataDir, 0o500)
	if _, err := Start(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not writable") {
		t.Fatalf("Start on a read-only dir: %v", err)
	}
}

func TestBackupRestoreCounts(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	s.Stop(context.Background())
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := Seed(ctx, cfg, log, seedOptions(200, 0.2)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Backup(ctx, cfg, log, &buf); err != nil {
		t.Fatal(err)
	}
	dst := *cfg
	dst.DataDir = filepath.Join(t.TempDir(), "restored")
	counts, err := Restore(ctx, &dst, log, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if counts.Certs != 203 || counts.Subscribers != 200 || counts.CAs != 1 || counts.Revoked == 0 {
		t.Errorf("restored counts = %+v", counts)
	}
	if _, err := Restore(ctx, &dst, log, bytes.NewReader(buf.Bytes())); err == nil {
		t.Error("restore over an existing store accepted")
	}
	// The restored directory serves with the same CA and bootstrap credential.
	s2 := startTest(t, &dst)
	if code, body := get(t, adminClient(t, dst.DataDir), "https://"+s2.Addr("api")+"/api/v1/status"); code != 200 || !strings.Contains(body, `"certs":203`) {
		t.Errorf("restored server status = %d %s", code, body)
	}
}

func seedOptions(n int, f float64) seed.Options { return seed.Options{Count: n, RevokedFraction: f} }

func TestInterruptedInitIsFinished(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	// An init that stopped right after storing the CA: no OCSP responder,
	// no server certificate, no administrator.
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ca.Init(ctx, ca.InitOptions{Name: "demo", CommonName: "Interrupted CA", Algorithm: signer.ECDSAP256, Validity: time.Hour * 24 * 365}); err != nil {
		t.Fatal(err)
	}
	if err := c.store.Update(ctx, func(tx *store.Tx) error {
		rec, err := tx.CA("demo")
		if err != nil {
			return err
		}
		rec.OCSPCertDER, rec.OCSPKeyRef = nil, ""
		return tx.PutCA(rec)
	}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	s := startTest(t, cfg)
	if code, body := get(t, adminClient(t, cfg.DataDir), "https://"+s.Addr("api")+"/api/v1/status"); code != 200 {
		t.Fatalf("status after finishing an interrupted init = %d %s", code, body)
	}
	iss, _ := s.c.core.ca.Issuer("demo")
	if iss.OCSPCert == nil {
		t.Error("no OCSP responder after start")
	}
}

func TestAdminCertPaging(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := Seed(ctx, cfg, log, seedOptions(25, 0.4)); err != nil {
		t.Fatal(err)
	}
	s := startTest(t, cfg)
	admin := adminClient(t, cfg.DataDir)
	api := "https://" + s.Addr("api")
	for _, tc := range []struct {
		query string
		want  int
	}{{"", 28}, {"&status=revoked", -1}, {"&cn=seed-0000007", 1}} {
		seen := map[string]bool{}
		after := ""
		for pages := 0; ; pages++ {
			code, body := get(t, admin, api+"/api/v1/certs?limit=4"+tc.query+after)
			if code != 200 {
				t.Fatalf("%s: %d %s", tc.query, code, body)
			}
			var page struct {
				Items []struct{ Serial, Status string }
				Next  string
			}
			json.Unmarshal([]byte(body), &page)
			for _, it := range page.Items {
				if seen[it.Serial] {
					t.Fatalf("%s: serial %s on two pages", tc.query, it.Serial)
				}
				if strings.Contains(tc.query, "revoked") && it.Status != "revoked" {
					t.Errorf("status filter returned %s", it.Status)
				}
				seen[it.Serial] = true
			}
			if page.Next == "" {
				break
			}
			if len(page.Items) != 4 || pages > 20 {
				t.Fatalf("%s: page %d has %d items and a next cursor", tc.query, pages, len(page.Items))
			}
			after = "&after=" + page.Next
		}
		if tc.want >= 0 && len(seen) != tc.want {
			t.Errorf("%q listed %d certificates, want %d", tc.query, len(seen), tc.want)
		}
		if tc.want < 0 && len(seen) == 0 {
			t.Errorf("%q listed nothing", tc.query)
		}
	}
	resp, err := admin.Post(api+"/api/v1/certs/01/revoke", "application/json", strings.NewReader(`{"comment":"`+strings.Repeat("x", 2<<20)+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body = %d, want 413", resp.StatusCode)
	}
}

func TestRestoreRefusesCorruptBackup(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	if _, err := Seed(ctx, cfg, log, seedOptions(50, 0)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Backup(ctx, cfg, log, &buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	for name, b := range map[string][]byte{
		"truncated":    good[:len(good)*2/3],
		"flipped byte": func() []byte { c := bytes.Clone(good); c[len(c)-12] ^= 0xff; return c }(),
		"not a backup": []byte("hello"),
	} {
		t.Run("fail/"+name, func(t *testing.T) {
			dst := *cfg
			dst.DataDir = filepath.Join(t.TempDir(), "restored")
			if _, err := Restore(ctx, &dst, log, bytes.NewReader(b)); err == nil {
				t.Fatal("restore accepted a damaged backup")
			}
			if _, err := os.Stat(dst.DataDir); !os.IsNotExist(err) {
				t.Errorf("a failed restore left %s behind", dst.DataDir)
			}
			if _, err := os.Stat(dst.DataDir + ".restoring"); !os.IsNotExist(err) {
				t.Error("a failed restore left its work directory behind")
			}
		})
	}
}

// waitReady polls /readyz, which waits for the start-up checks (the OCSP and
// CRL repair) that run in the background: it must turn 200, and say why
// until it does.
func waitReady(t *testing.T, base string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; {
		code, body := get(t, http.DefaultClient, base+"/readyz")
		if code == 200 {
			return
		}
		if code != http.StatusServiceUnavailable || body == "" || time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %q", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
