package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/nats-io/nats.go/jetstream"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/replica"
	"github.com/certcenter/certcenter/store"
)

// freeTCPPorts is freeAddrs as port numbers.
func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i, a := range freeAddrs(t, n) {
		addr, err := netip.ParseAddrPort(a)
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = int(addr.Port())
	}
	return ports
}

// replicaCluster is a primary and two replicas, each with an embedded
// NATS server, the three forming one cluster.
type replicaCluster struct {
	primaryCfg *config.Config
	primary    *Server
	replicas   []*Server
	replCfgs   []*config.Config
	clientURLs []string
}

func nodeConfig(t *testing.T, role, name string, client, route int, routes []int) *config.Config {
	cfg := testConfig(t)
	cfg.LDAP.Addr = "127.0.0.1:0"
	cfg.CRL.DeltaDelay = config.Duration(100 * time.Millisecond)
	cfg.Replica.Role, cfg.Replica.Name = role, name
	cfg.Replica.MaxLag = config.Duration(5 * time.Second)
	cfg.NATS.Embedded, cfg.NATS.ServerName = true, name
	cfg.NATS.Listen = fmt.Sprintf("127.0.0.1:%d", client)
	cfg.NATS.ClusterListen = fmt.Sprintf("127.0.0.1:%d", route)
	for _, r := range routes {
		cfg.NATS.Routes = append(cfg.NATS.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", r))
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startCluster(t *testing.T, seeded int) *replicaCluster {
	t.Helper()
	var client, route [3]int
	ports := freeTCPPorts(t, 6)
	for i := range 3 {
		client[i], route[i] = ports[2*i], ports[2*i+1]
	}
	rc := &replicaCluster{}
	others := func(i int) []int {
		var o []int
		for j := range 3 {
			if j != i {
				o = append(o, route[j])
			}
		}
		return o
	}
	rc.primaryCfg = nodeConfig(t, "primary", "n0", client[0], route[0], others(0))
	if _, err := Seed(context.Background(), rc.primaryCfg, slog.New(slog.DiscardHandler), seedOptions(seeded, 0)); err != nil {
		t.Fatal(err)
	}
	rc.primary = startReplTest(t, rc.primaryCfg)
	rc.replCfgs = []*config.Config{nodeConfig(t, "replica", "n1", client[1], route[1], others(1)), nodeConfig(t, "replica", "n2", client[2], route[2], others(2))}
	rc.replicas = make([]*Server, 2)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			rc.replicas[i], errs[i] = Start(ctx, rc.replCfgs[i], testLog(t))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		s := rc.replicas[i]
		t.Cleanup(func() { s.Stop(context.Background()) })
	}
	for i := range 3 {
		rc.clientURLs = append(rc.clientURLs, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	return rc
}

// issuer is the primary's CA certificate.
func (rc *replicaCluster) issuer(t *testing.T) (string, *x509.Certificate) {
	iss := rc.primary.c.core.ca.Issuers()[0]
	return iss.Name, iss.Cert
}

func certsOf(t *testing.T, s *Server) []*store.Cert {
	t.Helper()
	var out []*store.Cert
	if err := s.c.core.store.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if c.SubscriberID != "" {
				out = append(out, c)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// ocspBytes asks s for serial's OCSP response (GET, SHA-1 CertID).
func ocspBytes(t *testing.T, s *Server, issuer *x509.Certificate, serial []byte) []byte {
	t.Helper()
	leaf := &x509.Certificate{SerialNumber: new(big.Int).SetBytes(serial)}
	req, err := xocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + s.Addr("http") + "/ocsp/" + base64.StdEncoding.EncodeToString(req))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil
	}
	return b
}

func ocspStatus(t *testing.T, s *Server, issuer *x509.Certificate, serial []byte) int {
	b := ocspBytes(t, s, issuer, serial)
	if b == nil {
		return -1
	}
	r, err := xocsp.ParseResponse(b, issuer)
	if err != nil {
		return -1 // tryLater and the like
	}
	return r.Status
}

func replCRLBytes(s *Server, file string) []byte {
	resp, err := http.Get("http://" + s.Addr("http") + "/crl/" + file)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil
	}
	return b
}

func crlListsSerial(t *testing.T, b []byte, serial []byte) bool {
	if b == nil {
		return false
	}
	l, err := x509.ParseRevocationList(b)
	if err != nil {
		t.Fatal(err)
	}
	want := new(big.Int).SetBytes(serial)
	for _, e := range l.RevokedCertificateEntries {
		if e.SerialNumber.Cmp(want) == 0 {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds or the deadline passes.
func replEventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// revokedEverywhere waits until every server answers revoked for serial by
// OCSP and lists it in the complete and the delta CRL.
func revokedEverywhere(t *testing.T, rc *replicaCluster, servers []*Server, serial []byte, d time.Duration) {
	t.Helper()
	name, issuer := rc.issuer(t)
	full, delta := crlscope.Complete(name).File(), crlscope.Complete(name).DeltaCRL().File()
	for i, s := range servers {
		replEventually(t, d, fmt.Sprintf("server %d: OCSP and CRLs show %x revoked", i, serial), func() bool {
			return ocspStatus(t, s, issuer, serial) == xocsp.Revoked && crlListsSerial(t, replCRLBytes(s, full), serial) && crlListsSerial(t, replCRLBytes(s, delta), serial)
		})
	}
}

func replRevoke(t *testing.T, s *Server, serial []byte) {
	t.Helper()
	if _, err := s.c.core.ca.Revoke(context.Background(), serial, ca.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
}

// streamIDs lists the Nats-Msg-Id of every message in the stream.
func streamIDs(t *testing.T, urls string, cfg *config.Config) []uint64 {
	t.Helper()
	ncfg := cfg.NATS
	ncfg.Embedded, ncfg.URL = false, urls
	nc, err := replica.Connect(ncfg, nil, "test", testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, cfg.Replica.Stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := strconv.ParseUint(m.Header.Get("Nats-Msg-Id"), 10, 64)
		ids = append(ids, id)
	}
	return ids
}

// TestReplicas runs the scenarios on one loopback cluster, in
// order: the cluster is slow to form, so it is formed once.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("forms a 3-node NATS cluster")
	}
	top := t // servers started in subtests outlive them
	rc := startCluster(t, 40)
	certs := certsOf(t, rc.primary)
	all := []*Server{rc.primary, rc.replicas[0], rc.replicas[1]}
	_, issuer := rc.issuer(t)
	for _, s := range all {
		waitReady(t, "http://"+s.Addr("http"))
	}

	t.Run("revocation reaches both replicas", func(t *testing.T) {
		// Before: good everywhere (replicas bootstrapped from the snapshot).
		for _, s := range all[1:] {
			replEventually(t, 10*time.Second, "replica serves the seeded certificate", func() bool {
				return ocspStatus(t, s, issuer, certs[0].Serial) == xocsp.Good
			})
		}
		replRevoke(t, rc.primary, certs[0].Serial)
		revokedEverywhere(t, rc, all, certs[0].Serial, 10*time.Second)
		// A replica holds no key: an unknown serial is unauthorized,
		// not signed live.
		if st := ocspStatus(t, rc.replicas[0], issuer, []byte{0x7f, 1, 2, 3}); st == xocsp.Good || st == xocsp.Revoked {
			t.Fatalf("replica answered status %d for an unknown serial", st)
		}
	})

	t.Run("crash between commit and publish is repaired exactly once", func(t *testing.T) {
		if err := rc.primary.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		// Offline, as if the process died after the commit: revoke
		// without a publisher, and wind the cursor back as if the last
		// published entries had not been recorded.
		core, err := openCore(context.Background(), rc.primaryCfg, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		core.store.ReplicateWrites(replicatedBlobs...)
		if err := core.ca.Load(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := core.ca.Revoke(context.Background(), certs[1].Serial, ca.ReasonKeyCompromise); err != nil {
			t.Fatal(err)
		}
		if err := core.store.Update(context.Background(), func(tx *store.Tx) error {
			c, _, err := tx.Cursor(replica.CursorName)
			if err != nil {
				return err
			}
			return tx.SetCursor(replica.CursorName, c-3)
		}); err != nil {
			t.Fatal(err)
		}
		core.Close()
		rc.primary = startReplTest(top, rc.primaryCfg)
		all[0] = rc.primary
		revokedEverywhere(t, rc, all, certs[1].Serial, 20*time.Second)
		ids := streamIDs(t, rc.clientURLs[1], rc.primaryCfg)
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				t.Fatalf("stream message %d has entry %d after %d: published twice or out of order", i, ids[i], ids[i-1])
			}
		}
	})

	t.Run("replica restarted under load catches up", func(t *testing.T) {
		if err := rc.replicas[0].Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, c := range certs[2:12] {
			replRevoke(t, rc.primary, c.Serial)
		}
		done := make(chan struct{})
		go func() { // more revocations while it starts
			defer close(done)
			for _, c := range certs[12:20] {
				rc.primary.c.core.ca.Revoke(context.Background(), c.Serial, ca.ReasonKeyCompromise)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := Start(ctx, rc.replCfgs[0], testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		top.Cleanup(func() { s.Stop(context.Background()) })
		rc.replicas[0] = s
		all[1] = s
		<-done
		revokedEverywhere(t, rc, all[1:2], certs[19].Serial, 20*time.Second)
		for _, c := range certs[2:20] {
			if st := ocspStatus(t, s, issuer, c.Serial); st != xocsp.Revoked {
				t.Fatalf("%x: status %d on the restarted replica", c.Serial, st)
			}
		}
	})

	t.Run("fresh replica bootstraps while revocations continue and ends identical", func(t *testing.T) {
		cfg := testConfig(top)
		cfg.LDAP.Addr = "127.0.0.1:0"
		cfg.Replica.Role, cfg.Replica.Name = "replica", "fresh"
		cfg.NATS.URL = rc.clientURLs[0] + "," + rc.clientURLs[1]
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, c := range certs[20:30] {
				rc.primary.c.core.ca.Revoke(context.Background(), c.Serial, ca.ReasonKeyCompromise)
				time.Sleep(10 * time.Millisecond)
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s, err := Start(ctx, cfg, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		top.Cleanup(func() { s.Stop(context.Background()) })
		waitReady(t, "http://"+s.Addr("http"))
		<-done
		name, _ := rc.issuer(t)
		files := []string{crlscope.Complete(name).File(), crlscope.Complete(name).DeltaCRL().File()}
		replEventually(t, 20*time.Second, "fresh replica's CRLs and OCSP responses equal the primary's", func() bool {
			for _, f := range files {
				if p := replCRLBytes(rc.primary, f); p == nil || !bytes.Equal(p, replCRLBytes(s, f)) {
					return false
				}
			}
			for _, c := range certs[:30] {
				if p := ocspBytes(t, rc.primary, issuer, c.Serial); p == nil || !bytes.Equal(p, ocspBytes(t, s, issuer, c.Serial)) {
					return false
				}
			}
			return true
		})
		for _, c := range certs[:5] {
			if a, b := ldapEntries(t, rc.primary, c.CommonName), ldapEntries(t, s, c.CommonName); a != b || a == "" {
				t.Fatalf("directory entry of %s differs:\nprimary %s\nreplica %s", c.CommonName, a, b)
			}
		}
	})

	t.Run("losing a NATS node stops nothing", func(t *testing.T) {
		rc.replicas[1].c.nats.emb.Shutdown() // the node inside replica n2
		replRevoke(t, rc.primary, certs[35].Serial)
		revokedEverywhere(t, rc, all, certs[35].Serial, 20*time.Second)
		for _, s := range all {
			waitReady(t, "http://"+s.Addr("http"))
		}
	})
}

// ldapEntries is the anonymous search result for cn, printed.
func ldapEntries(t *testing.T, s *Server, cn string) string {
	t.Helper()
	conn, err := ldap.DialURL("ldap://" + s.Addr("ldap"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"namingContexts"}, nil))
	if err != nil || len(res.Entries) == 0 {
		t.Fatalf("rootDSE: %v", err)
	}
	base := res.Entries[0].GetAttributeValue("namingContexts")
	res, err = conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, "(cn="+ldap.EscapeFilter(cn)+")", nil, nil))
	if err != nil {
		t.Fatalf("search %s: %v", cn, err)
	}
	var b bytes.Buffer
	for _, e := range res.Entries {
		fmt.Fprintf(&b, "%s\n", e.DN)
		for _, a := range e.Attributes {
			fmt.Fprintf(&b, "  %s: %d values %x\n", a.Name, len(a.ByteValues), a.ByteValues)
		}
	}
	return b.String()
}

// testLog shows warnings in the test's output (-v) for diagnosis.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(b, "\n")))
	return len(b), nil
}

func startReplTest(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	s, err := Start(context.Background(), cfg, testLog(t))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	return s
}
