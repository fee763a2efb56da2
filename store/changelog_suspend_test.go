package store

import (
	"context"
	"testing"
)

func logCount(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.View(context.Background(), func(tx *Tx) error {
		return tx.scan(pLog, nil, true, func(_, _ []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSuspendUnfollowedLog: with no consumer the seed's appends write
// nothing and a consumer cannot register meanwhile; with one, the log is
// kept.
func TestSuspendUnfollowedLog(t *testing.T) {
	ctx := context.Background()
	s, err := Open(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	resume, suspended, err := s.SuspendUnfollowedLog(ctx)
	if err != nil || !suspended {
		t.Fatalf("no consumer: suspended %v, %v", suspended, err)
	}
	appendOne(t, s, LogCertIssued, "01")
	if n := logCount(t, s); n != 0 {
		t.Errorf("%d entries written while suspended", n)
	}
	if _, _, err := s.RegisterConsumer(ctx, "target"); err == nil {
		t.Error("a consumer registered while the log was suspended")
	}
	resume()
	appendOne(t, s, LogCertIssued, "02")
	if n := logCount(t, s); n != 1 {
		t.Errorf("%d entries after resume, want 1", n)
	}
	if _, _, err := s.RegisterConsumer(ctx, "target"); err != nil {
		t.Fatal(err)
	}
	resume, suspended, err = s.SuspendUnfollowedLog(ctx)
	if err != nil || suspended {
		t.Fatalf("with a consumer: suspended %v, %v", suspended, err)
	}
	appendOne(t, s, LogCertIssued, "03")
	resume()
	if n := logCount(t, s); n != 2 {
		t.Errorf("%d entries with a consumer, want 2", n)
	}
}
