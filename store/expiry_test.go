package store

import (
	"context"
	"testing"
	"time"
)

// TestCertsExpiringBoundaries: the expiry window is [from, to) to the
// nanosecond, a zero (or pre-1970) from means "from the beginning", and a
// far to means "until the end" (a negative Unix time cast to uint64 once made
// every window with a zero from empty).
func TestCertsExpiringBoundaries(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// Certificates expire at base, base+1s, base+2s.
	if err := s.Update(ctx, func(tx *Tx) error {
		for i := 0; i < 3; i++ {
			if err := tx.InsertCert(testCert(i, "demo", base.Add(time.Duration(i)*time.Second))); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		want     int
	}{
		{"ok/zero from", time.Time{}, base.Add(time.Hour), 3},
		{"ok/before 1970", time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), base.Add(time.Hour), 3},
		{"ok/to excludes its own instant", time.Time{}, base.Add(time.Second), 1},
		{"ok/to a nanosecond later includes it", time.Time{}, base.Add(time.Second + time.Nanosecond), 2},
		{"ok/from includes its own instant", base.Add(time.Second), base.Add(time.Hour), 2},
		{"ok/from a nanosecond later excludes it", base.Add(time.Second + time.Nanosecond), base.Add(time.Hour), 1},
		{"ok/far future", base.Add(2 * time.Second), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC), 1},
		{"ok/empty window", base.Add(time.Second), base.Add(time.Second), 0},
		{"ok/inverted window", base.Add(time.Hour), base, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := 0
			err := s.View(ctx, func(tx *Tx) error {
				return tx.CertsExpiring(tc.from, tc.to, func(c *Cert) error {
					if c.NotAfter.Before(tc.from) || !c.NotAfter.Before(tc.to) {
						t.Errorf("certificate expiring %s is outside [%s, %s)", c.NotAfter, tc.from, tc.to)
					}
					n++
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if n != tc.want {
				t.Fatalf("CertsExpiring(%s, %s) found %d certificates, want %d", tc.from, tc.to, n, tc.want)
			}
		})
	}
}
