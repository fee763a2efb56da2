package server

import (
	"context"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMemoryLimit starts a server with server.memory_limit and checks that
// the runtime's limit is the configured one while it runs and the previous
// one after Stop; without the key the limit is left alone.
func TestMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	cfg := testConfig(t)
	cfg.Server.MemoryLimit = 300 << 20
	s := startTest(t, cfg)
	if got := debug.SetMemoryLimit(-1); got != 300<<20 {
		t.Fatalf("memory limit while serving = %d, want %d", got, 300<<20)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("memory limit after Stop = %d, want the previous %d", got, before)
	}

	cfg = testConfig(t)
	s = startTest(t, cfg)
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Fatalf("memory limit without server.memory_limit = %d, want it untouched (%d)", got, before)
	}
	s.Stop(context.Background())
}

// TestPprofOptIn checks that metrics.pprof serves heap profiles on the
// metrics listener, and that without it the listener has none.
func TestPprofOptIn(t *testing.T) {
	for _, on := range []bool{true, false} {
		cfg := testConfig(t)
		cfg.Metrics.Addr, cfg.Metrics.Pprof = "127.0.0.1:0", on
		s := startTest(t, cfg)
		code, body := get(t, http.DefaultClient, "http://"+s.Addr("metrics")+"/debug/pprof/heap?debug=1")
		if on && (code != http.StatusOK || !strings.Contains(body, "heap profile")) {
			t.Fatalf("pprof on: HTTP %d %.80q", code, body)
		}
		if !on && code != http.StatusNotFound {
			t.Fatalf("pprof off: HTTP %d, want 404", code)
		}
		s.Stop(context.Background())
	}
}
