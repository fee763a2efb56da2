package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSeedRunningServer: the offline seed refuses a data directory a
// server holds and says what to do; `seed --server` adds subscribers
// through POST /api/v1/seed in batches, numbering on from the last.
func TestSeedRunningServer(t *testing.T) {
	data := t.TempDir()
	conf := filepath.Join(t.TempDir(), "certcenter.yaml")
	if err := os.WriteFile(conf, []byte("api:\n  seed: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addrs := freeAddrs(t, 2)
	s := &served{data: data, http: addrs[0], api: addrs[1]}
	var log strings.Builder
	s.cmd = exec.Command(bin, "serve", "--config", conf, "--data", data, "--http-addr", s.http, "--api-addr", s.api,
		"--ldap-addr", "", "--ldaps-addr", "")
	s.cmd.Stdout, s.cmd.Stderr = &log, &log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	waitHealthy(t, s.http, &log)

	out, err := run(t, "seed", "--data", data, "--count", "5")
	if err == nil || !strings.Contains(out, "in use") || !strings.Contains(out, "--server") {
		t.Fatalf("offline seed of a running server's data = %v:\n%s", err, out)
	}
	out, err = run(t, "seed", "--data", data, "--server", "https://"+s.api, "--count", "25", "--batch", "10", "--revoked-fraction", "0.2")
	if err != nil || !strings.Contains(out, "seeded 25 subscribers (seed-0000000 .. seed-0000024), 5 revoked") {
		t.Fatalf("seed --server = %v:\n%s", err, out)
	}
	if n := strings.Count(out, "seeded 10 of 25") + strings.Count(out, "seeded 20 of 25") + strings.Count(out, "seeded 25 of 25"); n != 3 {
		t.Errorf("want three batches reported:\n%s", out)
	}
	out, err = run(t, "seed", "--data", data, "--server", "https://"+s.api, "--count", "2")
	if err != nil || !strings.Contains(out, "(seed-0000025 .. seed-0000026)") {
		t.Fatalf("second seed --server = %v:\n%s", err, out)
	}
	out, err = run(t, "seed", "--data", data, "--server", "https://"+s.api, "--count", "2", "--batch", "100000")
	if err == nil || !strings.Contains(out, "--batch 100000") {
		t.Fatalf("seed --server with an oversized batch = %v:\n%s", err, out)
	}
	// The subscribers are there, with real certificates the CLI can read.
	out, err = s.client(t, "cert", "list", "--cn", "seed-0000026")
	if err != nil || !strings.Contains(out, "seed-0000026") {
		t.Fatalf("cert list after the seed = %v:\n%s", err, out)
	}
}

func waitHealthy(t *testing.T, addr string, log *strings.Builder) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("serve did not come up:\n%s", log.String())
}
