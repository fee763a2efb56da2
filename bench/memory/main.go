// Command memory is the whole-server memory bench. It seeds a data directory
// (or reuses one), starts certcenter on it with pprof on a metrics listener,
// puts mixed OCSP and LDAP load on it for -duration and samples
// /proc/PID/status every second. It reports the peak of RssAnon and RssFile,
// their growth over the last four minutes (the "no growth" check),
// the Go heap from /metrics, and writes heap profiles at the end.
//
// The load, all at once, on the two cores the server shares with it:
//
//   - OCSP: -ocsp-conns kept-alive HTTP connections, GETs of random
//     certificates among -ocsp-paths distinct ones;
//
//   - LDAP: -ldap-conns connections of base-scope reads of random subscriber
//     entries among all of them (each read of an entry not cached builds it),
//     and one connection reading the whole subtree in pages of 1000, over and
//     over, which walks every entry.
//
//     go build -o /tmp/certcenter ./cmd/certcenter
//     go run ./bench/memory -bin /tmp/certcenter -data /tmp/mem-data -count 100000
//
// The data directory is written by the server (it is a serve run): pass a
// copy of a seeded directory you want to keep.
package main

import (
	"cmp"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
	xocsp "golang.org/x/crypto/ocsp"

	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/store"
)

type flags struct {
	bin        string
	data       string
	count      int
	revoked    float64
	duration   time.Duration
	window     time.Duration
	paths      int
	ocspConns  int
	ldapConns  int
	profiles   string
	configYAML string
}

func main() {
	var f flags
	flag.StringVar(&f.bin, "bin", "", "certcenter binary (go build -o /tmp/certcenter ./cmd/certcenter)")
	flag.StringVar(&f.data, "data", "", "data directory; seeded with -count certificates if it has no database (the run writes to it)")
	flag.IntVar(&f.count, "count", 100000, "certificates to seed when -data has no database")
	flag.Float64Var(&f.revoked, "revoked", 0.02, "fraction of seeded certificates revoked")
	flag.DurationVar(&f.duration, "duration", 5*time.Minute, "load duration")
	flag.DurationVar(&f.window, "window", 4*time.Minute, "growth is measured over this last part of the run")
	flag.IntVar(&f.paths, "ocsp-paths", 20000, "distinct certificates asked for over OCSP")
	flag.IntVar(&f.ocspConns, "ocsp-conns", 8, "kept-alive OCSP connections")
	flag.IntVar(&f.ldapConns, "ldap-conns", 4, "LDAP connections doing base reads of random entries (plus one paging through all)")
	flag.StringVar(&f.profiles, "profiles", "", "directory for heap profiles taken at the end (inuse and alloc); empty: none")
	flag.StringVar(&f.configYAML, "config-extra", "", "YAML lines appended to the bench's config (e.g. cache sizes), with their section headers")
	flag.Parse()
	if f.bin == "" || f.data == "" {
		log.Fatal("-bin and -data are required")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, f)
	cancel()
	if err != nil {
		log.Fatal(err)
	}
}

// sample is one reading of /proc/PID/status, in kB.
type sample struct {
	at           time.Duration
	anon, file   int64
	ocspN, ldapN int64
}

func run(ctx context.Context, f flags) error {
	if _, err := os.Stat(filepath.Join(f.data, "db")); err != nil {
		log.Printf("seeding %d certificates into %s", f.count, f.data)
		cmd := exec.CommandContext(ctx, f.bin, "seed", "--data", f.data, "--count", strconv.Itoa(f.count), "--revoked-fraction", fmt.Sprint(f.revoked))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("seeding: %w", err)
		}
	}
	paths, subscribers, err := readData(f.data, f.paths)
	if err != nil {
		return fmt.Errorf("reading the data directory: %w", err)
	}
	work, err := os.MkdirTemp("", "memory-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	ports, err := benchproc.FreePorts(4)
	if err != nil {
		return err
	}
	cfg := fmt.Sprintf("http:\n  addr: %s\nldap:\n  addr: %s\n  ldaps_addr: \"\"\napi:\n  addr: %s\nmetrics:\n  addr: %s\n  pprof: true\n%s\n",
		ports[0], ports[1], ports[2], ports[3], f.configYAML)
	cfgFile := filepath.Join(work, "certcenter.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		return err
	}
	logFile := filepath.Join(os.TempDir(), "memory-bench-certcenter.log")
	logf, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer logf.Close()
	cc := exec.Command(f.bin, "serve", "--config", cfgFile, "--data", f.data)
	cc.Stdout, cc.Stderr = logf, logf
	begin := time.Now()
	if err := cc.Start(); err != nil {
		return err
	}
	defer benchproc.Stop(cc)
	if err := benchproc.WaitHTTP(ctx, "http://"+ports[0]+"/readyz", 5*time.Minute); err != nil {
		return fmt.Errorf("certcenter not ready: %w (log in %s)", err, logFile)
	}
	pid := cc.Process.Pid
	idle := readMem(pid)
	log.Printf("certcenter ready in %s, pid %d: RssAnon %d MB, RssFile %d MB idle", time.Since(begin).Round(time.Millisecond), pid, idle.anon>>10, idle.file>>10)

	var ocspN, ldapN, errN atomic.Int64
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		errN.Add(1)
		firstErr.CompareAndSwap(nil, &err)
	}
	lctx, stopLoad := context.WithTimeout(ctx, f.duration)
	defer stopLoad()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: f.ocspConns}}
	for range f.ocspConns {
		wg.Go(func() {
			for lctx.Err() == nil {
				if err := ocspGet(lctx, client, "http://"+ports[0]+paths[rand.IntN(len(paths))]); err != nil {
					if lctx.Err() == nil {
						fail(err)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				ocspN.Add(1)
			}
		})
	}
	const suffix = "o=certcenter,c=CN"
	for range f.ldapConns {
		wg.Go(func() {
			c, err := ldap.DialURL("ldap://" + ports[1])
			if err != nil {
				fail(err)
				return
			}
			defer c.Close()
			for lctx.Err() == nil {
				n := rand.IntN(subscribers)
				dn := fmt.Sprintf("cn=seed-%07d,ou=unit-%02d,%s", n, n%16, suffix)
				r, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil))
				if err == nil && len(r.Entries) != 1 {
					err = fmt.Errorf("%s: %d entries", dn, len(r.Entries))
				}
				if err != nil {
					if lctx.Err() == nil {
						fail(err)
					}
					return
				}
				ldapN.Add(1)
			}
		})
	}
	var walks atomic.Int64
	wg.Go(func() {
		c, err := ldap.DialURL("ldap://" + ports[1])
		if err != nil {
			fail(err)
			return
		}
		defer c.Close()
		for lctx.Err() == nil {
			req := ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", nil, nil)
			if _, err := c.SearchWithPaging(req, 1000); err != nil {
				if lctx.Err() == nil {
					fail(err)
				}
				return
			}
			walks.Add(1)
		}
	})

	var samples []sample
	tick := time.NewTicker(time.Second)
	start := time.Now()
	for lctx.Err() == nil {
		select {
		case <-tick.C:
			m := readMem(pid)
			m.at, m.ocspN, m.ldapN = time.Since(start), ocspN.Load(), ldapN.Load()
			samples = append(samples, m)
			if len(samples)%30 == 0 {
				log.Printf("%3ds RssAnon %4d MB RssFile %4d MB, OCSP %d, LDAP base reads %d, full walks %d, errors %d",
					int(m.at.Seconds()), m.anon>>10, m.file>>10, m.ocspN, m.ldapN, walks.Load(), errN.Load())
			}
		case <-lctx.Done():
		}
	}
	tick.Stop()
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		log.Printf("%d load errors, first: %v", errN.Load(), *p)
	}
	heap := goHeap("http://" + ports[3] + "/metrics")
	if f.profiles != "" {
		if err := os.MkdirAll(f.profiles, 0o755); err != nil {
			return err
		}
		for _, p := range []string{"heap", "allocs"} {
			if err := fetch("http://"+ports[3]+"/debug/pprof/"+p+"?gc=1", filepath.Join(f.profiles, p+".pb.gz")); err != nil {
				return err
			}
		}
		log.Printf("heap profiles in %s (go tool pprof -top -sample_index=inuse_space %s/heap.pb.gz)", f.profiles, f.profiles)
	}
	report(os.Stdout, f, idle, samples, heap, walks.Load(), errN.Load())
	return nil
}

func report(w io.Writer, f flags, idle sample, s []sample, heap string, walks, errs int64) {
	if len(s) == 0 {
		fmt.Fprintln(w, "no samples")
		return
	}
	last := s[len(s)-1]
	peakA := slices.MaxFunc(s, func(a, b sample) int { return cmp.Compare(a.anon, b.anon) })
	peakF := slices.MaxFunc(s, func(a, b sample) int { return cmp.Compare(a.file, b.file) })
	// The window's first sample, and the growth from it to the last and to
	// the window's peak.
	from := s[0]
	for _, x := range s {
		if x.at >= last.at-f.window {
			from = x
			break
		}
	}
	var winPeak sample
	for _, x := range s {
		if x.at >= from.at && x.anon+x.file > winPeak.anon+winPeak.file {
			winPeak = x
		}
	}
	secs := last.at.Seconds()
	fmt.Fprintf(w, "\n%s of mixed load, %d OCSP connections over %d certificates, %d LDAP connections of base reads + 1 paging through all\n",
		last.at.Round(time.Second), f.ocspConns, f.paths, f.ldapConns)
	fmt.Fprintf(w, "OCSP %.0f/s, LDAP base reads %.0f/s, full subtree walks %d, errors %d\n\n",
		float64(last.ocspN)/secs, float64(last.ldapN)/secs, walks, errs)
	fmt.Fprintln(w, "| | RssAnon | RssFile | RSS |")
	fmt.Fprintln(w, "|---|---|---|---|")
	row := func(name string, x sample) {
		fmt.Fprintf(w, "| %s | %d MB | %d MB | %d MB |\n", name, x.anon>>10, x.file>>10, (x.anon+x.file)>>10)
	}
	row("idle after start", idle)
	row(fmt.Sprintf("at %s", from.at.Round(time.Second)), from)
	row("end", last)
	row("peak RssAnon", peakA)
	row("peak RssFile", peakF)
	fmt.Fprintf(w, "| growth over the last %s (end − start of window) | %+d MB | %+d MB | %+d MB |\n",
		f.window, (last.anon-from.anon)>>10, (last.file-from.file)>>10, (last.anon+last.file-from.anon-from.file)>>10)
	fmt.Fprintf(w, "| window peak − start of window | %+d MB | %+d MB | %+d MB |\n",
		(winPeak.anon-from.anon)>>10, (winPeak.file-from.file)>>10, (winPeak.anon+winPeak.file-from.anon-from.file)>>10)
	// Single samples catch the collector's sawtooth; a minute's mean does not.
	mean := func(lo, hi time.Duration) (anon, file int64) {
		var n int64
		for _, x := range s {
			if x.at >= lo && x.at <= hi {
				anon, file, n = anon+x.anon, file+x.file, n+1
			}
		}
		if n == 0 {
			return 0, 0
		}
		return anon / n, file / n
	}
	a0, f0 := mean(from.at, from.at+time.Minute)
	a1, f1 := mean(last.at-time.Minute, last.at)
	fmt.Fprintf(w, "| mean of the window's last minute − mean of its first minute | %+d MB | %+d MB | %+d MB |\n",
		(a1-a0)>>10, (f1-f0)>>10, (a1+f1-a0-f0)>>10)
	fmt.Fprintf(w, "\nGo heap at the end: %s\n", heap)
}

// readData picks the OCSP requests and counts the subscribers, from the
// store of the server that is not running yet.
func readData(dataDir string, n int) (paths []string, subscribers int, err error) {
	st, err := store.Open(store.Options{Dir: filepath.Join(dataDir, "db")})
	if err != nil {
		return nil, 0, err
	}
	defer st.Close()
	var ca *store.CA
	var certs []*store.Cert
	err = st.View(context.Background(), func(tx *store.Tx) error {
		cas, err := tx.CAs()
		if err != nil {
			return err
		}
		if len(cas) == 0 {
			return errors.New("no CA in the store")
		}
		ca = cas[0]
		if err := tx.EachSubscriberAfter("", func(*store.Subscriber) error { subscribers++; return nil }); err != nil {
			return err
		}
		return tx.EachCert(func(c *store.Cert) error {
			if c.Issuer == ca.Name && c.Profile != "ocsp-signing" {
				certs = append(certs, c)
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	caCert, err := x509.ParseCertificate(ca.CertDER)
	if err != nil {
		return nil, 0, err
	}
	rand.Shuffle(len(certs), func(i, j int) { certs[i], certs[j] = certs[j], certs[i] })
	for _, c := range certs[:min(n, len(certs))] {
		x, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return nil, 0, err
		}
		der, err := xocsp.CreateRequest(x, caCert, nil)
		if err != nil {
			return nil, 0, err
		}
		paths = append(paths, "/ocsp/"+base64.StdEncoding.EncodeToString(der))
	}
	if len(paths) == 0 || subscribers == 0 {
		return nil, 0, errors.New("no certificates or subscribers in the store")
	}
	return paths, subscribers, nil
}

func ocspGet(ctx context.Context, c *http.Client, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || len(body) == 0 || body[0] != 0x30 {
		return fmt.Errorf("OCSP GET: HTTP %d, %d bytes", res.StatusCode, len(body))
	}
	return nil
}

func readMem(pid int) sample {
	m := benchproc.MemOf(pid)
	return sample{anon: m.AnonKB, file: m.FileKB}
}

// goHeap reads the Go runtime's heap figures from /metrics.
func goHeap(u string) string {
	res, err := http.Get(u)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	want := []string{"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_sys_bytes", "go_memstats_heap_released_bytes", "go_memstats_sys_bytes"}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if ok && slices.Contains(want, name) {
			x, _ := strconv.ParseFloat(v, 64)
			out = append(out, fmt.Sprintf("%s %d MB", strings.TrimSuffix(strings.TrimPrefix(name, "go_memstats_"), "_bytes"), int64(x)>>20))
		}
	}
	return strings.Join(out, ", ")
}

func fetch(u, file string) error {
	res, err := http.Get(u)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
