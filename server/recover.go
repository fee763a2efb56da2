package server

import (
	"context"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// RecoverResult says what Recover made.
type RecoverResult struct {
	Serial string
	// Dir holds the new admin.crt, admin.key and ca.crt.
	Dir string
	// ActiveBefore is how many active administrator credentials there were.
	ActiveBefore int
}

// Recover issues a new bootstrap administrator credential in a stopped
// server's data directory: the way back in when every administrator
// credential is revoked, lost or expired. The store's lock refuses it while
// a server runs (store.ErrInUse). The credential is added to the
// bootstrap-admin staff member (created if missing), and the recovery is in
// the audit log, in the same transaction.
func Recover(ctx context.Context, cfg *config.Config, log *slog.Logger, operator string) (RecoverResult, error) {
	if _, err := os.Stat(filepath.Join(cfg.DataDir, dbDir)); err != nil {
		return RecoverResult{}, fmt.Errorf("data directory %s holds no store: %w", cfg.DataDir, err)
	}
	c, err := openCore(ctx, cfg, log)
	if err != nil {
		return RecoverResult{}, err
	}
	defer c.Close()
	if err := c.ca.Load(ctx); err != nil {
		return RecoverResult{}, err
	}
	iss, err := c.ca.Default()
	if err != nil {
		return RecoverResult{}, err
	}
	key, err := signer.GenerateKey(signer.ECDSAP256)
	if err != nil {
		return RecoverResult{}, err
	}
	crt, err := c.ca.Issue(ctx, ca.IssueRequest{
		CA: iss.Name, Profile: ca.ProfileCertAdmin, PublicKey: key.Public(),
		Subject: &pkix.Name{CommonName: "bootstrap-admin", Organization: []string{cfg.CA.Organization}},
	})
	if err != nil {
		return RecoverResult{}, fmt.Errorf("issuing recovery administrator certificate: %w", err)
	}
	// Files first, as makeBootstrapAdmin does: a crash before the staff
	// record leaves a certificate that authenticates nobody.
	dir := filepath.Join(cfg.DataDir, BootstrapDir)
	if err := writeCredential(dir, "admin", crt.DER, iss.Cert.Raw, key); err != nil {
		return RecoverResult{}, err
	}
	if err := writeFile(filepath.Join(dir, "ca.crt"), pemCert(iss.Cert.Raw), 0o644); err != nil {
		return RecoverResult{}, err
	}
	res := RecoverResult{Serial: crt.SerialHex(), Dir: dir}
	alog := audit.New(audit.Options{Store: c.store, Logger: log})
	var entry *store.AuditEntry
	err = c.store.Update(ctx, func(tx *store.Tx) error {
		var err error
		if res.ActiveBefore, err = admin.ActiveAdminCredentials(tx, time.Now()); err != nil {
			return err
		}
		staff, err := bootstrapStaff(tx)
		if err != nil {
			return err
		}
		staff.CertSerials = append(staff.CertSerials, crt.Serial)
		if err := tx.PutStaff(staff); err != nil {
			return err
		}
		entry, err = alog.AppendTx(tx, audit.Record{
			Actor: "offline:" + operator, Action: "admin.recover", Object: "staff/" + staff.ID,
			Details: map[string]string{"serial": crt.SerialHex(), "active_admin_credentials_before": fmt.Sprint(res.ActiveBefore)},
		})
		return err
	})
	if err != nil {
		return RecoverResult{}, fmt.Errorf("storing recovery administrator: %w", err)
	}
	alog.Logged(entry)
	log.Warn("issued a recovery administrator credential", "serial", res.Serial, "dir", dir, "active_before", res.ActiveBefore)
	return res, nil
}

// bootstrapStaff reads the bootstrap administrator, or makes a new record
// for one when it was never created or was removed.
func bootstrapStaff(tx *store.Tx) (*store.Staff, error) {
	var found *store.Staff
	err := tx.EachStaff(func(s *store.Staff) error {
		if s.ID == "bootstrap-admin" {
			found = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return &store.Staff{ID: "bootstrap-admin", Name: "Bootstrap administrator", Role: httpapi.RoleAdmin, CreatedAt: time.Now().UTC()}, nil
	}
	if found.Role != httpapi.RoleAdmin {
		return nil, errors.New("staff member bootstrap-admin exists without the admin role: refusing to grant it")
	}
	return found, nil
}
