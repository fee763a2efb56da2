package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"github.com/spf13/cobra"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/store"
)

// seedOverAPI adds count subscribers to a running server through POST
// /api/v1/seed, batch at a time: one HTTP request per batch, so a long
// seed shows progress, an interruption loses at most the batch in flight,
// and each call stays within the server's request limits.
func seedOverAPI(ctx context.Context, c *apiClient, count, batch int, fraction float64, progress io.Writer) (seed.Response, error) {
	var total seed.Response
	if batch < 1 || batch > seed.MaxBatch {
		return total, fmt.Errorf("--batch %d must be between 1 and %d", batch, seed.MaxBatch)
	}
	begin := time.Now()
	c.timeout = 10 * time.Minute // a batch signs thousands of certificates and responses
	for done := 0; done < count; {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n := min(batch, count-done)
		var res seed.Response
		if err := c.do("POST", "/api/v1/seed", seed.Request{Count: n, RevokedFraction: fraction}, &res); err != nil {
			return total, fmt.Errorf("seeding through %s after %d of %d: %w", c.server, done, count, err)
		}
		if total.First == "" {
			total.First = res.First
		}
		total.Last = res.Last
		total.Subscribers += res.Subscribers
		total.Revoked += res.Revoked
		done += n
		fmt.Fprintf(progress, "seeded %d of %d (%s .. %s)\n", done, count, res.First, res.Last)
	}
	total.ElapsedMS = time.Since(begin).Milliseconds()
	return total, nil
}

func registerSeedAPIFlags(cmd *cobra.Command, api *apiClient, batch *int) {
	f := cmd.Flags()
	f.StringVar(&api.server, "server", "", "seed a running server through its API (POST /api/v1/seed, needs api.seed: true), e.g. https://localhost:8443")
	f.StringVar(&api.cert, "cert", "", "with --server: client certificate PEM of a CA operator (default DATA/"+bootstrap.AdminCert+")")
	f.StringVar(&api.key, "key", "", "with --server: client key PEM (default DATA/"+bootstrap.AdminKey+")")
	f.StringVar(&api.cacert, "cacert", "", "with --server: CA certificate to trust (default DATA/"+bootstrap.CACert+")")
	f.IntVar(batch, "batch", 1000, "with --server: subscribers per API call")
}

// seedInUse turns the offline seed's "data directory in use" into what to
// do instead.
func seedInUse(err error) error {
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("%v: a server is running on it; seed it through its API instead: "+
			"set api.seed: true in its config and run `certcenter seed --server https://HOST:8443 --data DIR --count N` "+
			"(DIR holds the administrator credential), or stop the server", err)
	}
	return err
}

// registerSeedProfileFlag adds the hidden --cpuprofile of the offline seed
// (where a bulk load spends its time); start begins the profile, if asked,
// and returns what stops it.
func registerSeedProfileFlag(cmd *cobra.Command) (start func() (stop func(), err error)) {
	var path, heap string
	cmd.Flags().StringVar(&path, "cpuprofile", "", "write a CPU profile of the offline seed to this file")
	cmd.Flags().StringVar(&heap, "memprofile", "", "write a heap profile of the offline seed to this file every 10 s and at the end")
	_ = cmd.Flags().MarkHidden("cpuprofile")
	_ = cmd.Flags().MarkHidden("memprofile")
	return func() (func(), error) {
		stopHeap := func() {}
		if heap != "" {
			done := make(chan struct{})
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				t := time.NewTicker(10 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-t.C:
					case <-done:
						writeHeapProfile(heap)
						return
					}
					writeHeapProfile(heap)
				}
			}()
			stopHeap = func() { close(done); <-finished }
		}
		if path == "" {
			return stopHeap, nil
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		return func() { pprof.StopCPUProfile(); f.Close(); stopHeap() }, nil
	}
}

func writeHeapProfile(path string) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return
	}
	if pprof.Lookup("heap").WriteTo(f, 0) == nil && f.Close() == nil {
		_ = os.Rename(path+".tmp", path)
		return
	}
	f.Close()
}
