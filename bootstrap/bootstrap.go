// Package bootstrap makes a data directory usable and keeps it so: it
// creates the CA in an empty one (the demo default of serve, and init),
// gives every CA its delegated OCSP responder, issues the server TLS
// certificate of the API and LDAP listeners (renewed 30 days before expiry,
// replaced when revoked) and the bootstrap administrator's credential, and
// issues the recovery credential of `certcenter admin recover`. It records
// at init which signer holds the CA keys (signer.yaml).
//
// It is a package of its own rather than part of ca because it works on a
// data directory and its files (tls/, bootstrap/, signer.yaml), reads the
// config, and knows staff and the audit log; ca serves nothing and knows
// none of these. Only server and cmd/certcenter import it.
package bootstrap

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// Layout of the data directory that bootstrap writes.
const (
	// Dir holds the bootstrap administrator's credential.
	Dir = "bootstrap"
	// TLSDir holds the server TLS certificate (server.crt, server.key).
	TLSDir = "tls"
)

// Paths of the bootstrap administrator's credential, relative to the data
// directory; the client commands default to them.
var (
	AdminCert = filepath.Join(Dir, "admin.crt")
	AdminKey  = filepath.Join(Dir, "admin.key")
	CACert    = filepath.Join(Dir, "ca.crt")
)

// adminID is the staff member the bootstrap and recovery credentials belong to.
const adminID = "bootstrap-admin"

// renewBefore is how long before expiry the server TLS certificate is
// replaced; a running server checks every checkEvery, and every
// revokedEvery whether the certificate in use was revoked without being
// replaced (the replacement at the revocation failed: signer down, disk
// full), so a revoked certificate is not served for hours.
const (
	renewBefore  = 30 * 24 * time.Hour
	checkEvery   = 12 * time.Hour
	revokedEvery = time.Minute
)

// Options are what a Bootstrap works on: an open store and the authority
// over it, in the data directory Config.DataDir.
type Options struct {
	Config *config.Config
	Store  *store.Store
	CA     *ca.Authority
	// Logger; default discard.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Bootstrap creates and keeps up the CA's own certificates and credentials
// in one data directory.
type Bootstrap struct {
	cfg *config.Config
	st  *store.Store
	ca  *ca.Authority
	log *slog.Logger
	now func() time.Time
}

// New returns a Bootstrap over o's store and authority.
func New(o Options) *Bootstrap {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Bootstrap{cfg: o.Config, st: o.Store, ca: o.CA, log: o.Logger, now: o.Now}
}

// Create creates the CA in an empty data directory (init). It refuses a
// directory that holds a CA.
func (b *Bootstrap) Create(ctx context.Context) error {
	if err := b.ca.Load(ctx); err == nil {
		return fmt.Errorf("data directory %s already holds a CA", b.cfg.DataDir)
	} else if !errors.Is(err, ca.ErrNotInitialised) {
		return err
	}
	return b.create(ctx)
}

// LoadOrCreate loads the CA, creating a demo CA from the config first when
// the data directory has none (serve and seed on an empty directory).
func (b *Bootstrap) LoadOrCreate(ctx context.Context) error {
	err := b.ca.Load(ctx)
	if !errors.Is(err, ca.ErrNotInitialised) {
		return err
	}
	b.log.Info("empty data directory: initialising a demo CA", "data", b.cfg.DataDir)
	return b.create(ctx)
}

// create makes the CA and records the signer its keys are in; callers then
// run Finish, as every start does.
func (b *Bootstrap) create(ctx context.Context) error {
	cfg := b.cfg
	alg, err := signer.ParseAlgorithm(cfg.CA.KeyAlgorithm)
	if err != nil {
		return fmt.Errorf("ca.key_algorithm: %w", err)
	}
	iss, err := b.ca.Init(ctx, ca.InitOptions{
		Name: cfg.CA.Name, CommonName: cfg.CA.CommonName, Organization: cfg.CA.Organization,
		Country: cfg.CA.Country, Algorithm: alg, Validity: cfg.CA.Validity.D(),
	})
	if err != nil {
		return fmt.Errorf("creating CA: %w", err)
	}
	if err := writeSignerRecord(cfg); err != nil {
		return err
	}
	b.log.Info("initialised CA", "ca", iss.Name, "subject", iss.Cert.Subject.String(), "algorithm", alg,
		"bootstrap_credential", filepath.Join(cfg.DataDir, Dir))
	return nil
}

// Finish completes what init does after the CA record exists: each CA's
// OCSP responder, the server TLS certificate, and a bootstrap administrator
// when nobody can administer. Every start runs it, so an init that was
// interrupted after storing the CA is finished instead of leaving a server
// no one can log in to. It returns the server TLS certificate.
func (b *Bootstrap) Finish(ctx context.Context) (*ServerCert, error) {
	for _, iss := range b.ca.Issuers() {
		if iss.OCSPCert != nil {
			continue
		}
		b.log.Warn("CA has no OCSP responder (interrupted init): making one", "ca", iss.Name)
		if _, err := b.ca.RenewOCSPResponder(ctx, iss.Name); err != nil {
			return nil, err
		}
	}
	tlsCert, err := b.ensureServerCert(ctx)
	if err != nil {
		return nil, err
	}
	sc := newServerCert(b, tlsCert)
	hasAdmin := false
	if err := b.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachStaff(func(s *store.Staff) error {
			hasAdmin = hasAdmin || s.Role == httpapi.RoleAdmin
			return nil
		})
	}); err != nil {
		return nil, err
	}
	if hasAdmin {
		return sc, nil
	}
	iss, err := b.ca.Default()
	if err != nil {
		return nil, err
	}
	b.log.Info("no administrator in the store: making the bootstrap credential", "dir", filepath.Join(b.cfg.DataDir, Dir))
	return sc, b.makeAdmin(ctx, iss)
}

// issueAdminCredential issues an administrator certificate from iss and
// writes it with its key and the CA certificate into Dir. Files come before
// any staff record: a crash in between leaves a certificate that
// authenticates nobody, and the next start or recovery makes another,
// whereas the other order could store an administrator whose key never
// reached the disk.
func (b *Bootstrap) issueAdminCredential(ctx context.Context, iss *ca.Issuer, what string) (*store.Cert, error) {
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		return nil, err
	}
	crt, err := b.ca.Issue(ctx, ca.IssueRequest{
		CA: iss.Name, Profile: ca.ProfileCertAdmin, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: adminID, Organization: []string{b.cfg.CA.Organization}},
	})
	if err != nil {
		return nil, fmt.Errorf("issuing %s administrator certificate: %w", what, err)
	}
	dir := filepath.Join(b.cfg.DataDir, Dir)
	if err := writeCredential(dir, "admin", crt.DER, iss.Cert.Raw, key); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, "ca.crt"), pemCert(iss.Cert.Raw), 0o644); err != nil {
		return nil, err
	}
	return crt, nil
}

func (b *Bootstrap) makeAdmin(ctx context.Context, iss *ca.Issuer) error {
	crt, err := b.issueAdminCredential(ctx, iss, "bootstrap")
	if err != nil {
		return err
	}
	staff := &store.Staff{ID: adminID, Name: "Bootstrap administrator", Role: httpapi.RoleAdmin,
		CertSerials: [][]byte{crt.Serial}, CreatedAt: b.now().UTC()}
	if err := b.st.Update(ctx, func(tx *store.Tx) error { return tx.PutStaff(staff) }); err != nil {
		return fmt.Errorf("storing bootstrap administrator: %w", err)
	}
	return nil
}
