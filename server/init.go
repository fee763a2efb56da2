package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/backup"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Layout of the data directory; bootstrap owns tls/, bootstrap/ and
// signer.yaml.
const (
	dbDir   = "db"
	keysDir = "keys"
)

// prepareDataDir creates the data directory and proves it is writable before
// anything else touches it, so an unusable directory is one clear error.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// openCore opens the signer, the store and the authority of a data directory.
type core struct {
	signers signer.Provider
	store   *store.Store
	ca      *ca.Authority

	closeOnce sync.Once
	closeErr  error
}

// Close closes the store and the signer once; later calls return the first result.
func (c *core) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *core) close() error {
	var errs []error
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	if c.signers != nil {
		errs = append(errs, c.signers.Close())
	}
	return errors.Join(errs...)
}

func openCore(ctx context.Context, cfg *config.Config, log *slog.Logger) (*core, error) {
	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := bootstrap.ApplySignerRecord(cfg, log); err != nil {
		return nil, err
	}
	c := &core{}
	var err error
	if c.signers, err = openSigner(ctx, cfg, log); err != nil {
		return nil, err
	}
	c.store, err = store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir), SyncWrites: cfg.Store.SyncWrites, MinFreeBytes: cfg.Store.MinFreeMB << 20, CacheBytes: cfg.Store.CacheMB << 20, Logger: log})
	if err != nil {
		c.Close()
		return nil, err
	}
	// A new data directory: its indexes cover every record from the first,
	// so no later start walks the store to build them.
	if err := c.store.MarkNew(ctx); err != nil {
		c.Close()
		return nil, err
	}
	c.ca = ca.New(ca.Options{
		Store: c.store, Signers: c.signers, Logger: log,
		PublicURL: cfg.CA.PublicURL, LDAPURL: cfg.CA.LDAPURL, Suffix: cfg.LDAP.Suffix,
		CRLShards: cfg.CRL.Shards, RevokeCheck: admin.LastAdminCheck(time.Now),
	})
	return c, nil
}

func openSigner(ctx context.Context, cfg *config.Config, log *slog.Logger) (signer.Provider, error) {
	switch cfg.Signer.Provider {
	case "file":
		return signer.NewFile(filepath.Join(cfg.DataDir, keysDir))
	case "pkcs11":
		return openPKCS11(ctx, cfg, log)
	}
	return nil, fmt.Errorf("signer.provider: unknown provider %q", cfg.Signer.Provider)
}

// bootstrapOf is the bootstrap of c's data directory.
func bootstrapOf(cfg *config.Config, c *core, log *slog.Logger) *bootstrap.Bootstrap {
	return bootstrap.New(bootstrap.Options{Config: cfg, Store: c.store, CA: c.ca, Logger: log})
}

// Init creates the CA in an empty data directory, the API's TLS certificate
// and the bootstrap administrator. It refuses a directory that has a CA.
func Init(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	b := bootstrapOf(cfg, c, log)
	if err := b.Create(ctx); err != nil {
		return err
	}
	_, err = b.Finish(ctx)
	return err
}

// Recover issues a new bootstrap administrator credential in a stopped
// server's data directory (bootstrap.Bootstrap.Recover). The store's lock
// refuses it while a server runs (store.ErrInUse).
func Recover(ctx context.Context, cfg *config.Config, log *slog.Logger, operator string) (bootstrap.RecoverResult, error) {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, dbDir)); err != nil {
		return bootstrap.RecoverResult{}, fmt.Errorf("data directory %s holds no store: %w", cfg.DataDir, err)
	}
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		return bootstrap.RecoverResult{}, err
	}
	defer c.Close()
	return bootstrapOf(cfg, c, log).Recover(ctx, operator)
}

// Seed opens a stopped server's data directory, adds synthetic subscribers
// and pre-signs their OCSP responses, so the next serve is ready at once.
func Seed(ctx context.Context, cfg *config.Config, log *slog.Logger, opts seed.Options) (seed.Result, error) {
	start := time.Now()
	// Most of the seed's peak heap is garbage (Badger's compaction
	// buffers): server.memory_limit bounds it as it does the server's
	// (at 100 000, 1.3 GB RssAnon without a limit, 0.69 GB at 800 MiB,
	// for the same CPU).
	defer applyMemoryLimit(cfg, log)()
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		return seed.Result{}, err
	}
	defer c.Close()
	b := bootstrapOf(cfg, c, log)
	if err := b.LoadOrCreate(ctx); err != nil {
		return seed.Result{}, err
	}
	if _, err := b.Finish(ctx); err != nil {
		return seed.Result{}, err
	}
	r, err := newOCSPResponder(cfg, c, log, prometheus.NewRegistry())
	if err != nil {
		return seed.Result{}, err
	}
	// Each batch stores its certificates' OCSP responses in its own
	// transaction: no dirty marks to write and clear, no second walk.
	opts.Presign = r.PresignTx
	c.store.SetOCSPPresigned(true)
	// With no publishing target or replica following the change log, the
	// seed's entries would only be deleted a minute after the next start
	// (see SuspendUnfollowedLog).
	resumeLog, suspended, err := c.store.SuspendUnfollowedLog(ctx)
	if err != nil {
		return seed.Result{}, err
	}
	if !suspended {
		log.Info("the change log has consumers: the seed writes its entries for them")
	}
	res, err := seed.Run(ctx, c.store, c.ca, opts)
	resumeLog()
	c.store.SetOCSPPresigned(false)
	if err != nil {
		return res, err
	}
	// What the seed did not sign (the bootstrap's certificates, a store
	// seeded by an older version) the usual refresh signs: it reads the
	// dirty set and the schedule's head, not every record.
	st, err := r.Refresh(ctx)
	if err != nil {
		return res, fmt.Errorf("pre-signing OCSP responses: %w", err)
	}
	res.OCSPSigned = res.Subscribers + st.Signed // each seeded certificate with its batch
	if res.CRLs, err = buildSeedCRLs(ctx, cfg, c, log); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// Backup writes a backup of a stopped server's data directory to w.
func Backup(ctx context.Context, cfg *config.Config, log *slog.Logger, w io.Writer) error {
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir), Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	return backup.Write(ctx, w, st, cfg.DataDir)
}

// Restore unpacks a backup into a new data directory and reports the counts
// of the restored store. It unpacks beside the target and renames into place
// only when everything was read, checked and synced, so a truncated or
// corrupt backup never leaves a half-restored directory that serve would
// start on.
func Restore(ctx context.Context, cfg *config.Config, log *slog.Logger, r io.Reader) (store.Counts, error) {
	target := filepath.Clean(cfg.DataDir)
	if entries, err := os.ReadDir(target); err == nil && len(entries) > 0 {
		if _, err := os.Stat(filepath.Join(target, dbDir)); err == nil {
			return store.Counts{}, fmt.Errorf("data directory %s already holds a store; restore into a new one", target)
		}
		return store.Counts{}, fmt.Errorf("data directory %s is not empty; restore into a new one", target)
	}
	tmp := target + ".restoring"
	if err := os.RemoveAll(tmp); err != nil { // what an interrupted restore left
		return store.Counts{}, err
	}
	if err := prepareDataDir(tmp); err != nil {
		return store.Counts{}, err
	}
	fail := func(err error) (store.Counts, error) {
		os.RemoveAll(tmp)
		return store.Counts{}, err
	}
	open := func() (*store.Store, error) {
		return store.Open(store.Options{Dir: filepath.Join(tmp, dbDir), SyncWrites: true, Logger: log})
	}
	if err := backup.Restore(ctx, r, tmp, open); err != nil {
		return fail(err)
	}
	st, err := open()
	if err != nil {
		return fail(err)
	}
	var counts store.Counts
	err = st.View(ctx, func(tx *store.Tx) error {
		counts, err = tx.Counts()
		return err
	})
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	os.Remove(target) // an empty directory the operator made for it
	if err := os.Rename(tmp, target); err != nil {
		return fail(fmt.Errorf("moving the restored data into %s: %w", target, err))
	}
	if err := syncDir(filepath.Dir(target)); err != nil {
		return counts, err
	}
	return counts, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
