package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
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

func TestVerify(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		tamper func(tx *store.Tx, entries []*store.AuditEntry) error
		want   string // "" = intact
	}{
		{"ok/intact", nil, ""},
		{"fail/changed details", func(tx *store.Tx, es []*store.AuditEntry) error {
			e := es[2]
			e.Details = map[string]string{"comment": "forged"}
			return tx.TamperAudit(e, false)
		}, "entry 3 (ra.approve request/req-2) was changed"},
		{"fail/rehashed entry breaks the next link", func(tx *store.Tx, es []*store.AuditEntry) error {
			e := es[2]
			e.Actor = "staff:mallory"
			e.Hash = Hash(e)
			return tx.TamperAudit(e, false)
		}, "entry 4 does not follow"},
		{"fail/gap", func(tx *store.Tx, es []*store.AuditEntry) error { return tx.TamperAudit(es[1], true) }, "entry 2 missing"},
		{"fail/tail removed", func(tx *store.Tx, es []*store.AuditEntry) error { return tx.TamperAudit(es[4], true) }, "the head names entry 5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			l := New(Options{Store: st})
			fill(t, l, 5)
			if tc.tamper != nil {
				err := st.Update(ctx, func(tx *store.Tx) error {
					var es []*store.AuditEntry
					if err := tx.EachAudit(func(e *store.AuditEntry) error { es = append(es, e); return nil }); err != nil {
						return err
					}
					return tc.tamper(tx, es)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			rep, err := l.Verify(ctx)
			if tc.want == "" {
				if err != nil || rep.Entries != 5 || rep.Head == "" {
					t.Fatalf("Verify = %+v, %v; want 5 intact entries", rep, err)
				}
				return
			}
			if !errors.Is(err, ErrBroken) || !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
				t.Fatalf("Verify = %+v, %v; want ErrBroken mentioning %q", rep, err, tc.want)
			}
		})
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
