package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func appendOne(t *testing.T, s *Store, kind LogKind, key string) {
	t.Helper()
	if err := s.Update(context.Background(), func(tx *Tx) error {
		return tx.AppendLog(LogEntry{Kind: kind, Key: key})
	}); err != nil {
		t.Fatalf("append %s: %v", key, err)
	}
}

func readAll(t *testing.T, s *Store, after uint64) []LogEntry {
	t.Helper()
	es, err := s.ReadLog(context.Background(), after, 1<<20)
	if err != nil {
		t.Fatalf("ReadLog: %v", err)
	}
	return es
}

func keys(es []LogEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}

// A transaction that took a lower number but commits later must hold back
// readers: otherwise a reader would move its cursor past it and never see it.
func TestChangeLogReadersWaitForSlowerCommits(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	taken, release, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- s.Update(ctx, func(tx *Tx) error {
			if err := tx.AppendLog(LogEntry{Kind: LogCertIssued, Key: "slow"}); err != nil {
				return err
			}
			close(taken)
			<-release
			return nil
		})
	}()
	<-taken
	appendOne(t, s, LogCertIssued, "fast")
	if es := readAll(t, s, 0); len(es) != 0 {
		t.Fatalf("read %v while a lower-numbered transaction is still open", keys(es))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	es := readAll(t, s, 0)
	if got := fmt.Sprint(keys(es)); got != "[slow fast]" {
		t.Fatalf("log = %s, want [slow fast]", got)
	}
	if es[0].Seq >= es[1].Seq {
		t.Errorf("numbers not increasing: %d, %d", es[0].Seq, es[1].Seq)
	}
}

// Many writers and one reader that advances its cursor as it goes: the
// reader sees every committed entry once, in increasing order.
func TestChangeLogConcurrentWritersOneReader(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				err := s.Update(ctx, func(tx *Tx) error {
					// A shared key makes some of these conflict and
					// retry, leaving gaps in the numbers.
					if _, err := tx.get([]byte("hot")); err != nil && !errors.Is(err, ErrNotFound) {
						return err
					}
					if err := tx.set([]byte("hot"), []byte{byte(i)}); err != nil {
						return err
					}
					return tx.AppendLog(LogEntry{Kind: LogCertIssued, Key: fmt.Sprintf("w%d-%d", w, i)})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	seen := map[string]int{}
	var cursor uint64
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			es, err := s.ReadLog(ctx, cursor, 7)
			if err != nil {
				t.Error(err)
				return
			}
			for _, e := range es {
				if e.Seq <= cursor {
					t.Errorf("entry %d at or below cursor %d", e.Seq, cursor)
				}
				cursor = e.Seq
				seen[e.Key]++
			}
			if len(es) == 0 {
				select {
				case <-stop:
					return
				default:
					time.Sleep(time.Millisecond)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone
	// Drain what committed after the reader's last look.
	for _, e := range readAll(t, s, cursor) {
		seen[e.Key]++
	}
	if len(seen) != writers*each {
		t.Errorf("reader saw %d distinct entries, want %d", len(seen), writers*each)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("entry %s seen %d times", k, n)
		}
	}
}

func TestChangeLogOnlyWithItsTransaction(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.InsertCert(testCert(1, "demo", base)); err != nil {
			return err
		}
		if err := tx.AppendLog(LogEntry{Kind: LogCertIssued, Key: "01"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if es := readAll(t, s, 0); len(es) != 0 {
		t.Fatalf("failed transaction left entries %v", keys(es))
	}
	// A duplicate insert fails the transaction: neither the second record
	// nor its entry is written.
	ins := func() error {
		return s.Update(ctx, func(tx *Tx) error {
			if err := tx.AppendLog(LogEntry{Kind: LogCertIssued, Key: "dup"}); err != nil {
				return err
			}
			return tx.InsertCert(testCert(2, "demo", base))
		})
	}
	if err := ins(); err != nil {
		t.Fatal(err)
	}
	if err := ins(); err == nil {
		t.Fatal("second insert of the same serial succeeded")
	}
	if got := fmt.Sprint(keys(readAll(t, s, 0))); got != "[dup]" {
		t.Fatalf("log = %s, want one entry", got)
	}
	if err := s.View(ctx, func(tx *Tx) error { return tx.AppendLog(LogEntry{Kind: LogCACert, Key: "x"}) }); err == nil {
		t.Error("AppendLog in a read-only transaction succeeded")
	}
}

func TestChangeLogCompactionKeepsSlowestCursor(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	fast, fresh, err := s.RegisterConsumer(ctx, "fast")
	if err != nil || !fresh {
		t.Fatalf("RegisterConsumer = %d, %v, %v", fast, fresh, err)
	}
	if _, _, err := s.RegisterConsumer(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		appendOne(t, s, LogCertIssued, fmt.Sprint(i))
	}
	es := readAll(t, s, 0)
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.SetCursor("fast", es[9].Seq); err != nil {
			return err
		}
		return tx.SetCursor("slow", es[3].Seq)
	}); err != nil {
		t.Fatal(err)
	}
	n, err := s.CompactLog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("compaction deleted %d, want 4", n)
	}
	if got := fmt.Sprint(keys(readAll(t, s, 0))); got != "[4 5 6 7 8 9]" {
		t.Errorf("after compaction: %s", got)
	}
	// Registering again returns the stored cursor, not the head.
	if c, fresh, _ := s.RegisterConsumer(ctx, "slow"); fresh || c != es[3].Seq {
		t.Errorf("re-register = %d, fresh %v; want %d, false", c, fresh, es[3].Seq)
	}
	if err := s.DropConsumer(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompactLog(ctx); err != nil {
		t.Fatal(err)
	}
	if es := readAll(t, s, 0); len(es) != 0 {
		t.Errorf("after dropping the slow consumer: %v", keys(es))
	}
}

// Entries, cursors and the numbering survive a reopen (a crash leaves the
// same state on disk: commits are synced, the sequence lease is stored
// before numbers are handed out).
func TestChangeLogSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(Options{Dir: dir, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RegisterConsumer(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	appendOne(t, s, LogCRLPublished, "a.crl")
	appendOne(t, s, LogCRLPublished, "b.crl")
	first := readAll(t, s, 0)
	if err := s.Update(ctx, func(tx *Tx) error { return tx.SetCursor("c", first[0].Seq) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Dir: dir, SyncWrites: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var cur uint64
	if err := s.View(ctx, func(tx *Tx) error { cur, _, err = tx.Cursor("c"); return err }); err != nil {
		t.Fatal(err)
	}
	if cur != first[0].Seq {
		t.Fatalf("cursor after reopen = %d, want %d", cur, first[0].Seq)
	}
	appendOne(t, s, LogCRLPublished, "c.crl")
	es := readAll(t, s, cur)
	if got := fmt.Sprint(keys(es)); got != "[b.crl c.crl]" {
		t.Fatalf("after reopen: %s", got)
	}
	if es[1].Seq <= es[0].Seq {
		t.Errorf("numbering went back after reopen: %d after %d", es[1].Seq, es[0].Seq)
	}
}

func TestChangeLogSnapshotAndWake(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	wake, cancel := s.WatchLog()
	defer cancel()
	appendOne(t, s, LogCACert, "demo")
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no wakeup after a commit that appended")
	}
	var head uint64
	var cas int
	if err := s.ViewSnapshot(ctx, func(tx *Tx, h uint64) error {
		head = h
		es := readAll(t, s, 0)
		if len(es) != 1 || es[0].Seq > h {
			t.Errorf("entries %v not all at or below head %d", es, h)
		}
		cs, err := tx.CAs()
		cas = len(cs)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = cas
	appendOne(t, s, LogCACert, "demo2")
	if es := readAll(t, s, head); len(es) != 1 || es[0].Key != "demo2" {
		t.Errorf("after head: %v", keys(es))
	}
	n, oldest, err := s.PendingFor(ctx, 0)
	if err != nil || n != 2 || oldest.IsZero() {
		t.Errorf("PendingFor = %d, %v, %v", n, oldest, err)
	}
}
