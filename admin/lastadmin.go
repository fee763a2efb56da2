package admin

import (
	"errors"
	"fmt"
	"time"

	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/store"
)

// ErrLastAdmin refuses the revocation of the only active administrator
// credential: with it gone nobody could enrol anyone again, and a restart
// makes no new bootstrap credential because the administrator still exists.
var ErrLastAdmin = errors.New("it is the last active administrator credential: enrol another administrator first (certcenter staff add --role admin), or recover offline with `certcenter admin recover`")

// LastAdminCheck returns a ca.Options.RevokeCheck that refuses to revoke
// the last active (unrevoked, unexpired) credential of any administrator.
// It runs inside the revocation's transaction, after the certificate is
// marked revoked, so two concurrent revocations of the last two
// credentials cannot both pass: Badger's conflict detection aborts one.
func LastAdminCheck(now func() time.Time) func(tx *store.Tx, c *store.Cert) error {
	if now == nil {
		now = time.Now
	}
	return func(tx *store.Tx, c *store.Cert) error {
		owner, err := tx.StaffByCert(c.Serial)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if owner.Role != httpapi.RoleAdmin {
			return nil
		}
		n, err := ActiveAdminCredentials(tx, now())
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("certificate %s of %s: %w", c.SerialHex(), owner.ID, ErrLastAdmin)
		}
		return nil
	}
}

// ActiveAdminCredentials counts the unrevoked, unexpired certificates of
// administrators as tx sees them.
func ActiveAdminCredentials(tx *store.Tx, now time.Time) (int, error) {
	n := 0
	err := tx.EachStaff(func(s *store.Staff) error {
		if s.Role != httpapi.RoleAdmin {
			return nil
		}
		for _, serial := range s.CertSerials {
			c, err := tx.Cert(serial)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if c.Status != store.StatusRevoked && now.Before(c.NotAfter) {
				n++
			}
		}
		return nil
	})
	return n, err
}
