package pkcs11

import (
	"context"
	"crypto"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/certcenter/certcenter/signer"
)

// BenchmarkSign measures signatures per second through the pool against one
// session used in a loop, on the same SoftHSM2 token and key:
//
//	go test -run x -bench . -benchtime 3s ./signer/pkcs11/
//
// "single" is a Provider with a one-session pool signing from one goroutine,
// which is what a caller without a pool gets. "pool-N" runs 2N goroutines
// (b.SetParallelism over GOMAXPROCS) against an N-session pool, so the pool
// is always contended and the numbers include waiting for a session.
func BenchmarkSign(b *testing.B) {
	for _, alg := range []signer.Algorithm{signer.ECDSAP256, signer.RSA2048} {
		b.Run(string(alg), func(b *testing.B) {
			tok := newToken(b, "bench")
			p := tok.open(b, 8)
			k, err := p.Generate(context.Background(), "bench", alg)
			if err != nil {
				b.Fatal(err)
			}
			if err := p.Close(); err != nil {
				b.Fatal(err)
			}
			d := digest(b, crypto.SHA256, "benchmark")

			b.Run("single", func(b *testing.B) {
				p := tok.open(b, 1)
				k := reload(b, p, k.(*Key))
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
			})
			for _, size := range []int{2, 4, 8} {
				b.Run(fmt.Sprintf("pool-%d", size), func(b *testing.B) {
					p := tok.open(b, size)
					k := reload(b, p, k.(*Key))
					b.ReportAllocs()
					b.SetParallelism(max(1, 2*size/runtime.GOMAXPROCS(0)))
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if _, err := k.Sign(nil, d, crypto.SHA256); err != nil {
								b.Error(err)
								return
							}
						}
					})
					b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
				})
			}
		})
	}
}

// reload finds k again through p, so every sub-benchmark runs on its own
// Provider (and pool size) with the key made once.
func reload(b testing.TB, p *Provider, k *Key) crypto.Signer {
	b.Helper()
	s, err := p.Signer(context.Background(), k.Label())
	if err != nil {
		b.Fatal(err)
	}
	// Warm the pool so session opening is not part of the measurement.
	var wg sync.WaitGroup
	for range cap(p.sem) {
		wg.Go(func() {
			if _, err := s.Sign(nil, make([]byte, 32), crypto.SHA256); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	return s
}
