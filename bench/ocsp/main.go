// Command ocsp is the whole-server OCSP load bench. It seeds a data
// directory with certificates, starts certcenter on it, picks random
// certificates and builds GET requests for them, and measures three servers
// with the same request paths, one after the other:
//
//   - certcenter itself;
//   - the ceiling: a minimal net/http server (this program, re-executed)
//     answering the very bytes certcenter answered, from a map keyed by path;
//   - openssl ocsp -index ... -multi 2, the live-signing peer, signing with
//     the same delegated responder key.
//
// Two load generators. wrk with kept-alive connections measures certcenter
// and the ceiling (the target: ≥ 0.8x the ceiling's requests/s,
// p99 ≤ 1.5x). A closed-loop Go client opening one connection per request
// measures all three; openssl ocsp is measured only by it, because any client
// that closes a connection before sending its request line wedges an openssl
// ocsp child for good, and wrk does that when it exits (see hammer).
//
// It prints Markdown tables with requests/s and latency, as ratios to the
// ceiling, for bench/README.md.
//
//	go build -o /tmp/certcenter ./cmd/certcenter
//	go run ./bench/ocsp -bin /tmp/certcenter
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/store"
)

type flags struct {
	bin       string
	data      string
	count     int
	revoked   float64
	paths     int
	duration  time.Duration
	warmup    time.Duration
	conns     int
	threads   int
	noOpenSSL bool
	keep      bool
	rounds    int
	bareServe string
	bareAddr  string
	// sameHeaders makes the ceiling send certcenter's RFC 5019 caching
	// headers too, so the two differ only in how the answer is found.
	sameHeaders bool
}

func main() {
	var f flags
	flag.StringVar(&f.bin, "bin", "", "certcenter binary (go build -o /tmp/certcenter ./cmd/certcenter)")
	flag.StringVar(&f.data, "data", "", "data directory; empty seeds a new one in a temp dir, an existing one is reused as is")
	flag.IntVar(&f.count, "count", 100000, "certificates to seed")
	flag.IntVar(&f.rounds, "rounds", 3, "wrk rounds, certcenter and the ceiling alternating; the target is read from the median of the per-round ratios")
	flag.Float64Var(&f.revoked, "revoked", 0.02, "fraction of seeded certificates revoked")
	flag.IntVar(&f.paths, "paths", 20000, "distinct random certificates requested")
	flag.DurationVar(&f.duration, "duration", 20*time.Second, "measured run per server and load generator")
	flag.DurationVar(&f.warmup, "warmup", 3*time.Second, "warm-up per server and load generator")
	flag.IntVar(&f.conns, "conns", 32, "wrk connections, and workers of the connection-per-request client")
	flag.IntVar(&f.threads, "threads", 2, "wrk threads")
	flag.BoolVar(&f.noOpenSSL, "no-openssl", false, "skip the openssl ocsp peer")
	flag.BoolVar(&f.keep, "keep", false, "keep the work directory (paths, index, logs)")
	flag.StringVar(&f.bareServe, "serve-bare", "", "internal: serve the response map in this file")
	flag.BoolVar(&f.sameHeaders, "same-headers", false, "the ceiling sends certcenter's caching headers (Cache-Control, Last-Modified, Expires, ETag) as well as its bytes")
	flag.StringVar(&f.bareAddr, "addr", "127.0.0.1:0", "internal: address of the bare server")
	flag.Parse()
	if f.bareServe != "" {
		if err := serveBare(f.bareServe, f.bareAddr, f.sameHeaders); err != nil {
			log.Fatal(err)
		}
		return
	}
	if f.bin == "" {
		log.Fatal("-bin is required: go build -o /tmp/certcenter ./cmd/certcenter")
	}
	// Ctrl-C or SIGTERM ends the run through run's deferred stops, so no
	// server, wrk or openssl process outlives the bench (log.Fatal would skip
	// them). openssl ocsp sits in its own process group, out of reach of the
	// terminal's Ctrl-C: only these stops end it.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, f)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, f flags) error {
	load := loadAverage()
	for _, tool := range []string{"wrk", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is required (Debian package: %s)", tool, tool)
		}
	}
	work, err := os.MkdirTemp("", "ocsp-bench-")
	if err != nil {
		return err
	}
	if f.keep {
		log.Printf("keeping the work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	data := f.data
	if data == "" {
		data = filepath.Join(work, "data")
	}
	if _, err := os.Stat(filepath.Join(data, "db")); err != nil {
		log.Printf("seeding %d certificates into %s", f.count, data)
		begin := time.Now()
		cmd := exec.CommandContext(ctx, f.bin, "seed", "--data", data, "--count", strconv.Itoa(f.count), "--revoked-fraction", fmt.Sprint(f.revoked))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("seeding: %w", err)
		}
		log.Printf("seeded in %s", time.Since(begin).Round(time.Second))
	}
	ds, err := readData(data, work, f.paths)
	if err != nil {
		return err
	}

	// certcenter
	ports, err := benchproc.FreePorts(5)
	if err != nil {
		return err
	}
	cc := exec.Command(f.bin, "serve", "--data", data,
		"--http-addr", ports[0], "--api-addr", ports[1], "--ldap-addr", ports[2], "--ldaps-addr", ports[3])
	logf, err := os.Create(filepath.Join(work, "certcenter.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cc.Stdout, cc.Stderr = logf, logf
	begin := time.Now()
	if err := cc.Start(); err != nil {
		return err
	}
	defer benchproc.Stop(cc)
	if err := benchproc.WaitHTTP(ctx, "http://"+ports[0]+"/readyz", 10*time.Minute); err != nil {
		return fmt.Errorf("certcenter not ready: %w (log in %s)", err, logf.Name())
	}
	ready := time.Since(begin)
	log.Printf("certcenter ready in %s (start-up check of %d certificates' stored responses)", ready.Round(time.Millisecond), ds.total)

	// The exact bytes certcenter serves, for the ceiling.
	mapFile := filepath.Join(work, "responses.txt")
	if err := fetchAll(ctx, "http://"+ports[0], ds.paths, mapFile); err != nil {
		return err
	}
	barePort := ports[4]
	self, err := os.Executable()
	if err != nil {
		return err
	}
	bare := exec.Command(self, "-serve-bare", mapFile, "-addr", barePort, fmt.Sprintf("-same-headers=%v", f.sameHeaders))
	bare.Stderr = os.Stderr
	if err := bare.Start(); err != nil {
		return err
	}
	defer benchproc.Stop(bare)
	if err := benchproc.WaitHTTP(ctx, "http://"+barePort+ds.paths[0], time.Minute); err != nil {
		return fmt.Errorf("bare server: %w", err)
	}

	const (
		ccName   = "certcenter"
		ceilName = "bare net/http map (ceiling)"
	)
	rep := report{f: f, load: load, ds: ds, ready: ready}

	// wrk, kept-alive connections: the target. certcenter and the
	// ceiling alternate for several rounds, because on a shared host the
	// machine's speed drifts between runs minutes apart: the ratio within a
	// round is what means something, and the median of those is reported.
	targets := []struct {
		name, base string
		pid        int
	}{
		{ccName, "http://" + ports[0], cc.Process.Pid},
		{ceilName, "http://" + barePort, bare.Process.Pid},
	}
	if f.warmup > 0 {
		for _, t := range targets {
			if _, err := runWrk(ctx, work, t.base, ds.pathFile, f.threads, f.conns, f.warmup); err != nil {
				return err
			}
		}
	}
	for round := 1; round <= max(f.rounds, 1); round++ {
		var pair [2]result
		for i, t := range targets {
			res, err := runWrk(ctx, work, t.base, ds.pathFile, f.threads, f.conns, f.duration)
			if err != nil {
				return err
			}
			res.name = t.name
			res.mem = benchproc.MemOf(t.pid)
			pair[i] = res
			log.Printf("wrk, keep-alive, round %d: %s", round, res)
		}
		rep.rounds = append(rep.rounds, pair)
	}
	rep.wrk = medianPair(rep.rounds)

	// One connection per request, the Go client: the three servers.
	for _, t := range []struct{ name, addr string }{
		{ccName, ports[0]},
		{ceilName, barePort},
	} {
		res, err := hammerRun(ctx, t.addr, ds.paths, f)
		if err != nil {
			return err
		}
		res.name = t.name
		rep.conn = append(rep.conn, res)
		log.Printf("connection per request: %s", res)
	}
	if !f.noOpenSSL {
		res, err := measureOpenSSL(ctx, ds, work, f)
		if err != nil {
			return err
		}
		rep.conn = append(rep.conn, res)
		log.Printf("connection per request: %s", res)
	}
	rep.print(os.Stdout)
	return nil
}

type dataset struct {
	total        int
	paths        []string
	pathFile     string
	opensslPaths []string
	index        string
	caPEM        string
	rcert, rkey  string
}

// readData opens the store of the stopped server, picks random certificates
// and writes the request paths, openssl's index and the responder's files.
func readData(dataDir, work string, n int) (*dataset, error) {
	st, err := store.Open(store.Options{Dir: filepath.Join(dataDir, "db")})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	ctx := context.Background()
	ds := &dataset{}
	var caRec *store.CA
	var certs []*store.Cert
	idx, err := os.Create(filepath.Join(work, "index.txt"))
	if err != nil {
		return nil, err
	}
	defer idx.Close()
	iw := bufio.NewWriter(idx)
	err = st.View(ctx, func(tx *store.Tx) error {
		cas, err := tx.CAs()
		if err != nil {
			return err
		}
		if len(cas) == 0 {
			return errors.New("no CA in the store")
		}
		caRec = cas[0]
		return tx.EachCert(func(c *store.Cert) error {
			ds.total++
			// openssl ca's index: status, expiry, revocation[,reason], serial, file, DN.
			status, rev := "V", ""
			if c.Status == store.StatusRevoked {
				status, rev = "R", c.RevokedAt.UTC().Format("060102150405Z")+","+reasonName(c.Reason)
			}
			fmt.Fprintf(iw, "%s\t%s\t%s\t%X\tunknown\t/CN=%s\n", status, c.NotAfter.UTC().Format("060102150405Z"), rev, c.Serial, c.CommonName)
			if c.Issuer == caRec.Name && c.Profile != "ocsp-signing" {
				certs = append(certs, c)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if err := iw.Flush(); err != nil {
		return nil, err
	}
	ds.index = idx.Name()
	caCert, err := x509.ParseCertificate(caRec.CertDER)
	if err != nil {
		return nil, err
	}
	ds.caPEM = writePEM(filepath.Join(work, "ca.pem"), "CERTIFICATE", caRec.CertDER)
	ds.rcert = writePEM(filepath.Join(work, "responder.pem"), "CERTIFICATE", caRec.OCSPCertDER)
	ds.rkey = filepath.Join(dataDir, "keys", caRec.OCSPKeyRef+".key")
	if _, err := os.Stat(ds.rkey); err != nil {
		return nil, fmt.Errorf("responder key (file signer expected): %w", err)
	}
	rand.Shuffle(len(certs), func(i, j int) { certs[i], certs[j] = certs[j], certs[i] })
	certs = certs[:min(n, len(certs))]
	var pb strings.Builder
	for _, c := range certs {
		x, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return nil, err
		}
		der, err := xocsp.CreateRequest(x, caCert, nil)
		if err != nil {
			return nil, err
		}
		b64 := base64.StdEncoding.EncodeToString(der)
		p := "/ocsp/" + b64
		ds.paths = append(ds.paths, p)
		pb.WriteString(p + "\n")
		// openssl ocsp takes the whole path as the (url-encoded) base64.
		ds.opensslPaths = append(ds.opensslPaths, "/"+strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64))
	}
	ds.pathFile = filepath.Join(work, "paths.txt")
	if err := os.WriteFile(ds.pathFile, []byte(pb.String()), 0o600); err != nil {
		return nil, err
	}
	return ds, nil
}

func reasonName(r int) string {
	names := []string{"unspecified", "keyCompromise", "CACompromise", "affiliationChanged", "superseded", "cessationOfOperation", "certificateHold"}
	if r >= 0 && r < len(names) {
		return names[r]
	}
	return "unspecified"
}

func writePEM(path, typ string, der []byte) string {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		log.Fatal(err)
	}
	return path
}

// fetchAll GETs every path once from certcenter (warming its cache) and
// writes "path base64(body)" lines for the bare server.
func fetchAll(ctx context.Context, base string, paths []string, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range paths {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+p, nil)
		if err != nil {
			return err
		}
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return err
		}
		if _, err := xocsp.ParseResponse(body, nil); err != nil {
			return fmt.Errorf("certcenter answered %s with %x: %w", p, body, err)
		}
		var hdr []string
		for _, k := range cachingHeaders {
			hdr = append(hdr, res.Header.Get(k))
		}
		fmt.Fprintf(w, "%s %s %s\n", p, base64.StdEncoding.EncodeToString(body), base64.StdEncoding.EncodeToString([]byte(strings.Join(hdr, "\x00"))))
	}
	return w.Flush()
}

// noKeepAlive sends every request on a new connection and always sends it
// whole: openssl ocsp is probed with it (see hammer).
var noKeepAlive = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func checkOne(ctx context.Context, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := noKeepAlive.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	_, err = xocsp.ParseResponse(body, nil)
	return err
}

// cachingHeaders are the RFC 5019 headers certcenter sends with a GET.
var cachingHeaders = []string{"Cache-Control", "Last-Modified", "Expires", "Etag"}

// serveBare is the ceiling: net/http answering stored bytes by path, and
// with sameHeaders certcenter's caching headers, prepared once per path.
func serveBare(file, addr string, sameHeaders bool) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	type answer struct {
		body []byte
		hdr  [][]string
	}
	m := map[string]*answer{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			return fmt.Errorf("response map line %q", line)
		}
		body, err := base64.StdEncoding.DecodeString(fields[1])
		if err != nil {
			return err
		}
		a := &answer{body: body}
		if sameHeaders && len(fields) > 2 {
			h, err := base64.StdEncoding.DecodeString(fields[2])
			if err != nil {
				return err
			}
			for _, v := range strings.Split(string(h), "\x00") {
				a.hdr = append(a.hdr, []string{v})
			}
		}
		m[fields[0]] = a
	}
	ct := []string{"application/ocsp-response"}
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			a, ok := m[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			h := w.Header()
			h["Content-Type"] = ct
			for i, v := range a.hdr {
				if v[0] != "" {
					h[cachingHeaders[i]] = v
				}
			}
			w.Write(a.body)
		}),
	}
	return srv.ListenAndServe()
}

type result struct {
	name          string
	requests      int64
	rps           float64
	p50, p99, max time.Duration
	errors        int64
	note          string
	mem           benchproc.Mem // of the server, right after its run
}

func (r result) String() string {
	return fmt.Sprintf("%s: %.0f req/s, p50 %s, p99 %s, errors %d, %s %s", r.name, r.rps, r.p50, r.p99, r.errors, r.mem, r.note)
}

const wrkScript = `
local paths = {}
for line in io.lines(os.getenv("OCSP_PATHS")) do paths[#paths + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

// runWrk runs wrk with kept-alive connections and random paths from pathFile.
func runWrk(ctx context.Context, work, base, pathFile string, threads, conns int, d time.Duration) (result, error) {
	script := filepath.Join(work, "ocsp.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return result{}, err
	}
	cmd := exec.CommandContext(ctx, "wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "5s", "-s", script, base)
	cmd.Env = append(os.Environ(), "OCSP_PATHS="+pathFile)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var n, durUS, p50, p99, mx, errs int64
			if _, err := fmt.Sscan(rest, &n, &durUS, &p50, &p99, &mx, &errs); err != nil {
				return result{}, err
			}
			return result{requests: n, rps: float64(n) / (float64(durUS) / 1e6),
				p50: time.Duration(p50) * time.Microsecond, p99: time.Duration(p99) * time.Microsecond,
				max: time.Duration(mx) * time.Microsecond, errors: errs}, nil
		}
	}
	return result{}, fmt.Errorf("no result from wrk:\n%s", out)
}

// hammerRun is hammer's warm-up and then its measured run.
func hammerRun(ctx context.Context, addr string, paths []string, f flags) (result, error) {
	if f.warmup > 0 {
		if _, err := hammer(ctx, addr, paths, f.conns, f.warmup); err != nil {
			return result{}, err
		}
	}
	return hammer(ctx, addr, paths, f.conns, f.duration)
}

// hammer is a closed-loop load generator: each of workers goroutines
// repeats connect, send one GET for a random path with "Connection: close",
// read the answer to EOF, close, for d. Once d has passed, no new request
// starts and those in flight finish (each within 5 s).
//
// It exists for openssl ocsp. OpenSSL's responder (3.0 up to master, apps/
// lib/http_server.c, openssl/openssl#31129) returns 0 from
// http_server_get_asn1_req when the request line reads EOF, without freeing
// the accepted connection; apps/ocsp.c then goes back to accept with that
// connection still set, takes it for a kept-alive one and reads EOF again,
// forever: the child spins at 100 % CPU (stat of the index file, read() = 0),
// never closes the socket (CLOSE-WAIT here, FIN-WAIT-2 at the client) and
// never accepts again. The child does not die, so the -multi parent, blocked
// in waitpid, never replaces it, and -timeout re-arms its alarm on every turn
// of the loop. Every connection closed before its request line takes one
// child out; with -multi 2, two of them wedge the responder. wrk makes them:
// when its run ends, it exits with connections that are established (in
// the listen backlog, waiting for one of the two children) but have not
// written their request yet. So a wrk run can be measured on a fresh
// responder but leaves it dead (0 requests in the next run), and whether one
// of its own reconnects wedged a child in the middle of the run cannot be
// told afterwards. This client always writes the whole request right after
// connecting and never closes a connection before its answer (or its 5 s
// deadline), so it cannot wedge a child, and measureOpenSSL checks after the
// run that none spins.
func hammer(ctx context.Context, addr string, paths []string, workers int, d time.Duration) (result, error) {
	reqs := make([][]byte, len(paths))
	for i, p := range paths {
		reqs[i] = []byte("GET " + p + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: ocsp-bench\r\nConnection: close\r\n\r\n")
	}
	// Resolved once: DialTCP to a *net.TCPAddr is the cheapest dial (the
	// client shares the two cores with the server; with Dialer.DialContext
	// and a host:port string it managed 20 % fewer connections per second).
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return result{}, err
	}
	begin := time.Now()
	end := begin.Add(d)
	type tally struct {
		lat    []time.Duration
		errors int64
		last   error
	}
	tallies := make([]tally, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			t := &tallies[w]
			r := rand.New(rand.NewPCG(uint64(begin.UnixNano()), uint64(w)))
			buf := make([]byte, 16<<10)
			for ctx.Err() == nil && time.Now().Before(end) {
				start := time.Now()
				n, err := exchange(ta, reqs[r.IntN(len(reqs))], buf, start.Add(5*time.Second))
				// "HTTP/1.x 200 ", and a body after the header.
				if err == nil && (n < 13 || !bytes.HasPrefix(buf, []byte("HTTP/1.")) || !bytes.HasPrefix(buf[9:], []byte("200 ")) ||
					!bytes.Contains(buf[:n], []byte("\r\n\r\n")) || bytes.HasSuffix(buf[:n], []byte("\r\n\r\n"))) {
					err = fmt.Errorf("answer %q", buf[:min(n, 60)])
				}
				if err != nil {
					t.errors++
					t.last = err
					// A refused or failed connection comes back at once: do
					// not spin on it.
					time.Sleep(10 * time.Millisecond)
					continue
				}
				t.lat = append(t.lat, time.Since(start))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	var res result
	var lat []time.Duration
	var last error
	for _, t := range tallies {
		lat = append(lat, t.lat...)
		res.errors += t.errors
		if t.last != nil {
			last = t.last
		}
	}
	if last != nil {
		log.Printf("%s: %d errors, the last: %v", addr, res.errors, last)
	}
	res.requests = int64(len(lat))
	res.rps = float64(len(lat)) / elapsed.Seconds()
	if len(lat) > 0 {
		slices.Sort(lat)
		res.p50 = lat[len(lat)/2]
		res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		res.max = lat[len(lat)-1]
	}
	return res, nil
}

// exchange sends req on a new connection and reads the answer into buf
// until the server closes. It returns how many bytes it read (an answer
// longer than buf is read to its end, only its head is kept).
func exchange(addr *net.TCPAddr, req, buf []byte, deadline time.Time) (int, error) {
	// A loopback connect completes or fails at once; no dial timeout.
	conn, err := net.DialTCP("tcp", nil, addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(deadline); err != nil {
		return 0, err
	}
	if _, err := conn.Write(req); err != nil {
		return 0, err
	}
	n := 0
	for {
		m, err := conn.Read(buf[min(n, len(buf)-1024):])
		n = min(n+m, len(buf))
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// measureOpenSSL starts openssl ocsp -multi 2, runs hammer against it and
// stops it. A child that spins after the run (wedged, see hammer) or one
// that was replaced (it died; not of SIGPIPE, which openssl ignores) is
// reported in the result's note: the figure is then not openssl's best.
func measureOpenSSL(ctx context.Context, ds *dataset, work string, f flags) (result, error) {
	p, err := startOpenSSL(ctx, ds, work)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	before, err := p.children()
	if err != nil {
		return result{}, err
	}
	_, port, _ := net.SplitHostPort(p.addr)
	res, err := hammerRun(ctx, "127.0.0.1:"+port, ds.opensslPaths, f)
	if err != nil {
		return result{}, err
	}
	res.name = "openssl ocsp -multi 2"
	spinning, after, err := p.spinning()
	if err != nil {
		return result{}, err
	}
	replaced := 0
	for pid := range before {
		if _, ok := after[pid]; !ok {
			replaced++
		}
	}
	log.Printf("openssl ocsp after the run: %d children, %d spinning (wedged), %d replaced during the run", len(after), spinning, replaced)
	if spinning > 0 || replaced > 0 {
		res.note = fmt.Sprintf("(%d children wedged, %d replaced: figure suspect)", spinning, replaced)
	}
	return res, nil
}

// opensslPeer is one openssl ocsp -multi process group.
type opensslPeer struct {
	cmd  *exec.Cmd
	addr string
}

func startOpenSSL(ctx context.Context, ds *dataset, work string) (*opensslPeer, error) {
	ports, err := benchproc.FreePorts(1)
	if err != nil {
		return nil, err
	}
	addr := ports[0]
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("openssl", "ocsp", "-index", ds.index, "-port", port, "-rsigner", ds.rcert, "-rkey", ds.rkey,
		"-CA", ds.caPEM, "-multi", "2", "-ndays", "3")
	logf, err := os.OpenFile(filepath.Join(work, "openssl.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logf, logf
	// openssl's -multi parent moves itself into a process group of its own
	// (setpgid(0, 0) in spawn_loop; it exits if it is a session leader, so
	// no setsid). Setpgid makes that group exist from the start, so stop
	// can signal the whole group, children included, without a race.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting openssl ocsp: %w", err)
	}
	p := &opensslPeer{cmd: cmd, addr: addr}
	log.Printf("openssl ocsp started, process group %d (if this bench is killed with -9: kill -- -%d)", cmd.Process.Pid, cmd.Process.Pid)
	base := "http://" + addr
	if err := benchproc.WaitHTTP(ctx, base+ds.opensslPaths[0], time.Minute); err != nil {
		p.stop()
		return nil, fmt.Errorf("openssl ocsp not answering: %w", err)
	}
	if err := checkOne(ctx, base+ds.opensslPaths[0]); err != nil {
		p.stop()
		return nil, fmt.Errorf("openssl ocsp answer: %w", err)
	}
	return p, nil
}

// stop kills the whole process group. SIGTERM to the parent alone is not
// enough: it waits in waitpid (restarted after the signal, SA_RESTART) and
// acts on SIGTERM only when a child exits, which a wedged child never does.
// The responder keeps no state worth a graceful exit, so SIGKILL.
func (p *opensslPeer) stop() {
	pgid := p.cmd.Process.Pid
	// The parent is not reaped yet, so the group id cannot have been reused.
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		log.Printf("killing openssl process group %d: %v", pgid, err)
	}
	_ = p.cmd.Wait()
	// The children, orphaned now, are reaped by init; wait until they are.
	for range 50 {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Printf("openssl process group %d still has members 5 s after SIGKILL", pgid)
}

// children returns the parent's children and their CPU time so far, in
// clock ticks, from /proc.
func (p *opensslPeer) children() (map[int]int64, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ... utime(14) stime(15): the fields
		// after the last ')', as comm may hold anything.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fs := strings.Fields(string(b[i+1:]))
		if len(fs) < 13 {
			continue
		}
		if ppid, _ := strconv.Atoi(fs[1]); ppid != p.cmd.Process.Pid {
			continue
		}
		ut, _ := strconv.ParseInt(fs[11], 10, 64)
		st, _ := strconv.ParseInt(fs[12], 10, 64)
		out[pid] = ut + st
	}
	return out, nil
}

// spinning counts children that use CPU with no client left: the wedged
// ones. A healthy idle child blocks in accept and uses none.
func (p *opensslPeer) spinning() (int, map[int]int64, error) {
	a, err := p.children()
	if err != nil {
		return 0, nil, err
	}
	time.Sleep(time.Second)
	b, err := p.children()
	if err != nil {
		return 0, nil, err
	}
	n := 0
	for pid, t := range b {
		if t0, ok := a[pid]; ok && t > t0 {
			n++
		}
	}
	return n, b, nil
}

type report struct {
	f         flags
	load      string
	ds        *dataset
	ready     time.Duration
	wrk, conn []result
	rounds    [][2]result
}

// medianPair returns the round whose certcenter/ceiling ratio is the median.
func medianPair(rounds [][2]result) []result {
	if len(rounds) == 0 {
		return nil
	}
	sorted := slices.Clone(rounds)
	slices.SortFunc(sorted, func(a, b [2]result) int {
		return cmp.Compare(a[0].rps/a[1].rps, b[0].rps/b[1].rps)
	})
	m := sorted[len(sorted)/2]
	return []result{m[0], m[1]}
}

func (r report) print(w io.Writer) {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	f := r.f
	fmt.Fprintf(w, "\nMachine: %d CPUs (%s), %s/%s, %s; load average before the run %s (1, 5, 15 min). %d random certificates of %d (%.0f%% revoked), GET, SHA-1 CertIDs; %s per server and load generator (+%s warm-up). certcenter start-up until /readyz: %s. Date: %s.\n",
		runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version(), r.load, len(r.ds.paths), r.ds.total, f.revoked*100,
		f.duration, f.warmup, r.ready.Round(100*time.Millisecond), time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "\nwrk -t%d -c%d, kept-alive connections, %d rounds alternating certcenter and the ceiling; the round with the median requests/s ratio (the upper of the two middle ones for an even count):\n\n", f.threads, f.conns, len(r.rounds))
	table(w, r.wrk)
	fmt.Fprintf(w, "\nEvery round (certcenter / ceiling; resident memory right after the server's run, MB anonymous + file-backed):\n\n| round | certcenter req/s | ceiling req/s | req/s ratio | p99 ratio | certcenter RssAnon+RssFile | ceiling RssAnon+RssFile |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for i, p := range r.rounds {
		fmt.Fprintf(w, "| %d | %.0f | %.0f | %.2fx | %.2fx | %d + %d | %d + %d |\n", i+1, p[0].rps, p[1].rps, p[0].rps/p[1].rps, float64(p[0].p99)/float64(p[1].p99),
			p[0].mem.AnonKB>>10, p[0].mem.FileKB>>10, p[1].mem.AnonKB>>10, p[1].mem.FileKB>>10)
	}
	if len(r.rounds) > 0 {
		cc, ceil := spread(r.rounds, 0), spread(r.rounds, 1)
		median, ratios := medianRatio(r.rounds)
		// The spread is set by the one slowest round, which a shared machine
		// hands to either server; the coefficient of variation uses them all.
		fmt.Fprintf(w, "\nSpread of the rounds (max/min requests/s): certcenter %.2f, ceiling %.2f; coefficient of variation certcenter %.3f, ceiling %.3f; median req/s ratio %.3fx (min %.2fx, max %.2fx). Ceiling headers: %s.\n",
			cc, ceil, variation(r.rounds, 0), variation(r.rounds, 1), median, ratios[0], ratios[len(ratios)-1], map[bool]string{false: "Content-Type only", true: "the same caching headers as certcenter (-same-headers)"}[f.sameHeaders])
	}
	fmt.Fprintf(w, "\nOne connection per request (Go closed-loop client, %d workers, Connection: close):\n\n", f.conns)
	table(w, r.conn)
}

// medianRatio returns the median of the rounds' certcenter/ceiling
// requests/s ratios (the mean of the two middle ones for an even count) and
// the ratios sorted.
func medianRatio(rounds [][2]result) (float64, []float64) {
	ratios := make([]float64, len(rounds))
	for i, p := range rounds {
		ratios[i] = p[0].rps / p[1].rps
	}
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + median) / 2
	}
	return median, ratios
}

// variation is the standard deviation of server i's requests/s over the
// rounds divided by their mean.
func variation(rounds [][2]result, i int) float64 {
	var sum, sq float64
	for _, p := range rounds {
		sum += p[i].rps
	}
	mean := sum / float64(len(rounds))
	for _, p := range rounds {
		sq += (p[i].rps - mean) * (p[i].rps - mean)
	}
	if mean == 0 {
		return 0
	}
	return math.Sqrt(sq/float64(len(rounds))) / mean
}

// spread is max/min of the requests/s of server i (0 certcenter, 1 the
// ceiling) over the rounds: how steady it was.
func spread(rounds [][2]result, i int) float64 {
	lo, hi := rounds[0][i].rps, rounds[0][i].rps
	for _, p := range rounds {
		lo, hi = min(lo, p[i].rps), max(hi, p[i].rps)
	}
	if lo == 0 {
		return 0
	}
	return hi / lo
}

// loadAverage is /proc/loadavg's three averages: what else the shared
// machine was doing.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func table(w io.Writer, rs []result) {
	fmt.Fprintln(w, "| server | requests/s | p50 | p99 | max | errors | req/s vs ceiling | p99 vs ceiling |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	var ceil result
	for _, r := range rs {
		if strings.Contains(r.name, "ceiling") {
			ceil = r
		}
	}
	for _, r := range rs {
		ratio, p99r := "", ""
		if ceil.rps > 0 {
			ratio = fmt.Sprintf("%.2fx", r.rps/ceil.rps)
			p99r = fmt.Sprintf("%.2fx", float64(r.p99)/float64(ceil.p99))
		}
		name := r.name
		if r.note != "" {
			name += " " + r.note
		}
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %d | %s | %s |\n", name, r.rps, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), r.errors, ratio, p99r)
	}
}
