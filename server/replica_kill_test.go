package server

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/replica"
	"github.com/certcenter/certcenter/store"
)

const killChildEnv = "CERTCENTER_TEST_REPLICA_KILL_CHILD"

// killNode is one certcenter process of TestReplicaProcessesKilled: its
// data directory, role and loopback ports (HTTP, API, NATS client and
// route), and the route ports of the other two.
type killNode struct {
	Dir, Role, Name          string
	HTTP, API, Client, Route int
	Routes                   []int
	cmd                      *exec.Cmd
	log                      *os.File
	exited                   chan struct{}
}

func (n *killNode) config() *config.Config {
	cfg := config.Default()
	cfg.DataDir = n.Dir
	cfg.HTTP.Addr = fmt.Sprintf("127.0.0.1:%d", n.HTTP)
	cfg.API.Addr = fmt.Sprintf("127.0.0.1:%d", n.API)
	cfg.LDAP.Addr, cfg.LDAP.LDAPSAddr = "", ""
	cfg.Store.SyncWrites = true // what the API reported done must survive SIGKILL
	cfg.CRL.DeltaDelay = config.Duration(100 * time.Millisecond)
	cfg.Replica.Role, cfg.Replica.Name = n.Role, n.Name
	cfg.NATS.Embedded, cfg.NATS.ServerName = true, n.Name
	cfg.NATS.Listen = fmt.Sprintf("127.0.0.1:%d", n.Client)
	cfg.NATS.ClusterListen = fmt.Sprintf("127.0.0.1:%d", n.Route)
	for _, r := range n.Routes {
		cfg.NATS.Routes = append(cfg.NATS.Routes, fmt.Sprintf("nats-route://127.0.0.1:%d", r))
	}
	return cfg
}

func (n *killNode) base() string { return fmt.Sprintf("http://127.0.0.1:%d", n.HTTP) }

// TestReplicaKillChild is one node of TestReplicaProcessesKilled: it
// serves until it is killed.
func TestReplicaKillChild(t *testing.T) {
	spec := os.Getenv(killChildEnv)
	if spec == "" {
		t.Skip("run by TestReplicaProcessesKilled")
	}
	var n killNode
	if err := json.Unmarshal([]byte(spec), &n); err != nil {
		t.Fatal(err)
	}
	cfg := n.config()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s, err := Start(ctx, cfg, log)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	select { // SIGKILL is the point; SIGTERM only cleans up after the test
	case <-sig:
	case <-time.After(5 * time.Minute):
	}
	s.Stop(context.Background())
}

// start runs the node in a child process (this test binary, re-executed),
// its output appended to a log file in its directory's parent.
func (n *killNode) start(t *testing.T) {
	t.Helper()
	spec, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	if n.log == nil {
		if n.log, err = os.Create(filepath.Join(filepath.Dir(n.Dir), n.Name+".log")); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Fprintf(n.log, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaKillChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), killChildEnv+"="+string(spec))
	cmd.Stdout, cmd.Stderr = n.log, n.log
	// A test that dies does not leave its nodes running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(n.exited)
}

// kill sends SIGKILL and waits for the process to be gone.
func (n *killNode) kill(t *testing.T) {
	t.Helper()
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-n.exited
	fmt.Fprintf(n.log, "---- SIGKILL %s\n", time.Now().Format(time.RFC3339Nano))
}

func (n *killNode) stop() {
	if n.cmd == nil {
		return
	}
	select {
	case <-n.exited:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
	case <-time.After(20 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
}

// httpStatus is GET url's status, 0 when the request fails.
func httpStatus(c *http.Client, url string) (int, string) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReadyFor(t *testing.T, base string, d time.Duration) {
	t.Helper()
	var code int
	var body string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if code, body = httpStatus(http.DefaultClient, base+"/readyz"); code == 200 {
			return
		}
	}
	t.Fatalf("%s/readyz not 200 within %s: %d %s", base, d, code, body)
}

// ocspGETPath is the OCSP GET path of serial (SHA-1 CertID).
func ocspGETPath(t *testing.T, issuer *x509.Certificate, serial []byte) string {
	req, err := xocsp.CreateRequest(&x509.Certificate{SerialNumber: new(big.Int).SetBytes(serial)}, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	return "/ocsp/" + strings.ReplaceAll(base64.StdEncoding.EncodeToString(req), "/", "%2F")
}

// TestReplicaProcessesKilled runs the kill -9 cases with real
// processes: a primary and two replicas, each a child process with an
// embedded NATS server, the three forming one cluster on loopback.
//
//   - A replica killed with SIGKILL under OCSP load, while revocations go
//     on at the primary, restarts on the same data directory, turns ready
//     and serves every revocation (OCSP and the full CRL); after it turned
//     ready it answers every request of the load.
//   - The other replica's process, a third of the NATS cluster, killed
//     with SIGKILL: the stream (replication factor 3) keeps its 2-of-3
//     quorum, a revocation on the primary reaches the surviving replica,
//     and both survivors stay ready throughout.
func TestReplicaProcessesKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three certcenter processes forming a NATS cluster")
	}
	if os.Getenv(killChildEnv) != "" {
		t.Skip("a child")
	}
	root := t.TempDir()
	nodes := make([]*killNode, 3)
	ports := freeTCPPorts(t, 12)
	for i, role := range []string{"primary", "replica", "replica"} {
		p := ports[4*i:]
		nodes[i] = &killNode{Dir: filepath.Join(root, fmt.Sprintf("n%d", i)), Role: role, Name: fmt.Sprintf("n%d", i),
			HTTP: p[0], API: p[1], Client: p[2], Route: p[3]}
	}
	for i, n := range nodes {
		for j, o := range nodes {
			if i != j {
				n.Routes = append(n.Routes, o.Route)
			}
		}
	}
	primary, r1, r2 := nodes[0], nodes[1], nodes[2]
	t.Cleanup(func() {
		for _, n := range nodes {
			n.stop()
		}
		// The race detector and panics in a child show only in its log.
		for _, n := range nodes {
			if b, err := os.ReadFile(n.log.Name()); err == nil {
				for _, bad := range []string{"WARNING: DATA RACE", "panic:", "--- FAIL"} {
					if strings.Contains(string(b), bad) {
						t.Errorf("%s's log holds %q", n.Name, bad)
					}
				}
			}
		}
		if t.Failed() {
			for _, n := range nodes {
				if b, err := os.ReadFile(n.log.Name()); err == nil {
					t.Logf("---- log of %s:\n%s", n.Name, lastLines(string(b), 150))
				}
			}
		}
	})

	ctx := context.Background()
	pcfg := primary.config()
	if _, err := Seed(ctx, pcfg, slog.New(slog.DiscardHandler), seedOptions(40, 0)); err != nil {
		t.Fatal(err)
	}
	serials, issuer := killSerials(t, pcfg)
	for _, n := range nodes {
		n.start(t)
	}
	for _, n := range nodes {
		waitReadyFor(t, n.base(), 60*time.Second)
	}
	api := adminClient(t, primary.Dir)
	revoke := func(serial []byte) {
		t.Helper()
		resp, err := api.Post(fmt.Sprintf("https://127.0.0.1:%d/api/v1/certs/%x/revoke", primary.API, serial), "application/json", strings.NewReader(`{"reason":"keyCompromise"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("revoking %x: %d %s", serial, resp.StatusCode, b)
		}
	}
	status := func(n *killNode, serial []byte) int {
		code, body := httpStatus(http.DefaultClient, n.base()+ocspGETPath(t, issuer, serial))
		if code != 200 {
			return -1
		}
		r, err := xocsp.ParseResponse([]byte(body), issuer)
		if err != nil {
			return -1
		}
		return r.Status
	}
	fullCRL := crlscope.Complete(pcfg.CA.Name).File()
	inCRL := func(n *killNode, serial []byte) bool {
		code, body := httpStatus(http.DefaultClient, n.base()+crlscope.HTTPPath+fullCRL)
		return code == 200 && crlListsSerial(t, []byte(body), serial)
	}
	for _, n := range nodes[1:] {
		replEventually(t, 20*time.Second, n.Name+" serves the seeded certificates", func() bool { return status(n, serials[0]) == xocsp.Good })
	}

	t.Run("stream is replicated on all three nodes", func(t *testing.T) {
		info := killStreamInfo(t, pcfg, primary.Client)
		if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: replication factor %d, cluster %+v; want 3 (a leader and two peers)", pcfg.Replica.Stream, info.Config.Replicas, info.Cluster)
		}
		t.Logf("stream leader %s", info.Cluster.Leader)
	})

	t.Run("replica killed under load restarts and catches up", func(t *testing.T) {
		var ready atomic.Bool // set once the restarted replica reports ready
		var okAfter, badAfter atomic.Int64
		var firstBad atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				c := &http.Client{Timeout: 5 * time.Second}
				r := rand.New(rand.NewPCG(uint64(w), 1))
				for {
					select {
					case <-stop:
						return
					default:
					}
					wasReady := ready.Load()
					code, body := httpStatus(c, r1.base()+ocspGETPath(t, issuer, serials[r.IntN(len(serials))]))
					switch {
					case !wasReady:
						if code == 0 {
							time.Sleep(10 * time.Millisecond) // down: do not spin
						}
					case code == 200:
						okAfter.Add(1)
					default:
						badAfter.Add(1)
						firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %q", code, body))
					}
				}
			})
		}
		time.Sleep(500 * time.Millisecond) // the load is on before the kill
		r1.kill(t)
		down := serials[1:6]
		for _, s := range down {
			revoke(s)
		}
		r1.start(t)
		waitReadyFor(t, r1.base(), 60*time.Second)
		ready.Store(true)
		for _, s := range down {
			replEventually(t, 20*time.Second, fmt.Sprintf("restarted replica: OCSP and the full CRL show %x revoked", s), func() bool {
				return status(r1, s) == xocsp.Revoked && inCRL(r1, s)
			})
		}
		time.Sleep(500 * time.Millisecond) // more load on the caught-up replica
		close(stop)
		wg.Wait()
		if okAfter.Load() == 0 {
			t.Error("the load got no OCSP response from the restarted replica")
		}
		if n := badAfter.Load(); n > 0 {
			t.Errorf("%d OCSP requests failed after the restarted replica turned ready; first: %v", n, firstBad.Load())
		}
	})

	t.Run("losing a replica's process and its NATS node stops nothing", func(t *testing.T) {
		// The primary stays ready throughout. The surviving replica may
		// say it is not ready while the elections hold a revocation back
		// from it (it is behind the stream then: that is what its
		// /readyz is for), and must be ready again once it has caught up.
		var notReady, replicaNotReady atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, n := range []*killNode{primary, r1} {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if code, body := httpStatus(http.DefaultClient, n.base()+"/readyz"); code != 200 {
						v := fmt.Sprintf("%s at %s: %d %s", n.Name, time.Now().Format("15:04:05.000"), code, body)
						if n == primary {
							notReady.CompareAndSwap(nil, v)
						} else {
							replicaNotReady.CompareAndSwap(nil, v)
						}
					}
				}
			})
		}
		// The worst case: the node killed leads the stream and the
		// surviving replica's consumer (moving the meta group's leader
		// needs the system account, which the embedded servers lack).
		leadersOn(t, pcfg, primary.Client, r2.Name,
			"$JS.API.STREAM.LEADER.STEPDOWN."+pcfg.Replica.Stream,
			"$JS.API.CONSUMER.LEADER.STEPDOWN."+pcfg.Replica.Stream+".replica-"+r1.Name)
		// One node lost of three keeps a quorum only when the other two
		// are current: the replica restarted above must have caught up
		// with the stream's Raft group first (as an operator waits before
		// taking the next machine down).
		replEventually(t, 60*time.Second, "every stream peer current", func() bool {
			info, err := tryStreamInfo(pcfg, primary.Client, 5*time.Second)
			if err != nil || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
				return false
			}
			for _, p := range info.Cluster.Replicas {
				if !p.Current || p.Lag > 0 {
					return false
				}
			}
			return true
		})
		r2.kill(t)
		// One revocation at once (the stream may be electing a new
		// leader), one after the cluster settled.
		// The first waits for the elections: the stream's and the
		// consumer's Raft groups (and the meta group, if it led it) each
		// elect within seconds, the publisher's and the follower's retries
		// come on top.
		for i, s := range serials[6:8] {
			begin := time.Now()
			revoke(s)
			for deadline := time.Now().Add([]time.Duration{30 * time.Second, 10 * time.Second}[i]); status(r1, s) != xocsp.Revoked || !inCRL(r1, s); time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("surviving replica: OCSP and the full CRL do not show %x revoked after %s; %s", s, time.Since(begin).Round(time.Millisecond), killDiagnosis(t, pcfg, primary.Client, "replica-"+r1.Name))
				}
			}
			t.Logf("revocation %d after the kill reached the surviving replica in %s", i+1, time.Since(begin).Round(10*time.Millisecond))
			time.Sleep(2 * time.Second)
		}
		close(stop)
		wg.Wait()
		if v := notReady.Load(); v != nil {
			t.Errorf("the primary was not ready after the kill: %v", v)
		}
		if v := replicaNotReady.Load(); v != nil {
			t.Logf("the surviving replica was not ready for a while during the elections: first %v", v)
		}
		replEventually(t, 10*time.Second, "surviving replica ready again", func() bool {
			code, _ := httpStatus(http.DefaultClient, r1.base()+"/readyz")
			return code == 200
		})
		info := killStreamInfo(t, pcfg, primary.Client)
		t.Logf("stream leader %s after the kill", info.Cluster.Leader)
	})
}

// killSerials reads the seeded subscribers' serials and the CA certificate
// from the primary's store before it runs.
func killSerials(t *testing.T, cfg *config.Config) ([][]byte, *x509.Certificate) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var serials [][]byte
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if c.SubscriberID != "" && c.Status == store.StatusValid {
				serials = append(serials, c.Serial)
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	if len(serials) < 10 {
		t.Fatalf("%d seeded certificates", len(serials))
	}
	return serials, readCert(t, filepath.Join(cfg.DataDir, bootstrap.CACert))
}

func killStreamInfo(t *testing.T, cfg *config.Config, client int) *jetstream.StreamInfo {
	t.Helper()
	info, err := tryStreamInfo(cfg, client, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// tryStreamInfo is the stream's description, or why the cluster does not
// give it now (after a node's SIGKILL and restart, nats-server's meta
// layer may take tens of seconds to answer again).
func tryStreamInfo(cfg *config.Config, client int, wait time.Duration) (*jetstream.StreamInfo, error) {
	ncfg := cfg.NATS
	ncfg.Embedded, ncfg.URL = false, fmt.Sprintf("nats://127.0.0.1:%d", client)
	nc, err := replica.Connect(ncfg, nil, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	st, err := js.Stream(ctx, cfg.Replica.Stream)
	if err != nil {
		return nil, err
	}
	return st.Info(ctx)
}

func lastLines(s string, n int) string {
	var lines []string
	for l := range strings.SplitSeq(strings.TrimRight(s, "\n"), "\n") {
		if !strings.Contains(l, "Error trying to connect to route") { // a killed node's peers retry every second
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// leadersOn moves the leadership of the JetStream meta group, a stream or
// a consumer (the stepdown API subjects given) to the server named name:
// a stepdown with that server preferred, retried until it leads.
func leadersOn(t *testing.T, cfg *config.Config, client int, name string, subjects ...string) {
	t.Helper()
	ncfg := cfg.NATS
	ncfg.Embedded, ncfg.URL = false, fmt.Sprintf("nats://127.0.0.1:%d", client)
	nc, err := replica.Connect(ncfg, nil, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	body := []byte(`{"placement":{"preferred":"` + name + `"}}`)
	for _, subj := range subjects {
		var last string
		for deadline := time.Now().Add(60 * time.Second); ; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s does not lead: %s", subj, name, last)
			}
			m, err := nc.Request(subj, body, 5*time.Second)
			if err != nil {
				last = err.Error()
				time.Sleep(200 * time.Millisecond)
				continue
			}
			var res struct {
				Success bool `json:"success"`
				Error   *struct {
					Description string `json:"description"`
				} `json:"error"`
			}
			json.Unmarshal(m.Data, &res)
			if res.Success {
				break
			}
			last = string(m.Data)
			// Already leading: the stepdown is refused.
			if strings.Contains(last, "already") || strings.Contains(last, "preferred server") {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The stream's leader is where the tests expects it once the
	// election settled.
	replEventually(t, 60*time.Second, "stream leader on "+name, func() bool {
		info, err := tryStreamInfo(cfg, client, 5*time.Second)
		return err == nil && info.Cluster != nil && info.Cluster.Leader == name
	})
}

// killDiagnosis describes the stream and a consumer for a failure message.
func killDiagnosis(t *testing.T, cfg *config.Config, client int, consumer string) string {
	ncfg := cfg.NATS
	ncfg.Embedded, ncfg.URL = false, fmt.Sprintf("nats://127.0.0.1:%d", client)
	nc, err := replica.Connect(ncfg, nil, "test", slog.New(slog.DiscardHandler))
	if err != nil {
		return err.Error()
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, cfg.Replica.Stream)
	if err != nil {
		return "stream: " + err.Error()
	}
	out := fmt.Sprintf("stream: last seq %d", st.CachedInfo().State.LastSeq)
	if c := st.CachedInfo().Cluster; c != nil {
		out += " leader " + c.Leader
		for _, p := range c.Replicas {
			out += fmt.Sprintf(" peer %s current %v lag %d", p.Name, p.Current, p.Lag)
		}
	}
	ci, err := js.Consumer(ctx, cfg.Replica.Stream, consumer)
	if err != nil {
		return out + "; consumer: " + err.Error()
	}
	info := ci.CachedInfo()
	out += fmt.Sprintf("; consumer %s: delivered %d ack floor %d pending %d waiting %d", consumer, info.Delivered.Stream, info.AckFloor.Stream, info.NumPending, info.NumWaiting)
	if info.Cluster != nil {
		out += " leader " + info.Cluster.Leader
	}
	return out
}
