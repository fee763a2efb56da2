package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/store"
)

// benchOrg is the RA organisation the seeded subscribers are recorded
// under for the bound workloads, so a directory account approved for it
// reads them through the access rules (directory/access.go).
const benchOrg = "bench-org"

// prepareBound records every seeded certificate as issued to benchOrg and
// stores the directory account dn/password approved for it, in the data
// directory of a stopped certcenter. It is idempotent.
func prepareBound(data, dn, password string) error {
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: filepath.Join(data, "db")})
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer st.Close()
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return err
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertOrg(&store.Org{ID: benchOrg, Name: "certcenter", CreatedAt: time.Now()}); err != nil && !errors.Is(err, store.ErrExists) {
			return err
		}
		err := tx.InsertDirAccount(&store.DirAccount{ID: "bench", DN: dn, PasswordHash: string(hash), Orgs: []string{benchOrg},
			ExpiresAt: time.Now().AddDate(1, 0, 0), ApprovedBy: "bench", CreatedAt: time.Now()})
		if errors.Is(err, store.ErrExists) {
			a, err := tx.DirAccount("bench")
			if err != nil {
				return err
			}
			a.DN, a.PasswordHash, a.ExpiresAt = dn, string(hash), time.Now().AddDate(1, 0, 0)
			return tx.PutDirAccount(a)
		}
		return err
	}); err != nil {
		return fmt.Errorf("storing the bench account: %w", err)
	}
	var serials [][]byte
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if c.SubscriberID != "" {
				serials = append(serials, c.Serial)
			}
			return nil
		})
	}); err != nil {
		return err
	}
	for len(serials) > 0 {
		n := min(len(serials), 1000)
		if err := st.Update(ctx, func(tx *store.Tx) error {
			for _, s := range serials[:n] {
				if err := tx.PutOrgCert(benchOrg, s); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("recording the certificates' organisation: %w", err)
		}
		serials = serials[n:]
	}
	return nil
}
