package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/internal/slapd"
	"github.com/certcenter/certcenter/internal/slapd/slapdtest"
)

const (
	pubBase   = "ou=pki,o=test"
	pubRootDN = "cn=admin,o=test"
	pubRootPW = "secret"
	// the seeded CA's entry: ca_dn "cn={cn}" of "certcenter Demo Root CA"
	pubCADN = "cn=certcenter Demo Root CA," + pubBase
)

// pubServer is `certcenter serve` with a publish target, and its plain
// /metrics listener (polled: it is cheap, unlike a CLI call).
type pubServer struct {
	*served
	metrics string
	exited  chan struct{} // closed when serve has exited and been reaped
}

func servePublishing(t *testing.T, data, cfg string) *pubServer {
	t.Helper()
	addrs := freeAddrs(t, 3)
	s := &pubServer{served: &served{data: data, http: addrs[0], api: addrs[1], log: &bytes.Buffer{}}, metrics: addrs[2]}
	// metrics.addr has no flag: a copy of the config per start names a
	// fresh port
	c, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	withMetrics := filepath.Join(t.TempDir(), "certcenter.yaml")
	if err := os.WriteFile(withMetrics, append(c, []byte("metrics:\n  addr: "+s.metrics+"\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, "serve", "--config", withMetrics, "--data", data, "--http-addr", s.http, "--api-addr", s.api,
		"--ldap-addr", "", "--ldaps-addr", "")
	s.cmd.Env = append(os.Environ(), "CC_TEST_PUBLISH_PW="+pubRootPW)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.cmd.Process.Kill(); <-s.exited })
	waitUntil(t, "serve answers /healthz", func() bool {
		select {
		case <-s.exited:
			t.Fatalf("serve exited: %v\n%s", s.cmd.ProcessState, s.log)
		default:
		}
		resp, err := http.Get("http://" + s.http + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, s.log)
	return s
}

// kill is kill -9: nothing is flushed or closed.
func (s *pubServer) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.exited
}

// target reads the target's pending entries, delivered records and
// connection from /metrics.
func (s *pubServer) target(t *testing.T) (pending, delivered float64, connected bool) {
	t.Helper()
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		return -1, -1, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	val := func(name string) float64 {
		m := regexp.MustCompile(`(?m)^certcenter_publish_` + name + `\{target="his"\} (\S+)$`).FindSubmatch(body)
		if m == nil {
			return -1
		}
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		return v
	}
	return val("pending_entries"), val("delivered_total"), val("connected") == 1
}

func waitUntil(t *testing.T, what string, cond func() bool, log *bytes.Buffer) {
	t.Helper()
	// a bound on a hung test, not a timing assertion
	for deadline := time.Now().Add(90 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s\n%s", what, log)
		}
	}
}

func (s *pubServer) waitDrained(t *testing.T) {
	t.Helper()
	waitUntil(t, "the target's queue drained", func() bool {
		p, _, c := s.target(t)
		return c && p == 0
	}, s.log)
}

// certList lists every certificate through the API: serial → "status profile".
func (s *pubServer) certList(t *testing.T) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	after := ""
	for {
		args := []string{"cert", "list", "--limit", "1000"}
		if after != "" {
			args = append(args, "--after", after)
		}
		o, err := s.client(t, args...)
		if err != nil {
			t.Fatalf("cert list: %v\n%s", err, o)
		}
		after = ""
		sc := bufio.NewScanner(strings.NewReader(o))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 3 && len(f[0]) == 40 {
				out[strings.TrimLeft(f[0], "0")] = [2]string{f[1], f[2]}
			}
			if len(f) == 3 && f[0] == "more:" {
				after = f[2]
			}
		}
		if after == "" {
			return out
		}
	}
}

// checkTarget compares the target with the store: every valid published
// certificate is on it exactly once, no revoked one is, and the CA entry
// carries exactly one full CRL, the one certcenter serves now.
func checkTarget(t *testing.T, ldapd *slapd.Server, s *pubServer, published map[string]bool) {
	t.Helper()
	certs := s.certList(t)
	c, err := ldapd.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(pubBase, ldap.ScopeWholeSubtree, 0, 0, 0, false,
		"(userCertificate;binary=*)", []string{"userCertificate;binary"}, nil), 500)
	if err != nil {
		t.Fatal(err)
	}
	onTarget := map[string]int{}
	for _, e := range res.Entries {
		for _, v := range e.GetRawAttributeValues("userCertificate;binary") {
			x, err := x509.ParseCertificate(v)
			if err != nil {
				t.Fatalf("%s: %v", e.DN, err)
			}
			onTarget[strings.TrimLeft(hex.EncodeToString(x.SerialNumber.Bytes()), "0")]++
		}
	}
	want := 0
	for serial, sp := range certs {
		n := onTarget[serial]
		switch {
		case !published[sp[1]]:
			if n != 0 {
				t.Errorf("%s (%s) is on the target %d times, its profile is not published", serial, sp[1], n)
			}
		case sp[0] == "valid":
			want++
			if n != 1 {
				t.Errorf("valid %s (%s) is on the target %d times, want once", serial, sp[1], n)
			}
		default:
			if n != 0 {
				t.Errorf("%s %s is on the target %d times, want none", sp[0], serial, n)
			}
		}
	}
	total := 0
	for _, n := range onTarget {
		total += n
	}
	if total != want {
		t.Errorf("the target holds %d certificate values, the store %d valid published certificates", total, want)
	}
	t.Logf("%d certificates in the store, %d on the target", len(certs), total)

	// The full CRL: exactly one value, the one served now (read again
	// until both agree, in case a CRL was being issued in between).
	waitUntil(t, "the target's CRL is the one served", func() bool {
		r, err := c.Search(ldap.NewSearchRequest(pubCADN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
			[]string{"certificateRevocationList;binary"}, nil))
		if err != nil || len(r.Entries) != 1 {
			return false
		}
		vals := r.Entries[0].GetRawAttributeValues("certificateRevocationList;binary")
		resp, err := http.Get("http://" + s.http + "/crl/demo.crl")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		served, _ := io.ReadAll(resp.Body)
		return len(vals) == 1 && bytes.Equal(vals[0], served)
	}, s.log)
	r, _ := c.Search(ldap.NewSearchRequest(pubCADN, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)",
		[]string{"certificateRevocationList;binary"}, nil))
	l, err := x509.ParseRevocationList(r.Entries[0].GetRawAttributeValue("certificateRevocationList;binary"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, e := range l.RevokedCertificateEntries {
		listed[strings.TrimLeft(hex.EncodeToString(e.SerialNumber.Bytes()), "0")] = true
	}
	for serial, sp := range certs {
		if sp[0] == "revoked" && !listed[serial] {
			t.Errorf("revoked %s is not in the target's CRL %d", serial, l.Number)
		}
	}
}

// TestPublishQueueSurvivesSIGKILL is issue #13's "SIGKILL certcenter with a
// queue pending → after restart all are delivered", with the real binary:
// changes made through the API while the target is down are queued in the
// store's change log; certcenter is killed with SIGKILL; after the target
// and certcenter are started again every change arrives, each value once.
// Then a kill in the middle of a delivery: the batch that was being
// written is written again, which leaves the target as one delivery would.
func TestPublishQueueSurvivesSIGKILL(t *testing.T) {
	ldapd := slapdtest.Start(t, slapdtest.Options{Suffix: "o=test", RootDN: pubRootDN, RootPW: pubRootPW,
		Entries: []slapd.Entry{
			{DN: "o=test", Attrs: map[string][]string{"objectClass": {"organization"}, "o": {"test"}}},
			{DN: pubBase, Attrs: map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"pki"}}},
		}})
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if out, err := run(t, "seed", "--data", data, "--count", "20", "--revoked-fraction", "0"); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "certcenter.yaml")
	os.WriteFile(cfg, []byte(`publish:
  max_backoff: 1s
  targets:
    - name: his
      urls: [`+ldapd.URL()+`]
      bind_dn: `+pubRootDN+`
      password_env: CC_TEST_PUBLISH_PW
      base_dn: `+pubBase+`
      connect_timeout: 2s
      timeout: 5s
      publish:
        profiles: [personal-signing, cert-admin]
`), 0o600)
	published := map[string]bool{"personal-signing": true, "cert-admin": true}

	s := servePublishing(t, data, cfg)
	s.waitDrained(t)
	checkTarget(t, ldapd, s, published)

	// The target goes down; revocations and issuance through the API queue.
	ldapd.Stop()
	out, err := s.client(t, "cert", "list", "--status", "valid")
	if err != nil {
		t.Fatalf("cert list: %v\n%s", err, out)
	}
	seeded := regexp.MustCompile(`(?m)^([0-9a-f]{40})\s+valid\s+personal-signing\b`).FindAllStringSubmatch(out, -1)
	if len(seeded) < 20 {
		t.Fatalf("%d seeded certificates listed:\n%s", len(seeded), out)
	}
	for _, m := range seeded[:5] {
		if out, err := s.client(t, "cert", "revoke", m[1], "--reason", "keyCompromise"); err != nil {
			t.Fatalf("cert revoke: %v\n%s", err, out)
		}
	}
	if out, err := s.client(t, "org", "add", "hospital", "--name", "City Hospital"); err != nil {
		t.Fatalf("org add: %v\n%s", err, out)
	}
	creds := t.TempDir()
	for i := range 3 {
		if out, err := s.client(t, "org", "add-admin", "hospital", "--id", fmt.Sprintf("admin%d", i), "--name", fmt.Sprintf("Admin %d", i), "--out", creds); err != nil {
			t.Fatalf("org add-admin: %v\n%s", err, out)
		}
	}
	// 5 revocations, 3 issuances and at least one new CRL
	waitUntil(t, "the changes queued", func() bool { p, _, c := s.target(t); return !c && p >= 8 }, s.log)
	diag, err := s.client(t, "diag", "targets")
	if err != nil || !strings.Contains(diag, "his  disconnected") {
		t.Errorf("diag targets while the target is down: %v\n%s", err, diag)
	}
	t.Logf("before the kill: %s", diag)
	s.kill(t)

	if err := ldapd.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s = servePublishing(t, data, cfg)
	s.waitDrained(t)
	checkTarget(t, ldapd, s, published)

	// A kill while a backlog is being written: 2 000 certificates seeded
	// offline are delivered after the restart; kill -9 once some arrived.
	s.kill(t)
	if out, err := run(t, "seed", "--data", data, "--count", "2000", "--revoked-fraction", "0.01"); err != nil {
		t.Fatalf("seed: %v\n%s", err, out)
	}
	s = servePublishing(t, data, cfg)
	var pending, delivered float64
	waitUntil(t, "delivery under way", func() bool {
		var c bool
		pending, delivered, c = s.target(t)
		return delivered > 0 || (c && pending == 0)
	}, s.log)
	s.kill(t)
	t.Logf("killed with %.0f records of the backlog delivered", delivered)
	if delivered == 0 {
		t.Log("the backlog was delivered before the kill: the restart below delivers nothing new")
	}
	s = servePublishing(t, data, cfg)
	s.waitDrained(t)
	checkTarget(t, ldapd, s, published)
}
