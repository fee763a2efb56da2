// Command ocsp is the whole-server OCSP load bench. It seeds a data
// directory with certificates, starts certcenter on it, picks random
// certificates and builds GET requests for them, and runs wrk with the same
// request paths against three servers in turn:
//
//   - certcenter itself;
//   - the ceiling: a minimal net/http server (this program, re-executed)
//     answering the very bytes certcenter answered, from a map keyed by path;
//   - openssl ocsp -index ... -multi 2, the live-signing peer, signing with
//     the same delegated responder key.
//
// It prints a Markdown table with requests/s and latency, as ratios to the
// ceiling, for bench/README.md.
//
//	go build -o /tmp/certcenter ./cmd/certcenter
//	go run ./bench/ocsp -bin /tmp/certcenter
package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	xocsp "golang.org/x/crypto/ocsp"

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
	bareServe string
	bareAddr  string
}

func main() {
	var f flags
	flag.StringVar(&f.bin, "bin", "", "certcenter binary (go build -o /tmp/certcenter ./cmd/certcenter)")
	flag.StringVar(&f.data, "data", "", "data directory; empty seeds a new one in a temp dir, an existing one is reused as is")
	flag.IntVar(&f.count, "count", 100000, "certificates to seed")
	flag.Float64Var(&f.revoked, "revoked", 0.02, "fraction of seeded certificates revoked")
	flag.IntVar(&f.paths, "paths", 20000, "distinct random certificates requested")
	flag.DurationVar(&f.duration, "duration", 20*time.Second, "wrk run per target")
	flag.DurationVar(&f.warmup, "warmup", 3*time.Second, "wrk warm-up per target")
	flag.IntVar(&f.conns, "conns", 32, "wrk connections")
	flag.IntVar(&f.threads, "threads", 2, "wrk threads")
	flag.BoolVar(&f.noOpenSSL, "no-openssl", false, "skip the openssl ocsp peer")
	flag.BoolVar(&f.keep, "keep", false, "keep the work directory (paths, index, logs)")
	flag.StringVar(&f.bareServe, "serve-bare", "", "internal: serve the response map in this file")
	flag.StringVar(&f.bareAddr, "addr", "127.0.0.1:0", "internal: address of the bare server")
	flag.Parse()
	if f.bareServe != "" {
		if err := serveBare(f.bareServe, f.bareAddr); err != nil {
			log.Fatal(err)
		}
		return
	}
	if f.bin == "" {
		log.Fatal("-bin is required: go build -o /tmp/certcenter ./cmd/certcenter")
	}
	if err := run(f); err != nil {
		log.Fatal(err)
	}
}

func run(f flags) error {
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
		cmd := exec.Command(f.bin, "seed", "--data", data, "--count", strconv.Itoa(f.count), "--revoked-fraction", fmt.Sprint(f.revoked))
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
	ports := freePorts(4)
	cc := exec.Command(f.bin, "serve", "--data", data,
		"--http-addr", ports[0], "--api-addr", ports[1], "--ldap-addr", ports[2], "--ldaps-addr", ports[3])
	logf, _ := os.Create(filepath.Join(work, "certcenter.log"))
	cc.Stdout, cc.Stderr = logf, logf
	begin := time.Now()
	if err := cc.Start(); err != nil {
		return err
	}
	defer stop(cc)
	if err := waitHTTP("http://"+ports[0]+"/readyz", 10*time.Minute); err != nil {
		return fmt.Errorf("certcenter not ready: %w (log in %s)", err, logf.Name())
	}
	ready := time.Since(begin)
	log.Printf("certcenter ready in %s (start-up repair of %d certificates' responses)", ready.Round(time.Millisecond), ds.total)

	// The exact bytes certcenter serves, for the ceiling.
	mapFile := filepath.Join(work, "responses.txt")
	if err := fetchAll("http://"+ports[0], ds.paths, mapFile); err != nil {
		return err
	}
	barePort := freePorts(1)[0]
	self, _ := os.Executable()
	bare := exec.Command(self, "-serve-bare", mapFile, "-addr", barePort)
	bare.Stderr = os.Stderr
	if err := bare.Start(); err != nil {
		return err
	}
	defer stop(bare)
	if err := waitHTTP("http://"+barePort+ds.paths[0], time.Minute); err != nil {
		return fmt.Errorf("bare server: %w", err)
	}

	type target struct {
		name, base, paths string
		close             bool
	}
	targets := []target{
		{"certcenter", "http://" + ports[0], ds.pathFile, false},
		{"bare net/http map (ceiling)", "http://" + barePort, ds.pathFile, false},
	}
	if !f.noOpenSSL {
		_, port, _ := net.SplitHostPort(freePorts(1)[0])
		ossl := exec.Command("openssl", "ocsp", "-index", ds.index, "-port", port, "-rsigner", ds.rcert, "-rkey", ds.rkey,
			"-CA", ds.caPEM, "-multi", "2", "-ndays", "3")
		ologf, _ := os.Create(filepath.Join(work, "openssl.log"))
		ossl.Stdout, ossl.Stderr = ologf, ologf
		// Its own process group: the -multi children outlive a signalled parent.
		ossl.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := ossl.Start(); err != nil {
			return err
		}
		defer func() {
			_ = syscall.Kill(-ossl.Process.Pid, syscall.SIGTERM)
			stop(ossl)
		}()
		base := "http://127.0.0.1:" + port
		if err := waitHTTP(base+ds.opensslPaths[0], time.Minute); err != nil {
			return fmt.Errorf("openssl ocsp: %w", err)
		}
		if err := checkOne(base + ds.opensslPaths[0]); err != nil {
			return fmt.Errorf("openssl ocsp answer: %w", err)
		}
		targets = append(targets, target{"openssl ocsp -multi 2 (Connection: close)", base, ds.opensslFile, true})
	}

	var results []wrkResult
	for _, t := range targets {
		if f.warmup > 0 {
			if _, err := runWrk(work, t.base, t.paths, f.threads, f.conns, f.warmup, t.close); err != nil {
				return err
			}
		}
		res, err := runWrk(work, t.base, t.paths, f.threads, f.conns, f.duration, t.close)
		if err != nil {
			return err
		}
		res.name = t.name
		results = append(results, res)
		log.Printf("%s: %.0f req/s, p50 %s, p99 %s, errors %d", t.name, res.rps, res.p50, res.p99, res.errors)
	}
	printReport(os.Stdout, f, ds, ready, results)
	return nil
}

type dataset struct {
	total        int
	paths        []string
	pathFile     string
	opensslPaths []string
	opensslFile  string
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
	var pb, ob strings.Builder
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
		op := "/" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(b64)
		ds.opensslPaths = append(ds.opensslPaths, op)
		ob.WriteString(op + "\n")
	}
	ds.pathFile = filepath.Join(work, "paths.txt")
	ds.opensslFile = filepath.Join(work, "openssl-paths.txt")
	if err := os.WriteFile(ds.pathFile, []byte(pb.String()), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ds.opensslFile, []byte(ob.String()), 0o600); err != nil {
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
func fetchAll(base string, paths []string, out string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, p := range paths {
		res, err := client.Get(base + p)
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
		fmt.Fprintf(w, "%s %s\n", p, base64.StdEncoding.EncodeToString(body))
	}
	return w.Flush()
}

// noKeepAlive is the client for openssl ocsp: an idle kept-alive connection
// occupies one of its -multi children for good.
var noKeepAlive = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func checkOne(u string) error {
	res, err := noKeepAlive.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	_, err = xocsp.ParseResponse(body, nil)
	return err
}

// serveBare is the ceiling: net/http answering stored bytes by path.
func serveBare(file, addr string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	m := map[string][]byte{}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		p, v, _ := strings.Cut(line, " ")
		body, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return err
		}
		m[p] = body
	}
	ct := []string{"application/ocsp-response"}
	srv := &http.Server{
		Addr:              addr,
		ReadHeaderTimeout: 5 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := m[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header()["Content-Type"] = ct
			w.Write(body)
		}),
	}
	return srv.ListenAndServe()
}

type wrkResult struct {
	name          string
	requests      int64
	rps           float64
	p50, p99, max time.Duration
	errors        int64
}

const wrkScript = `
local paths = {}
for line in io.lines(os.getenv("OCSP_PATHS")) do paths[#paths + 1] = line end
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
local headers = {}
if os.getenv("OCSP_CLOSE") == "1" then headers["Connection"] = "close" end
request = function()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`

// runWrk runs wrk with random paths from pathFile. closeConns sends
// "Connection: close": openssl ocsp 3.0 answers keep-alive requests in
// HTTP/1.0 and then wedges its -multi children when several connections
// stay open (0 requests done at -c2), so it is measured with a connection
// per request, as its clients use it.
func runWrk(work, base, pathFile string, threads, conns int, d time.Duration, closeConns bool) (wrkResult, error) {
	script := filepath.Join(work, "ocsp.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return wrkResult{}, err
	}
	cmd := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())),
		"--timeout", "5s", "-s", script, base)
	cmd.Env = append(os.Environ(), "OCSP_PATHS="+pathFile, "OCSP_CLOSE="+map[bool]string{true: "1", false: "0"}[closeConns])
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			var n, durUS, p50, p99, mx, errs int64
			if _, err := fmt.Sscan(rest, &n, &durUS, &p50, &p99, &mx, &errs); err != nil {
				return wrkResult{}, err
			}
			return wrkResult{requests: n, rps: float64(n) / (float64(durUS) / 1e6),
				p50: time.Duration(p50) * time.Microsecond, p99: time.Duration(p99) * time.Microsecond,
				max: time.Duration(mx) * time.Microsecond, errors: errs}, nil
		}
	}
	return wrkResult{}, fmt.Errorf("no result from wrk:\n%s", out)
}

func printReport(w io.Writer, f flags, ds *dataset, ready time.Duration, rs []wrkResult) {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	fmt.Fprintf(w, "\nMachine: %d CPUs (%s), %s/%s, %s; wrk -t%d -c%d -d%s (+%s warm-up), %d random certificates of %d (%.0f%% revoked), GET, SHA-1 CertIDs. Start-up repair (signing every seeded certificate's response) until /readyz: %s. Date: %s.\n\n",
		runtime.NumCPU(), cpu, runtime.GOOS, runtime.GOARCH, runtime.Version(), f.threads, f.conns, f.duration, f.warmup, len(ds.paths), ds.total, f.revoked*100, ready.Round(100*time.Millisecond), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintln(w, "| server | requests/s | p50 | p99 | max | errors | req/s vs ceiling | p99 vs ceiling |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	var ceil wrkResult
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
		fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %d | %s | %s |\n", r.name, r.rps, r.p50, r.p99, r.max, r.errors, ratio, p99r)
	}
}

func freePorts(n int) []string {
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	for _, l := range ls {
		l.Close()
	}
	return out
}

func waitHTTP(u string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := noKeepAlive
	for {
		res, err := client.Get(u)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("HTTP %d", res.StatusCode)
			}
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stop ends a process this bench started, by its own handle.
func stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
