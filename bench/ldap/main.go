// Command ldapbench compares certcenter's LDAP directory with OpenLDAP slapd
// on the same entries: it seeds a certcenter data directory, starts
// certcenter, exports its subscriber tree as LDIF into a private slapd
// (back-mdb, equality indexes on cn, uid, mail and serialNumber, its own
// config and database directory, a loopback port), then runs one load
// generator (go-ldap, N connections, bounded time) against each in turn:
// base-scope reads of random entries among a hot set of -hot subscribers
// (base-hot) and among all of them (base), and subtree equality searches
// on cn (sub-eq-cn). certcenter runs with its default ldap.cache_mb unless
// -cache-mb says otherwise, so base reads among all entries mostly build
// entries that are not cached. It prints Markdown tables for
// bench/README.md, with both servers' resident memory after every cell.
//
//	go build -o /tmp/cc ./cmd/certcenter
//	go run ./bench/ldap -certcenter /tmp/cc -count 100000 -duration 20s
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/internal/benchproc"
	"github.com/certcenter/certcenter/internal/slapd"
)

const suffix = "o=certcenter,c=CN"

func main() {
	bin := flag.String("certcenter", "/tmp/cc-bench", "certcenter binary")
	dir := flag.String("dir", "/tmp/ldapbench", "work directory (certcenter data, slapd config and database)")
	count := flag.Int("count", 100000, "subscribers to seed")
	conns := flag.Int("conns", 16, "client connections")
	dur := flag.Duration("duration", 20*time.Second, "measured time per target and workload")
	warm := flag.Duration("warmup", 3*time.Second, "unmeasured time before each measurement")
	rounds := flag.Int("rounds", 1, "rounds, alternating which server goes first; the table shows each workload's round with the median ratio")
	hot := flag.Int("hot", 10000, "subscribers the base-hot workload reads (the first ones)")
	cacheMB := flag.Int("cache-mb", 0, "certcenter's ldap.cache_mb; 0 keeps its default")
	workloads := flag.String("workloads", "base-hot,base,sub-eq-cn", "workloads, comma-separated")
	profile := flag.Bool("profile", false, "write a CPU profile of certcenter during each of its first-round cells to -dir/cpu-WORKLOAD.pb.gz")
	// -bind-dn adds the workloads base-bound and sub-eq-cn-bound: certcenter
	// is read by a directory account approved for the seeded people's
	// organisation (bound.go), so every entry passes its access rules;
	// slapd is read anonymously as before. -config is certcenter's config
	// (the bound workloads need ldap.allow_cleartext_bind: true).
	bindDN := flag.String("bind-dn", "", "directory account to bind certcenter's connections with in the -bound workloads (made by the bench)")
	bindPW := flag.String("bind-password", "bench account password", "its password")
	cfgFile := flag.String("config", "", "certcenter config file for serve; -cache-mb and -profile add their own ldap: and metrics: sections, so it must not have those")
	flag.Parse()
	bind = [2]string{*bindDN, *bindPW}
	serveConfig = *cfgFile
	ws := strings.Split(*workloads, ",")
	if *bindDN != "" {
		ws = append(ws, "base-bound", "sub-eq-cn-bound")
	}
	if err := run(*bin, *dir, *count, *conns, *rounds, *hot, *cacheMB, *profile, ws, *dur, *warm); err != nil {
		fmt.Fprintln(os.Stderr, "ldapbench:", err)
		os.Exit(1)
	}
}

func run(bin, dir string, count, conns, rounds, hot, cacheMB int, profile bool, workloads []string, dur, warm time.Duration) error {
	if err := slapd.Installed(); err != nil {
		return err
	}
	data := filepath.Join(dir, "certcenter")
	if _, err := os.Stat(filepath.Join(data, "seeded")); err != nil {
		os.RemoveAll(dir)
		log("seeding %d subscribers", count)
		if out, err := exec.Command(bin, "seed", "--data", data, "--count", fmt.Sprint(count), "--revoked-fraction", "0.01").CombinedOutput(); err != nil {
			return fmt.Errorf("seeding: %v: %s", err, out)
		}
		os.WriteFile(filepath.Join(data, "seeded"), nil, 0o600)
	}
	if bind[0] != "" {
		log("recording the seeded certificates under %s and storing the account %s", benchOrg, bind[0])
		if err := prepareBound(data, bind[0], bind[1]); err != nil {
			return err
		}
	}
	ccAddr, slapdAddr := freePort(), freePort()
	args := []string{"serve", "--data", data, "--http-addr", freePort(), "--api-addr", freePort(), "--ldap-addr", ccAddr, "--ldaps-addr", ""}
	var cfg []byte
	if serveConfig != "" {
		b, err := os.ReadFile(serveConfig)
		if err != nil {
			return err
		}
		cfg = append(b, '\n')
	}
	if cacheMB > 0 {
		cfg = fmt.Appendf(cfg, "ldap:\n  cache_mb: %d\n", cacheMB)
	}
	metrics := ""
	if profile {
		metrics = freePort()
		cfg = fmt.Appendf(cfg, "metrics:\n  addr: %s\n  pprof: true\n", metrics)
	}
	if cfg != nil {
		file := filepath.Join(dir, "certcenter.yaml")
		if err := os.WriteFile(file, cfg, 0o600); err != nil {
			return err
		}
		args = append(args, "--config", file)
	}
	cc := exec.Command(bin, args...)
	cc.Stdout, cc.Stderr = nil, nil
	if err := cc.Start(); err != nil {
		return err
	}
	defer func() { cc.Process.Signal(os.Interrupt); cc.Wait() }()
	if err := waitLDAP(ccAddr, 60*time.Second); err != nil {
		return fmt.Errorf("certcenter: %w", err)
	}
	ldif := filepath.Join(dir, "export.ldif")
	log("exporting the directory from certcenter (also warms its entry cache)")
	n, err := export(ccAddr, ldif)
	if err != nil {
		return err
	}
	log("exported %d entries", n)
	sl, err := startSlapd(dir, ldif, slapdAddr)
	if err != nil {
		return err
	}
	defer sl.Stop()
	type round struct{ r [2]stats }
	results := map[string][]round{}
	for n := range max(rounds, 1) {
		for _, w := range workloads {
			var rr round
			// alternate who goes first, so neither always meets the
			// machine's load after the other has warmed it
			order := []int{0, 1}
			if n%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				name, addr := [...]string{"certcenter", "slapd"}[i], [...]string{ccAddr, slapdAddr}[i]
				pid := [...]int{cc.Process.Pid, sl.Pid()}[i]
				if w == "base-hot" {
					// every hot entry read twice: what fits in the cache
					// is cached, as a server that has run a while holds it
					log("round %d: %s: reading the %d hot entries", n+1, name, min(hot, count))
					if err := prime(addr, min(hot, count), conns); err != nil {
						return fmt.Errorf("%s %s: %w", name, w, err)
					}
				}
				log("round %d: %s: %s warm-up %s", n+1, name, w, warm)
				as := ""
				if i == 0 && strings.HasSuffix(w, "-bound") {
					as = bind[0]
				}
				if _, err := load(addr, w, as, count, hot, conns, warm); err != nil {
					return fmt.Errorf("%s %s: %w", name, w, err)
				}
				log("round %d: %s: %s measuring %s", n+1, name, w, dur)
				cpu0 := cpuTime(pid)
				var profiled chan struct{}
				if metrics != "" && i == 0 && n == 0 {
					profiled = make(chan struct{})
					go func() {
						defer close(profiled)
						if err := fetchProfile(metrics, dur, filepath.Join(dir, "cpu-"+w+".pb.gz")); err != nil {
							log("profile of %s: %v", w, err)
						}
					}()
				}
				s, err := load(addr, w, as, count, hot, conns, dur)
				if profiled != nil {
					<-profiled
				}
				if err != nil {
					return fmt.Errorf("%s %s: %w", name, w, err)
				}
				s.cpuPerOp = (cpuTime(pid) - cpu0) / time.Duration(max(s.n, 1))
				s.mem = benchproc.MemOf(pid)
				rr.r[i] = s
			}
			results[w] = append(results[w], rr)
		}
	}
	ratio := func(r round) float64 { return r.r[0].rate / r.r[1].rate }
	cache := "default ldap.cache_mb"
	if cacheMB > 0 {
		cache = fmt.Sprintf("ldap.cache_mb %d", cacheMB)
	}
	fmt.Printf("\n%d subscribers (base-hot: the first %d), %d connections, %s per cell, %d rounds, certcenter with %s; %s\n\n", count, min(hot, count), conns, dur, max(rounds, 1), cache, time.Now().UTC().Format("2006-01-02"))
	fmt.Println("The round with the median ratio per workload:")
	fmt.Println()
	fmt.Println("| workload | certcenter searches/s | certcenter p50 | certcenter p99 | slapd searches/s | slapd p50 | slapd p99 | ratio (cc/slapd) | every round's ratio | server CPU per search cc / slapd |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, w := range workloads {
		rs := results[w]
		var all []string
		for _, r := range rs {
			all = append(all, fmt.Sprintf("%.2fx", ratio(r)))
		}
		sorted := slices.Clone(rs)
		slices.SortFunc(sorted, func(a, b round) int { return cmpFloat(ratio(a), ratio(b)) })
		m := sorted[len(sorted)/2]
		c, s := m.r[0], m.r[1]
		fmt.Printf("| %s | %.0f | %s | %s | %.0f | %s | %s | %.2fx | %s | %s / %s (%.2fx less) |\n", w, c.rate, c.p50, c.p99, s.rate, s.p50, s.p99, ratio(m), strings.Join(all, " "),
			c.cpuPerOp.Round(100*time.Nanosecond), s.cpuPerOp.Round(100*time.Nanosecond), float64(s.cpuPerOp)/float64(max(c.cpuPerOp, 1)))
	}
	fmt.Println()
	fmt.Println("Every round (resident memory of each server right after its cell, RssAnon / RssFile):")
	fmt.Println()
	fmt.Println("| round | workload | certcenter searches/s | slapd searches/s | ratio | certcenter memory | slapd memory |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for n := range max(rounds, 1) {
		for _, w := range workloads {
			r := results[w][n]
			c, s := r.r[0], r.r[1]
			fmt.Printf("| %d | %s | %.0f | %.0f | %.2fx | %d / %d MB | %d / %d MB |\n", n+1, w, c.rate, s.rate, ratio(r),
				c.mem.AnonKB>>10, c.mem.FileKB>>10, s.mem.AnonKB>>10, s.mem.FileKB>>10)
		}
	}
	fmt.Println()
	fmt.Println("| process | RssAnon | RssFile |")
	fmt.Println("|---|---|---|")
	for i, pid := range []int{cc.Process.Pid, sl.Pid()} {
		m := benchproc.MemOf(pid)
		fmt.Printf("| %s | %d MB | %d MB |\n", [...]string{"certcenter", "slapd"}[i], m.AnonKB>>10, m.FileKB>>10)
	}
	return nil
}

// prime reads the first n subscriber entries twice, over conns connections.
func prime(addr string, n, conns int) error {
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for k := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ldap.DialURL("ldap://" + addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for range 2 {
				for i := k; i < n; i += conns {
					dn := fmt.Sprintf("cn=seed-%07d,ou=unit-%02d,%s", i, i%16, suffix)
					if _, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil)); err != nil {
						errs <- fmt.Errorf("reading %s: %w", dn, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// fetchProfile writes a CPU profile of d (less a second, to end within the
// cell) from certcenter's pprof listener to file.
func fetchProfile(addr string, d time.Duration, file string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(int(d.Seconds())-1, 1)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func log(f string, a ...any) { fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+f+"\n", a...) }

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitLDAP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if c, err := ldap.DialURL("ldap://" + addr); err == nil {
			_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("not answering LDAP")
}

// export writes every entry under the suffix as LDIF, parents first.
func export(addr, file string) (int, error) {
	c, err := ldap.DialURL("ldap://" + addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	f, err := os.Create(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	n := 0
	res, err := c.SearchWithPaging(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=*)", []string{"*"}, nil), 1000)
	if err != nil {
		return 0, fmt.Errorf("exporting: %w", err)
	}
	for _, e := range res.Entries {
		{
			n++
			fmt.Fprintf(w, "dn: %s\n", e.DN)
			for _, a := range e.Attributes {
				for _, v := range a.ByteValues {
					if utf8.Valid(v) && !strings.Contains(a.Name, ";binary") && !strings.ContainsAny(string(v), "\n\r\x00") && !strings.HasPrefix(string(v), " ") {
						fmt.Fprintf(w, "%s: %s\n", a.Name, v)
					} else {
						fmt.Fprintf(w, "%s:: %s\n", a.Name, base64.StdEncoding.EncodeToString(v))
					}
				}
			}
			w.WriteString("\n")
		}
	}
	return n, w.Flush()
}

// startSlapd loads ldif into a fresh back-mdb with slapadd and starts
// slapd on addr.
func startSlapd(dir, ldif, addr string) (*slapd.Server, error) {
	cfg := slapd.Config{Dir: filepath.Join(dir, "slapd"), URLs: []string{"ldap://" + addr + "/"}, Suffix: suffix,
		SizeLimit: 1000, MaxSize: 4 << 30, Indexes: []string{"objectClass eq", "cn,uid,mail,serialNumber eq"}}
	os.RemoveAll(cfg.Dir)
	if err := cfg.WriteConf(); err != nil {
		return nil, err
	}
	// no schema check: X.520 serialNumber is not in any of OpenLDAP's
	// person classes; the entries are loaded as certcenter serves them.
	log("slapadd into back-mdb")
	if err := cfg.Slapadd(ldif, false); err != nil {
		return nil, err
	}
	sl := slapd.New(cfg)
	return sl, sl.Start(context.Background())
}

// cpuTime is the user and system CPU a process has used (Linux; clock
// ticks of 10 ms), 0 if unknown.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// the fields after the command name, which is in parentheses
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0
	}
	var ut, st int64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return time.Duration(ut+st) * 10 * time.Millisecond
}

type stats struct {
	n        int
	cpuPerOp time.Duration // the server's CPU per search
	mem      benchproc.Mem // the server's resident memory after the cell
	rate     float64
	p50, p99 time.Duration
}

// bind is the -bind-dn and -bind-password of the -bound workloads, and
// serveConfig certcenter's -config; set once by main.
var (
	bind        [2]string
	serveConfig string
)

// load runs the workload on conns connections for d and measures it; each
// connection first binds as bindDN (with bind's password) if it is set.
func load(addr, workload, bindDN string, count, hot, conns int, d time.Duration) (stats, error) {
	var mu sync.Mutex
	var all []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := ldap.DialURL("ldap://" + addr)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				return
			}
			defer c.Close()
			if bindDN != "" {
				if err := c.Bind(bindDN, bind[1]); err != nil {
					mu.Lock()
					firstErr = fmt.Errorf("bind as %s: %w", bindDN, err)
					mu.Unlock()
					return
				}
			}
			lat := make([]time.Duration, 0, 1<<16)
			for ctx.Err() == nil {
				n := rand.IntN(count)
				if workload == "base-hot" {
					n = rand.IntN(min(hot, count))
				}
				cn := fmt.Sprintf("seed-%07d", n)
				var req *ldap.SearchRequest
				if strings.HasPrefix(workload, "base") {
					req = ldap.NewSearchRequest(fmt.Sprintf("cn=%s,ou=unit-%02d,%s", cn, n%16, suffix), ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)
				} else {
					req = ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(cn="+cn+")", nil, nil)
				}
				t0 := time.Now()
				r, err := c.Search(req)
				lat = append(lat, time.Since(t0))
				if err == nil && len(r.Entries) != 1 {
					err = fmt.Errorf("%s found %d entries", cn, len(r.Entries))
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return stats{}, firstErr
	}
	slices.Sort(all)
	if len(all) == 0 {
		return stats{}, errors.New("no searches completed")
	}
	pct := func(p float64) time.Duration { return all[int(float64(len(all)-1)*p)].Round(time.Microsecond) }
	return stats{n: len(all), rate: float64(len(all)) / el.Seconds(), p50: pct(0.50), p99: pct(0.99)}, nil
}
