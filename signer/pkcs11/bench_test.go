package pkcs11

import (
	"context"
	"crypto"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certcenter/certcenter/signer"
)

// The benchmarks compare signing through the pool with a single session
// signing in a loop, on the same SoftHSM2 token and key:
//
//	go test -run x -bench . -benchtime 3s ./signer/pkcs11/
//
// BenchmarkSign gives each configuration's throughput on its own;
// BenchmarkPoolRatio alternates short rounds of the single session and each
// pool configuration and reports the median ratio, which is what to quote
// on a shared machine whose speed drifts by tens of percent within minutes.

var ratioRounds = flag.Int("pkcs11.rounds", 5, "rounds of BenchmarkPoolRatio")

// benchConfig is one way of driving the token.
type benchConfig struct {
	name      string
	pool      int  // sessions in all
	instances int  // module instances they are spread over
	callers   int  // goroutines calling Sign (ignored with batch)
	batch     bool // one caller signing benchBatch digests per SignBatch
}

const benchBatch = 512 // ocsp.refreshPage: what one pre-signing round hands the signer

var benchConfigs = []benchConfig{
	// What a caller without a pool gets: one session, Sign in a loop.
	{name: "single", pool: 1, instances: 1, callers: 1},
	// Batching alone, on that one session.
	{name: "single-batch", pool: 1, instances: 1, batch: true},
	// The default pool: 8 sessions in one instance of the module, under 16
	// concurrent callers (a busy OCSP responder signing nonced requests).
	{name: "pool-8", pool: 8, instances: 1, callers: 16},
	// Bulk signing (SignBatch) through the default pool.
	{name: "batch-8", pool: 8, instances: 1, batch: true},
	// The configuration PERFORMANCE.md recommends for SoftHSM2 on two
	// cores: 4 private copies of the module, one session each...
	{name: "pool-4x4", pool: 4, instances: 4, callers: 16},
	// ...and bulk signing through it (OCSP pre-signing): SignBatch.
	{name: "batch-4x4", pool: 4, instances: 4, batch: true},
}

// benchKey generates one key per algorithm and opens a Provider per
// configuration on it.
func benchKeys(b *testing.B, alg signer.Algorithm) []*Key {
	tok := newToken(b, "bench")
	p := tok.open(b, 1)
	if _, err := p.Generate(context.Background(), "bench", alg); err != nil {
		b.Fatal(err)
	}
	keys := make([]*Key, len(benchConfigs))
	for i, c := range benchConfigs {
		o := tok.options(b, c.pool)
		o.ModuleInstances = c.instances
		o.Logger = nil
		pc, err := Open(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { pc.Close() })
		s, err := pc.Signer(context.Background(), "bench")
		if err != nil {
			b.Fatal(err)
		}
		keys[i] = s.(*Key)
		run(b, c, keys[i], 200*time.Millisecond) // open and warm every session
	}
	return keys
}

// run drives k as c says for d and returns signatures per second.
func run(b *testing.B, c benchConfig, k *Key, d time.Duration) float64 {
	dg := digest(b, crypto.SHA256, "benchmark")
	var n atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	if c.batch {
		digests := make([][]byte, benchBatch)
		for i := range digests {
			digests[i] = dg
		}
		for time.Now().Before(end) {
			if _, err := k.SignBatch(context.Background(), digests, crypto.SHA256); err != nil {
				b.Fatal(err)
			}
			n.Add(benchBatch)
		}
	} else {
		for range c.callers {
			wg.Go(func() {
				for time.Now().Before(end) {
					if _, err := k.Sign(nil, dg, crypto.SHA256); err != nil {
						b.Error(err)
						return
					}
					n.Add(1)
				}
			})
		}
		wg.Wait()
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

// BenchmarkSign reports each configuration's signatures per second; b.N
// counts signatures.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		b.Run(string(alg), func(b *testing.B) {
			keys := benchKeys(b, alg)
			dg := digest(b, crypto.SHA256, "benchmark")
			for i, c := range benchConfigs {
				k := keys[i]
				b.Run(c.name, func(b *testing.B) {
					b.ReportAllocs()
					if c.batch {
						digests := make([][]byte, benchBatch)
						for j := range digests {
							digests[j] = dg
						}
						for i := 0; i < b.N; i += benchBatch {
							if _, err := k.SignBatch(context.Background(), digests[:min(benchBatch, b.N-i)], crypto.SHA256); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						b.SetParallelism(max(1, c.callers/runtime.GOMAXPROCS(0)))
						if c.callers == 1 {
							for b.Loop() {
								if _, err := k.Sign(nil, dg, crypto.SHA256); err != nil {
									b.Fatal(err)
								}
							}
						} else {
							b.RunParallel(func(pb *testing.PB) {
								for pb.Next() {
									if _, err := k.Sign(nil, dg, crypto.SHA256); err != nil {
										b.Error(err)
										return
									}
								}
							})
						}
					}
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
				})
			}
		})
	}
}

// BenchmarkPoolRatio alternates one-second rounds of every configuration
// and reports, per configuration, the median over rounds of its throughput
// divided by the single session's in the same round ("x-<name>").
func BenchmarkPoolRatio(b *testing.B) {
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		b.Run(string(alg), func(b *testing.B) {
			keys := benchKeys(b, alg)
			for b.Loop() {
				ratios := make([][]float64, len(benchConfigs))
				rates := make([][]float64, len(benchConfigs))
				for range *ratioRounds {
					var single float64
					for i, c := range benchConfigs {
						r := run(b, c, keys[i], time.Second)
						if i == 0 {
							single = r
						}
						rates[i] = append(rates[i], r)
						ratios[i] = append(ratios[i], r/single)
					}
				}
				for i, c := range benchConfigs {
					if i == 0 {
						b.ReportMetric(median(rates[0]), "single-sigs/s")
						continue
					}
					b.ReportMetric(median(ratios[i]), "x-"+c.name)
					b.Logf("%s %s: %.0f sigs/s median, ratios %s", alg, c.name, median(rates[i]), fmtRatios(ratios[i]))
				}
			}
		})
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func fmtRatios(v []float64) string {
	out := ""
	for _, r := range v {
		out += fmt.Sprintf(" %.2f", r)
	}
	return out
}
