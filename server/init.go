package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/backup"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/seed"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Layout of the data directory.
const (
	dbDir        = "db"
	keysDir      = "keys"
	tlsDir       = "tls"
	BootstrapDir = "bootstrap"
)

// Paths of the bootstrap administrator's credential, relative to the data
// directory; the client commands default to them.
var (
	BootstrapCert   = filepath.Join(BootstrapDir, "admin.crt")
	BootstrapKey    = filepath.Join(BootstrapDir, "admin.key")
	BootstrapCACert = filepath.Join(BootstrapDir, "ca.crt")
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
	if err := applySignerRecord(cfg, log); err != nil {
		return nil, err
	}
	c := &core{}
	var err error
	if c.signers, err = openSigner(ctx, cfg, log); err != nil {
		return nil, err
	}
	c.store, err = store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir), SyncWrites: cfg.Store.SyncWrites, MinFreeBytes: cfg.Store.MinFreeMB << 20, Logger: log})
	if err != nil {
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

// Init creates the CA in an empty data directory, the API's TLS certificate
// and the bootstrap administrator. It refuses a directory that has a CA.
func Init(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.ca.Load(ctx); err == nil {
		return fmt.Errorf("data directory %s already holds a CA", cfg.DataDir)
	} else if !errors.Is(err, ca.ErrNotInitialised) {
		return err
	}
	if err := initialise(ctx, cfg, c, log); err != nil {
		return err
	}
	_, err = finishSetup(ctx, cfg, c, log)
	return err
}

// initialise creates the CA; callers then run finishSetup, as every start does.
func initialise(ctx context.Context, cfg *config.Config, c *core, log *slog.Logger) error {
	alg, err := signer.ParseAlgorithm(cfg.CA.KeyAlgorithm)
	if err != nil {
		return fmt.Errorf("ca.key_algorithm: %w", err)
	}
	iss, err := c.ca.Init(ctx, ca.InitOptions{
		Name: cfg.CA.Name, CommonName: cfg.CA.CommonName, Organization: cfg.CA.Organization,
		Country: cfg.CA.Country, Algorithm: alg, Validity: cfg.CA.Validity.D(),
	})
	if err != nil {
		return fmt.Errorf("creating CA: %w", err)
	}
	if err := writeSignerRecord(cfg); err != nil {
		return err
	}
	log.Info("initialised CA", "ca", iss.Name, "subject", iss.Cert.Subject.String(), "algorithm", alg,
		"bootstrap_credential", filepath.Join(cfg.DataDir, BootstrapDir))
	return nil
}

// finishSetup completes what init does after the CA record exists: each CA's
// OCSP responder, the server TLS certificate, and a bootstrap administrator
// when nobody can administer. Start runs it every time, so an init that was
// interrupted after storing the CA is finished instead of leaving a server
// no one can log in to.
// It returns the server TLS certificate.
func finishSetup(ctx context.Context, cfg *config.Config, c *core, log *slog.Logger) (tls.Certificate, error) {
	for _, iss := range c.ca.Issuers() {
		if iss.OCSPCert != nil {
			continue
		}
		log.Warn("CA has no OCSP responder (interrupted init): making one", "ca", iss.Name)
		if _, err := c.ca.RenewOCSPResponder(ctx, iss.Name); err != nil {
			return tls.Certificate{}, err
		}
	}
	tlsCert, err := ensureServerCert(ctx, cfg, c)
	if err != nil {
		return tls.Certificate{}, err
	}
	hasAdmin := false
	if err := c.store.View(ctx, func(tx *store.Tx) error {
		return tx.EachStaff(func(s *store.Staff) error {
			hasAdmin = hasAdmin || s.Role == httpapi.RoleAdmin
			return nil
		})
	}); err != nil {
		return tls.Certificate{}, err
	}
	if hasAdmin {
		return tlsCert, nil
	}
	iss, err := c.ca.Default()
	if err != nil {
		return tls.Certificate{}, err
	}
	log.Info("no administrator in the store: making the bootstrap credential", "dir", filepath.Join(cfg.DataDir, BootstrapDir))
	return tlsCert, makeBootstrapAdmin(ctx, cfg, c, iss)
}

// ensureServerCert loads the TLS certificate of the API and LDAPS listeners,
// issuing a new one when it is missing, expires within 30 days, or does not
// cover the configured hosts (serverCertHosts).
func ensureServerCert(ctx context.Context, cfg *config.Config, c *core) (tls.Certificate, error) {
	dir := filepath.Join(cfg.DataDir, tlsDir)
	certPath, keyPath := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	hosts := serverCertHosts(cfg)
	if kp, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf := kp.Leaf; leaf != nil && time.Until(leaf.NotAfter) > 30*24*time.Hour && coversHosts(leaf, hosts) &&
			!certRevoked(ctx, c, leaf.SerialNumber.Bytes()) {
			return kp, nil
		}
	}
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		return tls.Certificate{}, err
	}
	var dns []string
	var ips []net.IP
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	cn := cfg.API.Hosts[0]
	crt, err := c.ca.Issue(ctx, ca.IssueRequest{
		Profile: ca.ProfileServerTLS, PublicKey: key.Public(),
		Subject:  &pkix.Name{CommonName: cn, Organization: []string{cfg.CA.Organization}},
		DNSNames: dns, IPAddresses: ips,
	})
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issuing server TLS certificate: %w", err)
	}
	iss, err := c.ca.Issuer(crt.Issuer)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := writeCredential(dir, "server", crt.DER, iss.Cert.Raw, key); err != nil {
		return tls.Certificate{}, err
	}
	return tls.LoadX509KeyPair(certPath, keyPath)
}

func coversHosts(leaf *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func makeBootstrapAdmin(ctx context.Context, cfg *config.Config, c *core, iss *ca.Issuer) error {
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		return err
	}
	crt, err := c.ca.Issue(ctx, ca.IssueRequest{
		CA: iss.Name, Profile: ca.ProfileCertAdmin, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: "bootstrap-admin", Organization: []string{cfg.CA.Organization}},
	})
	if err != nil {
		return fmt.Errorf("issuing bootstrap administrator certificate: %w", err)
	}
	// Files first, staff record last: a crash in between leaves an unused
	// certificate, and the next start makes the credential again, whereas
	// the other order could store an administrator whose key never reached
	// the disk.
	dir := filepath.Join(cfg.DataDir, BootstrapDir)
	if err := writeCredential(dir, "admin", crt.DER, iss.Cert.Raw, key); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "ca.crt"), pemCert(iss.Cert.Raw), 0o644); err != nil {
		return err
	}
	staff := &store.Staff{ID: "bootstrap-admin", Name: "Bootstrap administrator", Role: httpapi.RoleAdmin,
		CertSerials: [][]byte{crt.Serial}, CreatedAt: time.Now().UTC()}
	if err := c.store.Update(ctx, func(tx *store.Tx) error { return tx.PutStaff(staff) }); err != nil {
		return fmt.Errorf("storing bootstrap administrator: %w", err)
	}
	return nil
}

// writeCredential writes name.crt (leaf then issuer) and name.key (PKCS#8, 0600).
func writeCredential(dir, name string, leaf, issuer []byte, key crypto.Signer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding %s key: %w", name, err)
	}
	if err := writeFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, name+".crt"), append(pemCert(leaf), pemCert(issuer)...), 0o644)
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFile writes atomically: a temp file, fsync, rename.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
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

// Seed opens a stopped server's data directory, adds synthetic subscribers
// and pre-signs their OCSP responses, so the next serve is ready at once.
func Seed(ctx context.Context, cfg *config.Config, log *slog.Logger, opts seed.Options) (seed.Result, error) {
	start := time.Now()
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		return seed.Result{}, err
	}
	defer c.Close()
	if err := c.ca.Load(ctx); errors.Is(err, ca.ErrNotInitialised) {
		if err := initialise(ctx, cfg, c, log); err != nil {
			return seed.Result{}, err
		}
	} else if err != nil {
		return seed.Result{}, err
	}
	if _, err := finishSetup(ctx, cfg, c, log); err != nil {
		return seed.Result{}, err
	}
	res, err := seed.Run(ctx, c.store, c.ca, opts)
	if err != nil {
		return res, err
	}
	r, err := newOCSPResponder(cfg, c, log, prometheus.NewRegistry())
	if err != nil {
		return res, err
	}
	st, err := r.Refresh(ctx)
	if err != nil {
		return res, fmt.Errorf("pre-signing OCSP responses: %w", err)
	}
	res.OCSPSigned = st.Signed
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
