package crl

import (
	"bufio"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

// benchRevoked is the number of revoked certificates BenchmarkFullCRL seeds.
// The default million is the scale the issue sets (≤ 10 s, ≤ 400 MB); it
// takes about a minute to seed, so the benchmark only runs when asked:
//
//	go test ./crl -run '^$' -bench FullCRL -benchtime 1x
var benchRevoked = flag.Int("crl.revoked", 1_000_000, "revoked certificates seeded for BenchmarkFullCRL")

// benchBurst is the number of revocations BenchmarkRevocationBurst makes.
var benchBurst = flag.Int("crl.burst", 1_000, "revocations in BenchmarkRevocationBurst's burst")

// seedRevoked writes n revoked certificate records straight into the store,
// in transactions of 2 000 (Badger bounds a transaction), with small fake DER: the CRL is built from the
// revocation index and never reads a certificate.
func seedRevoked(tb testing.TB, st *store.Store, issuer string, n int, at time.Time) {
	tb.Helper()
	const batch = 2_000
	for done := 0; done < n; {
		err := st.Update(context.Background(), func(tx *store.Tx) error {
			for i := 0; i < batch && done+i < n; i++ {
				serial := make([]byte, 20)
				rand.Read(serial)
				serial[0] = serial[0]&0x7f | 0x01
				c := &store.Cert{Serial: serial, Issuer: issuer, DER: []byte{0x30, 0}, Status: store.StatusRevoked,
					RevokedAt: at.Add(-time.Duration(n-done-i) * time.Second), Reason: (done + i) % 6,
					Subject: "CN=bench", Profile: "personal-signing", NotBefore: at, NotAfter: at.Add(365 * 24 * time.Hour),
					IssuedAt: at, UpdatedAt: at}
				if err := tx.InsertCert(c); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("seeding revoked certificates at %d: %v", done, err)
		}
		done += batch
	}
}

// vmHWM reads the process's peak resident set size from /proc/self/status.
func vmHWM(tb testing.TB) int64 { return procStatus(tb, "VmHWM:") }
func vmRSS(tb testing.TB) int64 { return procStatus(tb, "VmRSS:") }

func procStatus(tb testing.TB, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatalf("%s not in /proc/self/status", field)
	return 0
}

// cpuTime is the process's user+system CPU time so far. Wall time on a
// shared machine depends on the load; CPU time much less.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// resetHWM resets VmHWM to the current RSS (Linux: write 5 to clear_refs),
// so the peak measured is the build's, not the seeding's.
func resetHWM() error { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// BenchmarkFullCRL builds the full CRL of a CA with -crl.revoked revoked
// certificates and reports seconds per build, the peak RSS growth over the
// RSS before the build (VmHWM after reset), the heap allocated, and the CRL
// size. The figures go to PERFORMANCE.md.
func BenchmarkFullCRL(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds a million revoked certificates; not in -short")
	}
	e := seededEnv(b, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	var peak int64
	build := func() (time.Duration, time.Duration, int64) {
		runtime.GC()
		before := vmRSS(b)
		if err := resetHWM(); err != nil {
			b.Fatalf("resetting VmHWM: %v", err)
		}
		cpu0 := cpuTime(b)
		start := time.Now()
		if err := e.b.Full(ctx, "demo"); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		cpu := cpuTime(b) - cpu0
		grow := vmHWM(b) - before
		b.Logf("full CRL of %d entries: %s wall, %s CPU (process, all goroutines), peak RSS growth %d MiB (RSS before %d MiB)",
			*benchRevoked, d.Round(time.Millisecond), cpu.Round(time.Millisecond), grow>>20, before>>20)
		return d, cpu, grow
	}
	for range b.N {
		_, _, grow := build()
		peak = max(peak, grow)
	}
	b.StopTimer()
	// Two more builds: the steady state of a running server, whose previous
	// CRL is in memory (it is served) while the next is built.
	var steady time.Duration
	for range 2 {
		d, _, grow := build()
		steady = max(steady, d)
		peak = max(peak, grow)
	}
	b.ReportMetric(steady.Seconds(), "steady-s")
	p, _ := e.b.cached("demo.crl")
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(len(p.der))/(1<<20), "CRL-MiB")
	b.ReportMetric(float64(p.meta.Entries), "entries")
	fmt.Fprintf(os.Stderr, "CRL %s: %d entries, %d bytes\n", p.file, p.meta.Entries, len(p.der))
}

// seededEnv is an env whose store holds -crl.revoked revoked certificates,
// restarted and settled as a server holding this store would be.
func seededEnv(b *testing.B, log *slog.Logger) *env {
	e := newEnv(b, envOpts{log: log})
	seedStart := time.Now()
	seedRevoked(b, e.store, "demo", *benchRevoked, e.clock.Now())
	b.Logf("seeded %d revoked certificates in %s", *benchRevoked, time.Since(seedStart).Round(time.Millisecond))
	// Restart, as a server holding this store would have: the seeding's
	// memtables are flushed and its write buffers gone, so the figures are
	// the CRL build's and not the bulk load's.
	e.restart()
	// Badger compacts the bulk load's level-0 tables in the background after
	// it opens; wait until the process is idle (less than 5% of a core over
	// a second, at most two minutes) so that compaction is not counted as
	// the build's.
	for settle := time.Now(); time.Since(settle) < 2*time.Minute; {
		c0 := cpuTime(b)
		time.Sleep(time.Second)
		if cpuTime(b)-c0 < 50*time.Millisecond {
			b.Logf("store settled after %s", time.Since(settle).Round(time.Second))
			break
		}
	}
	return e
}

// BenchmarkRevocationBurst revokes -crl.burst certificates one by one
// through ca.Revoke, as the RA does, while Run rebuilds the CRLs after
// Notify (crl.delta_delay 2 s, the default), in a store that already holds
// -crl.revoked revoked certificates. It reports how many full CRL builds the
// burst cost and how long until the full CRL lists all of it.
func BenchmarkRevocationBurst(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds a million revoked certificates; not in -short")
	}
	e := seededEnv(b, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})))
	e.b.opts.DeltaDelay = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.b.Full(ctx, "demo"); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); e.b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e.ca.Subscribe(func(_ context.Context, ev ca.Event) {
		if ev.Kind == ca.EventRevoked {
			e.b.Notify(ev.Cert.Issuer)
		}
	})
	// The burst's certificates: valid records, revoked through the CA.
	serials := make([][]byte, *benchBurst)
	err := e.store.Update(ctx, func(tx *store.Tx) error {
		now := e.clock.Now()
		for i := range serials {
			serials[i] = make([]byte, 20)
			rand.Read(serials[i])
			serials[i][0] = serials[i][0]&0x7f | 0x01
			c := &store.Cert{Serial: serials[i], Issuer: "demo", DER: []byte{0x30, 0}, Status: store.StatusValid,
				Subject: "CN=burst", Profile: "personal-signing", NotBefore: now, NotAfter: now.Add(365 * 24 * time.Hour),
				IssuedAt: now, UpdatedAt: now}
			if err := tx.InsertCert(c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var m dto.Metric
	builds := func() int {
		e.b.metrics.builds.WithLabelValues("full", "ok").Write(&m)
		return int(m.GetCounter().GetValue())
	}
	before := builds()
	want := *benchRevoked + *benchBurst
	b.ResetTimer()
	start := time.Now()
	for _, s := range serials {
		if _, err := e.ca.Revoke(ctx, s, ca.ReasonSuperseded); err != nil {
			b.Fatal(err)
		}
	}
	revoking := time.Since(start)
	for {
		if p, ok := e.b.cached("demo.crl"); ok && p.meta.Entries == want {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatal("the full CRL does not list the burst after 5 minutes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	listed := time.Since(start)
	b.StopTimer()
	b.Logf("%d revocations in %s; the full CRL of %d entries listed them all %s after the first, %s after the last, %d full builds",
		*benchBurst, revoking.Round(time.Millisecond), want, listed.Round(time.Millisecond), (listed - revoking).Round(time.Millisecond), builds()-before)
	b.ReportMetric(float64(builds()-before), "full-builds")
	b.ReportMetric(listed.Seconds(), "s-to-full-CRL")
	b.ReportMetric((listed - revoking).Seconds(), "s-after-last")
}
