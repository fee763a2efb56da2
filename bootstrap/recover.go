package bootstrap

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certcenter/certcenter/admin"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// RecoverResult says what Recover made.
type RecoverResult struct {
	Serial string
	// Dir holds the new admin.crt, admin.key and ca.crt.
	Dir string
	// ActiveBefore is how many active administrator credentials there were.
	ActiveBefore int
	// Kept names where the credential that was in Dir was moved ("" when
	// there was none): recovery never destroys a key somebody may hold.
	Kept string
}

// Recover issues a new bootstrap administrator credential in a stopped
// server's data directory: the way back in when every administrator
// credential is revoked, lost or expired. The caller opens the store, whose
// lock refuses it while a server runs (store.ErrInUse). The credential is
// added to the bootstrap-admin staff member (created if missing), and the
// recovery is in the audit log, in the same transaction.
func (b *Bootstrap) Recover(ctx context.Context, operator string) (RecoverResult, error) {
	if err := b.ca.Load(ctx); err != nil {
		return RecoverResult{}, err
	}
	iss, err := b.ca.Default()
	if err != nil {
		return RecoverResult{}, err
	}
	// A staff record that cannot take the credential is refused before
	// anything is issued or the credential on disk is overwritten; the
	// transaction below checks again.
	if err := b.st.View(ctx, func(tx *store.Tx) error {
		_, err := b.adminStaff(tx)
		return err
	}); err != nil {
		return RecoverResult{}, err
	}
	dir := filepath.Join(b.cfg.DataDir, Dir)
	kept, err := keepCredential(dir, "admin")
	if err != nil {
		return RecoverResult{}, err
	}
	crt, err := b.issueAdminCredential(ctx, iss, "recovery")
	if err != nil {
		return RecoverResult{}, err
	}
	res := RecoverResult{Serial: crt.SerialHex(), Dir: dir, Kept: kept}
	alog := audit.New(audit.Options{Store: b.st, Logger: b.log})
	var entry *store.AuditEntry
	err = b.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if res.ActiveBefore, err = admin.ActiveAdminCredentials(tx, b.now()); err != nil {
			return err
		}
		staff, err := b.adminStaff(tx)
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
	b.log.Warn("issued a recovery administrator credential", "serial", res.Serial, "dir", dir, "active_before", res.ActiveBefore)
	return res, nil
}

// adminStaff reads the bootstrap administrator, or makes a new record
// for one when it was never created or was removed.
func (b *Bootstrap) adminStaff(tx *store.Tx) (*store.Staff, error) {
	var found *store.Staff
	err := tx.EachStaff(func(s *store.Staff) error {
		if s.ID == adminID {
			found = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return &store.Staff{ID: adminID, Name: "Bootstrap administrator", Role: httpapi.RoleAdmin, CreatedAt: b.now().UTC()}, nil
	}
	if found.Role != httpapi.RoleAdmin {
		return nil, errors.New("staff member bootstrap-admin exists without the admin role: refusing to grant it")
	}
	return found, nil
}

// keepCredential moves dir/name.{crt,key} aside to name-<serial>.{crt,key}
// and returns the new certificate's path, or "" when there is none. The
// old certificate may still be active (recovery runs whatever the count),
// so its key is kept for whoever holds the files, not overwritten.
func keepCredential(dir, name string) (string, error) {
	crtPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	pemBytes, err := os.ReadFile(crtPath)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("reading %s: %w", crtPath, err)
	}
	suffix := "old"
	if block, _ := pem.Decode(pemBytes); block != nil {
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			suffix = fmt.Sprintf("%x", c.SerialNumber.Bytes())
		}
	}
	base := filepath.Join(dir, name+"-"+suffix)
	for i := 2; ; i++ {
		if _, err := os.Stat(base + ".crt"); errors.Is(err, fs.ErrNotExist) {
			break
		}
		base = filepath.Join(dir, fmt.Sprintf("%s-%s-%d", name, suffix, i))
	}
	if err := os.Rename(keyPath, base+".key"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("keeping %s: %w", keyPath, err)
	}
	if err := os.Rename(crtPath, base+".crt"); err != nil {
		return "", fmt.Errorf("keeping %s: %w", crtPath, err)
	}
	return base + ".crt", syncDir(dir)
}
