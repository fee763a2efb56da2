package server

import (
	"path/filepath"
	"time"

	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/internal/httpapi"
)

// kbIndexDir is the knowledge base's full-text index under the data
// directory. It is derived from the store: deleting it costs a rebuild at
// the next start, nothing else. On disk rather than in memory: bleve's
// in-memory index (upsidedown on gtreap) measured 6x slower searches and
// 17x the resident memory of the on-disk one (scorch), see bench/README.md.
const kbIndexDir = "kb.bleve"

// wireKB mounts the knowledge base's routes on the API listener; its
// service opens the index (catching it up with the store) before the
// listeners start and closes it after they stopped. Its loop indexes
// articles whose indexing failed after their commit.
func wireKB(c *components) error {
	k, err := kb.New(kb.Options{
		Store: c.core.store, Audit: c.auditLog, IndexPath: filepath.Join(c.cfg.DataDir, kbIndexDir), MaxBodyBytes: c.cfg.KB.MaxBodyBytes,
		Logger: c.log, Now: time.Now,
	})
	if err != nil {
		return err
	}
	m, err := httpapi.NewMetrics(c.reg, "kb")
	if err != nil {
		return err
	}
	c.addService(service{name: "kb", start: k.Start, stop: k.Stop})
	kb.NewAPI(kb.APIOptions{KB: k, Logger: c.log, PublicRatePerMinute: c.cfg.KB.PublicRatePerMinute, PublicBurst: c.cfg.KB.PublicBurst}).
		Register(c.api, httpapi.Mount{Auth: c.auth, Log: c.log, MaxBodyBytes: c.cfg.API.MaxBodyBytes, Metrics: m})
	c.runLoop("kb", k.Run)
	c.kb = k
	return nil
}
