// Command replica measures read replicas (package replica) against the
// binary: a primary with an embedded NATS server and one replica on the
// same machine, both subprocesses on loopback.
//
//	go build -o /tmp/cc ./cmd/certcenter
//	go run ./bench/replica -certcenter /tmp/cc -seeded /tmp/seed100k -revokes 1000 -rounds 3
//
// It copies a seeded data directory (certcenter seed) for the primary,
// starts it with --role primary, then:
//
//  1. bootstrap: a replica on an empty data directory (it runs the NATS
//     server, so it outlives the primary in step 3) waits for the primary's
//     first snapshot; timed from the snapshot's storing to the replica's
//     /readyz 200 (fetching it from the object store, loading it into
//     Badger, catching up);
//  2. lag: revokes -revokes certificates through the admin API with 8
//     concurrent clients and reads the replica's apply-delay histogram
//     (primary commit to replica commit of each change-log entry) for
//     p50/p99, and the time until the replica has applied everything;
//  3. OCSP: stops the primary, starts the all-in-one server (no role) on
//     its data directory, and measures OCSP GET requests/s of the replica
//     and of the all-in-one server in alternating rounds, with RssAnon and
//     RssFile of both.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/store"
)

type flags struct {
	bin, seeded, work  string
	profile            string
	revokes, rounds    int
	duration           time.Duration
	conns, samplePaths int
}

func main() {
	var f flags
	flag.StringVar(&f.bin, "certcenter", "/tmp/cc", "certcenter binary")
	flag.StringVar(&f.seeded, "seeded", "", "data directory made by certcenter seed (copied, not changed)")
	flag.StringVar(&f.seeded, "data", "", "the same as -seeded (the name bench/ocsp uses)")
	flag.StringVar(&f.profile, "profile", "", "directory for CPU profiles of the replica and the all-in-one server during the first OCSP round (enables metrics.pprof)")
	flag.StringVar(&f.work, "work", "", "work directory (default: a temporary one)")
	flag.IntVar(&f.revokes, "revokes", 1000, "revocations in the burst")
	flag.IntVar(&f.rounds, "rounds", 3, "alternating OCSP rounds")
	flag.DurationVar(&f.duration, "duration", 10*time.Second, "one OCSP measurement")
	flag.IntVar(&f.conns, "conns", 16, "OCSP client connections (keep-alive)")
	flag.IntVar(&f.samplePaths, "paths", 20000, "distinct OCSP requests in the load")
	flag.Parse()
	if err := run(f); err != nil {
		log.Fatal(err)
	}
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}

type proc struct {
	name, dir, http, metrics string
	cmd                      *exec.Cmd
}

func writeConfig(path string, lines ...string) error {
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

func start(bin, name, dir, cfg string, role string) (*proc, error) {
	args := []string{"serve", "--config", cfg, "--data", dir}
	if role != "" {
		args = append(args, "--role", role)
	}
	cmd := exec.Command(bin, args...)
	logFile, err := os.Create(filepath.Join(filepath.Dir(dir), name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{name: name, dir: dir, cmd: cmd}, nil
}

func run(f flags) error {
	ctx := context.Background()
	if f.seeded == "" {
		return errors.New("-seeded (or -data) is required: a data directory made by certcenter seed --data DIR --count N")
	}
	work := f.work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "replica-bench"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	pdir, rdir := filepath.Join(work, "primary"), filepath.Join(work, "replica")
	if out, err := exec.Command("cp", "-a", f.seeded, pdir).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", f.seeded, err, out)
	}
	serials, caDER, n, err := readSerials(pdir, max(f.revokes, f.samplePaths))
	if err != nil {
		return err
	}
	issuer, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	ports, err := benchproc.FreePorts(8)
	if err != nil {
		return err
	}
	natsAddr := ports[0]
	pcfg, rcfg := filepath.Join(work, "primary.yaml"), filepath.Join(work, "replica.yaml")
	common := func(httpAddr, apiAddr, metrics string) []string {
		return []string{"log: {level: warn}", "store: {sync_writes: true}", "crl: {delta_delay: 100ms}",
			"http: {addr: \"" + httpAddr + "\"}", "api: {addr: \"" + apiAddr + "\"}",
			"ldap: {addr: \"\", ldaps_addr: \"\"}", "metrics: {addr: \"" + metrics + "\", pprof: " + strconv.FormatBool(f.profile != "") + "}"}
	}
	// The replica runs the (single) NATS server, so that stopping the
	// primary for the OCSP comparison leaves the replica healthy.
	if err := writeConfig(pcfg, append(common(ports[1], ports[2], ports[3]),
		"nats: {url: \"nats://"+natsAddr+"\"}",
		"replica: {replicas: 1, snapshot_interval: 6h}")...); err != nil {
		return err
	}
	if err := writeConfig(rcfg, append(common(ports[4], ports[5], ports[6]),
		"nats: {embedded: true, listen: \""+natsAddr+"\", server_name: replica}",
		"replica: {replicas: 1, name: bench, max_lag: 30s}")...); err != nil {
		return err
	}
	logf("%d certificates; starting the replica (it waits for a snapshot) and the primary", n)
	rep, err := start(f.bin, "replica", rdir, rcfg, "replica")
	if err != nil {
		return err
	}
	defer func() { benchproc.Stop(rep.cmd) }()
	prim, err := start(f.bin, "primary", pdir, pcfg, "primary")
	if err != nil {
		return err
	}
	defer benchproc.Stop(prim.cmd)
	if err := benchproc.WaitHTTP(ctx, "http://"+ports[1]+"/readyz", 10*time.Minute); err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	// 1. Bootstrap: from the primary's first snapshot (stored when its
	// publisher starts) to the replica's /readyz 200.
	if err := waitMetric(ports[3], "certcenter_replica_snapshot_seq", func(v float64) bool { return v > 0 }, 10*time.Minute); err != nil {
		return fmt.Errorf("primary's first snapshot: %w", err)
	}
	begin := time.Now()
	snapSecs, _ := metric(ports[3], "certcenter_replica_snapshot_seconds")
	if err := benchproc.WaitHTTP(ctx, "http://"+ports[4]+"/readyz", 30*time.Minute); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	boot := time.Since(begin)
	logf("snapshot written in %.1fs", snapSecs)
	logf("replica ready after %s; %s", boot.Round(time.Millisecond), benchproc.MemOf(rep.cmd.Process.Pid))
	fmt.Printf("bootstrap: %d certificates, snapshot written by the primary in %.1fs, replica ready %s after the snapshot was stored (fetched, loaded, caught up); replica %s, store %s; primary %s, store %s\n",
		n, snapSecs, boot.Round(time.Millisecond), benchproc.MemOf(rep.cmd.Process.Pid), dbFiles(rdir), benchproc.MemOf(prim.cmd.Process.Pid), dbFiles(pdir))

	// 2. Lag under a burst of revocations.
	before, err := histogram(ports[6], "certcenter_replica_apply_delay_seconds")
	if err != nil {
		return err
	}
	client, err := adminClient(pdir)
	if err != nil {
		return err
	}
	logf("revoking %d certificates", f.revokes)
	burst := time.Now()
	if err := revokeAll(client, "https://"+ports[2], serials[:f.revokes]); err != nil {
		return err
	}
	revoked := time.Since(burst)
	published, err := metric(ports[3], "certcenter_replica_published_seq")
	if err != nil {
		return err
	}
	if err := waitMetric(ports[6], "certcenter_replica_applied_seq", func(v float64) bool { return v >= published }, 5*time.Minute); err != nil {
		return err
	}
	caughtUp := time.Since(burst)
	after, err := histogram(ports[6], "certcenter_replica_apply_delay_seconds")
	if err != nil {
		return err
	}
	d := after.minus(before)
	fmt.Printf("lag: %d revocations in %s (%.0f/s through the admin API); %d change-log entries applied on the replica; apply delay p50 %s, p99 %s (histogram, interpolated); replica caught up %s after the first revocation\n",
		f.revokes, revoked.Round(time.Millisecond), float64(f.revokes)/revoked.Seconds(), int(d.count),
		dur(d.quantile(0.5)), dur(d.quantile(0.99)), caughtUp.Round(time.Millisecond))

	// 3. OCSP: the replica against the all-in-one server.
	benchproc.Stop(prim.cmd)
	aio, err := start(f.bin, "allinone", pdir, pcfg, "")
	if err != nil {
		return err
	}
	defer benchproc.Stop(aio.cmd)
	if err := benchproc.WaitHTTP(ctx, "http://"+ports[1]+"/readyz", 10*time.Minute); err != nil {
		return fmt.Errorf("all-in-one: %w", err)
	}
	paths, err := ocspPaths(issuer, serials[:min(len(serials), f.samplePaths)])
	if err != nil {
		return err
	}
	targets := []struct {
		name, addr, metrics string
		pid                 int
	}{{"replica", ports[4], ports[6], rep.cmd.Process.Pid}, {"all-in-one", ports[1], ports[3], aio.cmd.Process.Pid}}
	for _, t := range targets { // warm both caches
		load(t.addr, paths, f.conns, 3*time.Second)
	}
	var ratios []float64
	for r := range f.rounds {
		var rps [2]float64
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			var prof chan error
			if f.profile != "" && r == 0 {
				prof = make(chan error, 1)
				go func() {
					prof <- cpuProfile(targets[i].metrics, f.duration-time.Second, filepath.Join(f.profile, targets[i].name+".pprof"))
				}()
			}
			res := load(targets[i].addr, paths, f.conns, f.duration)
			if prof != nil {
				if err := <-prof; err != nil {
					return err
				}
			}
			rps[i] = res.rps
			fmt.Printf("ocsp round %d %-10s %8.0f req/s  p50 %s  p99 %s  errors %d  %s\n", r+1, targets[i].name, res.rps, res.p50, res.p99, res.errors, benchproc.MemOf(targets[i].pid))
		}
		ratios = append(ratios, rps[0]/rps[1])
	}
	fmt.Printf("stores after the rounds: replica %s; all-in-one %s\n", dbFiles(rdir), dbFiles(pdir))
	slices.Sort(ratios)
	fmt.Printf("ocsp replica/all-in-one ratio: median %.2fx, rounds %v\n", ratios[len(ratios)/2], ratios)
	return nil
}

// dbFiles sums the Badger tables and value logs of a data directory.
func dbFiles(dir string) string {
	var sst, vlog, nsst int64
	entries, _ := os.ReadDir(filepath.Join(dir, "db"))
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			continue
		}
		switch filepath.Ext(e.Name()) {
		case ".sst":
			nsst++
			sst += info.Size()
		case ".vlog":
			vlog += info.Size()
		}
	}
	return fmt.Sprintf("%d tables %d MB, value log %d MB", nsst, sst>>20, vlog>>20)
}

// cpuProfile saves a CPU profile of d from the pprof handler on a
// process's metrics listener.
func cpuProfile(metricsAddr string, d time.Duration, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", metricsAddr, int(d.Seconds())))
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("CPU profile: %s", resp.Status)
	}
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func dur(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return time.Duration(s * float64(time.Second)).Round(10 * time.Microsecond).String()
}

// readSerials reads up to n valid subscriber serials and the CA certificate.
func readSerials(dir string, n int) ([][]byte, []byte, int, error) {
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db")})
	if err != nil {
		return nil, nil, 0, err
	}
	defer st.Close()
	var out [][]byte
	var caDER []byte
	total := 0
	err = st.View(context.Background(), func(tx *store.Tx) error {
		cas, err := tx.CAs()
		if err != nil || len(cas) == 0 {
			return fmt.Errorf("no CA: %v", err)
		}
		caDER = cas[0].CertDER
		return tx.EachCert(func(c *store.Cert) error {
			total++
			if c.Status == store.StatusValid && c.SubscriberID != "" && len(out) < n {
				out = append(out, c.Serial)
			}
			return nil
		})
	})
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out, caDER, total, err
}

func adminClient(dir string) (*http.Client, error) {
	kp, err := tls.LoadX509KeyPair(filepath.Join(dir, "bootstrap", "admin.crt"), filepath.Join(dir, "bootstrap", "admin.key"))
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16,
		TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{kp}, InsecureSkipVerify: true}}}, nil
}

func revokeAll(c *http.Client, base string, serials [][]byte) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(serials) {
					return
				}
				resp, err := c.Post(fmt.Sprintf("%s/api/v1/certs/%x/revoke", base, serials[i]), "application/json", strings.NewReader(`{"reason":"keyCompromise"}`))
				if err != nil {
					errs <- err
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("revoking %x: %s: %s", serials[i], resp.Status, b)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func ocspPaths(issuer *x509.Certificate, serials [][]byte) ([]string, error) {
	out := make([]string, 0, len(serials))
	for _, s := range serials {
		req, err := xocsp.CreateRequest(&x509.Certificate{SerialNumber: new(big.Int).SetBytes(s)}, issuer, nil)
		if err != nil {
			return nil, err
		}
		out = append(out, "/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(req)))
	}
	return out, nil
}

type result struct {
	rps      float64
	p50, p99 time.Duration
	errors   int
}

// load is a closed loop of conns keep-alive clients sending OCSP GETs for
// random paths for d.
func load(addr string, paths []string, conns int, d time.Duration) result {
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	end := time.Now().Add(d)
	lats := make([][]time.Duration, conns)
	errs := make([]int, conns)
	var wg sync.WaitGroup
	begin := time.Now()
	for w := range conns {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for time.Now().Before(end) {
				t := time.Now()
				resp, err := c.Get("http://" + addr + paths[r.IntN(len(paths))])
				if err != nil {
					errs[w]++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs[w]++
					continue
				}
				lats[w] = append(lats[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	res := result{}
	for w := range conns {
		all = append(all, lats[w]...)
		res.errors += errs[w]
	}
	res.rps = float64(len(all)) / time.Since(begin).Seconds()
	if len(all) > 0 {
		slices.Sort(all)
		res.p50, res.p99 = all[len(all)/2].Round(time.Microsecond), all[len(all)*99/100].Round(time.Microsecond)
	}
	return res
}

// ---- Prometheus text scraping ----

func scrape(addr string) (string, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func metric(addr, name string) (float64, error) {
	text, err := scrape(addr)
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("%s: no metric %s", addr, name)
}

func waitMetric(addr, name string, ok func(float64) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		v, err := metric(addr, name)
		if err == nil && ok(v) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s: %v (last %v)", addr, name, err, v)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type hist struct {
	bounds []float64 // upper bounds, +Inf last
	counts []float64 // cumulative
	count  float64
}

func histogram(addr, name string) (hist, error) {
	text, err := scrape(addr)
	if err != nil {
		return hist{}, err
	}
	var h hist
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+`_bucket{le="`); ok {
			le, v, _ := strings.Cut(rest, `"} `)
			b, _ := strconv.ParseFloat(le, 64)
			c, _ := strconv.ParseFloat(v, 64)
			h.bounds, h.counts = append(h.bounds, b), append(h.counts, c)
		} else if v, ok := strings.CutPrefix(line, name+"_count "); ok {
			h.count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if len(h.bounds) == 0 {
		return h, fmt.Errorf("%s: no histogram %s", addr, name)
	}
	return h, nil
}

func (h hist) minus(o hist) hist {
	out := hist{bounds: h.bounds, counts: slices.Clone(h.counts), count: h.count - o.count}
	for i := range out.counts {
		if i < len(o.counts) {
			out.counts[i] -= o.counts[i]
		}
	}
	return out
}

// quantile interpolates within buckets, as PromQL's histogram_quantile.
func (h hist) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, prev := 0.0, 0.0
	for i, b := range h.bounds {
		if h.counts[i] >= rank {
			if math.IsInf(b, 1) {
				return lower
			}
			return lower + (b-lower)*(rank-prev)/(h.counts[i]-prev)
		}
		lower, prev = b, h.counts[i]
	}
	return lower
}
