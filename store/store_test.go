package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func serial(i int) []byte {
	b := make([]byte, 20)
	copy(b, fmt.Sprintf("%020d", i))
	b[0] = 0x11
	return b
}

func testCert(i int, issuer string, notAfter time.Time) *Cert {
	return &Cert{
		Serial: serial(i), Issuer: issuer, DER: []byte{0x30, byte(i)}, Subject: fmt.Sprintf("CN=user%d,O=Org", i),
		CommonName: fmt.Sprintf("user%d", i), SubscriberID: fmt.Sprintf("sub%d", i%3), Profile: "personal-signing",
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter, IssuedAt: notAfter.Add(-time.Hour),
	}
}

func TestCertRecordsAndIndexes(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var changes []Change
	var mu sync.Mutex
	cancel := s.Watch(func(cs []Change) { mu.Lock(); changes = append(changes, cs...); mu.Unlock() })
	defer cancel()
	err := s.Update(ctx, func(tx *Tx) error {
		for i := 0; i < 10; i++ {
			if err := tx.InsertCert(testCert(i, "demo", base.Add(time.Duration(i)*time.Hour))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 10 {
		t.Errorf("watch saw %d changes, want 10", len(changes))
	}

	t.Run("ok/get", func(t *testing.T) {
		_ = s.View(ctx, func(tx *Tx) error {
			c, err := tx.Cert(serial(3))
			if err != nil || c.CommonName != "user3" || !c.NotAfter.Equal(base.Add(3*time.Hour)) {
				t.Fatalf("Cert(3) = %+v, %v", c, err)
			}
			return nil
		})
	})
	t.Run("fail/missing", func(t *testing.T) {
		_ = s.View(ctx, func(tx *Tx) error {
			if _, err := tx.Cert(serial(99)); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			return nil
		})
	})
	t.Run("fail/duplicate serial", func(t *testing.T) {
		err := s.Update(ctx, func(tx *Tx) error { return tx.InsertCert(testCert(3, "demo", base)) })
		if err == nil {
			t.Fatal("duplicate serial accepted")
		}
	})
	t.Run("ok/indexes", func(t *testing.T) {
		_ = s.View(ctx, func(tx *Tx) error {
			var got []string
			collect := func(c *Cert) error { got = append(got, c.CommonName); return nil }
			if err := tx.CertsByCommonName("USER4", collect); err != nil {
				t.Fatal(err)
			}
			if err := tx.CertsBySubject("cn=user5,o=org", collect); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[user4 user5]" {
				t.Errorf("cn/subject lookups = %v", got)
			}
			got = nil
			if err := tx.CertsBySubscriber("sub1", collect); err != nil {
				t.Fatal(err)
			}
			if len(got) != 3 {
				t.Errorf("subscriber sub1 has %v", got)
			}
			got = nil
			if err := tx.CertsExpiring(base.Add(2*time.Hour), base.Add(5*time.Hour), collect); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != "[user2 user3 user4]" {
				t.Errorf("expiring = %v", got)
			}
			return nil
		})
	})
	t.Run("ok/page", func(t *testing.T) {
		_ = s.View(ctx, func(tx *Tx) error {
			var all []*Cert
			var after []byte
			for {
				page, next, err := tx.CertPage(after, 4)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, page...)
				if next == nil {
					break
				}
				after = next
			}
			if len(all) != 10 {
				t.Errorf("paged %d certs, want 10", len(all))
			}
			return nil
		})
	})
}

func TestRevocation(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	_ = s.Update(ctx, func(tx *Tx) error {
		for i := 0; i < 5; i++ {
			if err := tx.InsertCert(testCert(i, "demo", base)); err != nil {
				return err
			}
		}
		return tx.InsertCert(testCert(9, "other", base))
	})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, at := range map[int]time.Time{1: t0, 3: t0.Add(time.Minute)} {
		if err := s.Update(ctx, func(tx *Tx) error { _, err := tx.RevokeCert(serial(i), at, 1); return err }); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Update(ctx, func(tx *Tx) error { _, err := tx.RevokeCert(serial(1), t0, 4); return err })
	if !errors.Is(err, ErrAlreadyRevoked) {
		t.Errorf("second revoke: %v, want ErrAlreadyRevoked", err)
	}
	_ = s.View(ctx, func(tx *Tx) error {
		var n int
		if err := tx.EachRevoked("demo", func(r *Revocation) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("EachRevoked = %d, want 2", n)
		}
		var since []*Revocation
		if err := tx.EachRevokedSince("demo", t0.Add(30*time.Second), func(r *Revocation) error {
			cp := *r
			cp.Serial = bytes.Clone(r.Serial)
			since = append(since, &cp)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(since) != 1 || !bytes.Equal(since[0].Serial, serial(3)) || since[0].Reason != 1 {
			t.Errorf("EachRevokedSince = %+v", since)
		}
		c, _ := tx.Cert(serial(3))
		if c.Status != StatusRevoked || !c.RevokedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("cert 3 = %+v", c)
		}
		counts, _ := tx.Counts()
		if counts.Certs != 6 || counts.Revoked != 2 {
			t.Errorf("counts = %+v", counts)
		}
		return nil
	})
}

func TestHoldThenRevoke(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	_ = s.Update(ctx, func(tx *Tx) error { return tx.InsertCert(testCert(1, "demo", time.Now().Add(time.Hour))) })
	t0 := time.Now()
	for _, reason := range []int{6, 1} {
		if err := s.Update(ctx, func(tx *Tx) error {
			_, err := tx.RevokeCert(serial(1), t0.Add(time.Duration(reason)*time.Minute), reason)
			return err
		}); err != nil {
			t.Fatalf("revoke with %d: %v", reason, err)
		}
	}
	_ = s.View(ctx, func(tx *Tx) error {
		var reasons []int
		_ = tx.EachRevokedSince("demo", time.Time{}, func(r *Revocation) error { reasons = append(reasons, r.Reason); return nil })
		if fmt.Sprint(reasons) != "[1]" {
			t.Errorf("time index after hold→keyCompromise = %v, want [1]", reasons)
		}
		return nil
	})
}

func TestFailedTransactionChangesNothing(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	notified := false
	s.Watch(func([]Change) { notified = true })
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.InsertCert(testCert(1, "demo", time.Now())); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if notified {
		t.Error("watchers notified of an aborted transaction")
	}
	_ = s.View(ctx, func(tx *Tx) error {
		if _, err := tx.Cert(serial(1)); !errors.Is(err, ErrNotFound) {
			t.Errorf("aborted insert is visible: %v", err)
		}
		return nil
	})
}

func TestSubscribersStaffBlobs(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.PutSubscriber(&Subscriber{ID: "u1", CommonName: "Zhang San"}); err != nil {
			return err
		}
		if err := tx.PutSubscriber(&Subscriber{ID: "u1", CommonName: "Zhang Si"}); err != nil {
			return err
		}
		if err := tx.PutStaff(&Staff{ID: "op", Role: "ca_operator", CertSerials: [][]byte{serial(7)}}); err != nil {
			return err
		}
		return tx.PutBlob("crl", "demo.crl", []byte{1, 2, 3})
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx *Tx) error {
		var names []string
		for _, cn := range []string{"zhang san", "ZHANG SI"} {
			_ = tx.SubscribersByCommonName(cn, func(s *Subscriber) error { names = append(names, s.CommonName); return nil })
		}
		if fmt.Sprint(names) != "[Zhang Si]" {
			t.Errorf("renamed subscriber lookups = %v", names)
		}
		st, err := tx.StaffByCert(serial(7))
		if err != nil || st.Role != "ca_operator" {
			t.Errorf("StaffByCert = %+v, %v", st, err)
		}
		b, err := tx.Blob("crl", "demo.crl")
		if err != nil || !bytes.Equal(b, []byte{1, 2, 3}) {
			t.Errorf("Blob = %v, %v", b, err)
		}
		return nil
	})
}

func TestSequenceSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	var last uint64
	for round := 0; round < 3; round++ {
		s, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			v, err := s.Next("crl-demo")
			if err != nil {
				t.Fatal(err)
			}
			if v <= last {
				t.Fatalf("round %d: sequence went from %d to %d", round, last, v)
			}
			last = v
		}
		s.Close()
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	_, dir := openTest(t)
	_, err := Open(Options{Dir: dir})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
}

func TestUnknownRecordVersionIsRefused(t *testing.T) {
	var c Cert
	if err := decode([]byte{9, '{', '}'}, &c); err == nil {
		t.Fatal("record of version 9 decoded")
	}
}

func TestBackupRestore(t *testing.T) {
	src, _ := openTest(t)
	ctx := context.Background()
	_ = src.Update(ctx, func(tx *Tx) error {
		for i := 0; i < 50; i++ {
			if err := tx.InsertCert(testCert(i, "demo", time.Now().Add(time.Hour))); err != nil {
				return err
			}
		}
		_, err := tx.RevokeCert(serial(4), time.Now(), 1)
		return err
	})
	var buf bytes.Buffer
	if err := src.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	dst, _ := openTest(t)
	if err := dst.Restore(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	var a, b Counts
	_ = src.View(ctx, func(tx *Tx) error { a, _ = tx.Counts(); return nil })
	_ = dst.View(ctx, func(tx *Tx) error { b, _ = tx.Counts(); return nil })
	if a != b || b.Certs != 50 || b.Revoked != 1 {
		t.Errorf("restored counts %+v, source %+v", b, a)
	}
}

func BenchmarkCertRead(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	_ = s.Update(ctx, func(tx *Tx) error {
		for i := 0; i < 1000; i++ {
			if err := tx.InsertCert(testCert(i, "demo", time.Now())); err != nil {
				return err
			}
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_ = s.View(ctx, func(tx *Tx) error { _, err := tx.Cert(serial(i % 1000)); return err })
	}
}

// A revocation stamped no later than the certificate's last change (a clock
// stepped back, or the same instant) still moves UpdatedAt forward: the
// OCSP responder tells a good response from a revoked one by it.
func TestRevokeMovesUpdatedAtForward(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	c := testCert(1, "demo", time.Now().Add(time.Hour))
	c.UpdatedAt = time.Now().UTC()
	_ = s.Update(ctx, func(tx *Tx) error { return tx.InsertCert(c) })
	var issued time.Time
	_ = s.View(ctx, func(tx *Tx) error { got, err := tx.Cert(serial(1)); issued = got.UpdatedAt; return err })
	for _, at := range []time.Time{issued, issued.Add(-time.Hour)} {
		var revoked *Cert
		if err := s.Update(ctx, func(tx *Tx) (err error) { revoked, err = tx.RevokeCert(serial(1), at, 6); return err }); err != nil {
			t.Fatal(err)
		}
		if !revoked.UpdatedAt.After(issued) {
			t.Errorf("revoked at %s: UpdatedAt %s, want after %s", at, revoked.UpdatedAt, issued)
		}
		issued = revoked.UpdatedAt
	}
}
