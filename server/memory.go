package server

import (
	"log/slog"
	"runtime/debug"
	"sync"

	"github.com/certcenter/certcenter/config"
)

// applyMemoryLimit sets the Go runtime's soft memory limit from
// server.memory_limit, before anything is loaded, and returns what puts
// the previous limit back (once; Stop calls it). Without a limit the heap
// may grow to twice what is live before the collector runs (GOGC=100);
// with one the collector runs earlier as the process nears it. The caches'
// byte bounds keep what is live small; the limit keeps the doubling in
// check on a host that counts resident memory.
func applyMemoryLimit(cfg *config.Config, log *slog.Logger) func() {
	limit := int64(cfg.Server.MemoryLimit)
	if limit <= 0 {
		return func() {}
	}
	prev := debug.SetMemoryLimit(limit)
	log.Info("Go memory limit set", "component", "server", "memory_limit_bytes", limit)
	return sync.OnceFunc(func() { debug.SetMemoryLimit(prev) })
}
