package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/certcenter/certcenter/store"
)

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := range n {
		if _, err := l.Append(context.Background(), Record{Actor: "staff:alice", Action: "ra.approve", Object: fmt.Sprintf("request/req-%d", i), Details: map[string]string{"comment": "ok"}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyIntact(t *testing.T) {
	st := openStore(t)
	l := New(Options{Store: st})
	fill(t, l, 5)
	rep, err := l.Verify(context.Background())
	if err != nil || rep.Entries != 5 || rep.Head == "" {
		t.Fatalf("Verify = %+v, %v; want 5 intact entries", rep, err)
	}
}

func TestConcurrentAppendsHaveNoGaps(t *testing.T) {
	st := openStore(t)
	l := New(Options{Store: st, Now: func() time.Time { return time.Unix(1700000000, 0) }})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				if _, err := l.Append(context.Background(), Record{Actor: "system", Action: "test", Object: fmt.Sprint(g, "/", i)}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	// Appends inside other transactions race with the locked ones.
	for i := range 10 {
		err := st.Update(context.Background(), func(tx *store.Tx) error {
			_, err := l.AppendTx(tx, Record{Actor: "system", Action: "tx", Object: fmt.Sprint(i)})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	rep, err := l.Verify(context.Background())
	if err != nil || rep.Entries != 90 {
		t.Fatalf("Verify = %+v, %v; want 90 entries", rep, err)
	}
}

func BenchmarkAppend(b *testing.B) {
	st, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l := New(Options{Store: st})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.Append(context.Background(), Record{Actor: "system", Action: "bench", Object: "x"}); err != nil {
			b.Fatal(err)
		}
	}
}
