package store

import (
	"context"
	"fmt"
	"testing"
)

// TestMemoryBudget checks that Badger runs with the caches the budget
// sets and at most numMemtables memtables, that the free-space floor still
// sizes memtables (not the budget: they set the largest transaction), and
// that the store works with small ones.
func TestMemoryBudget(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name                       string
		cache, floor               int64
		block, index, memtable, vl int64
	}{
		{name: "ok/default", cache: 0, floor: 256 * mib, block: 36 * mib, index: 12 * mib, memtable: 32 * mib, vl: 64 * mib},
		{name: "ok/large", cache: 512 * mib, floor: 256 * mib, block: 384 * mib, index: 128 * mib, memtable: 32 * mib, vl: 64 * mib},
		{name: "ok/floor caps memtable", cache: 64 * mib, floor: 16 * mib, block: 48 * mib, index: 16 * mib, memtable: 4 * mib, vl: 4 * mib},
		{name: "ok/small budget", cache: 8 * mib, floor: 256 * mib, block: 6 * mib, index: 2 * mib, memtable: 32 * mib, vl: 64 * mib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(Options{Dir: t.TempDir(), CacheBytes: tc.cache, MinFreeBytes: tc.floor})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			o := s.db.Opts()
			got := [5]int64{o.BlockCacheSize, o.IndexCacheSize, o.MemTableSize, o.ValueLogFileSize, int64(o.NumMemtables)}
			want := [5]int64{tc.block, tc.index, tc.memtable, tc.vl, numMemtables}
			if got != want {
				t.Fatalf("block cache, index cache, memtable, value-log file, memtables = %v, want %v", got, want)
			}
			// Enough writes to fill and flush several memtables.
			val := make([]byte, 4096)
			for i := range 2000 {
				if err := s.Update(context.Background(), func(tx *Tx) error {
					return tx.PutBlob("test", fmt.Sprint(i), val)
				}); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			getBlob2(t, s, "1999", len(val))
		})
	}
}

func getBlob2(t *testing.T, s *Store, key string, n int) {
	t.Helper()
	if err := s.View(context.Background(), func(tx *Tx) error {
		v, err := tx.Blob("test", key)
		if err == nil && len(v) != n {
			err = fmt.Errorf("blob %s has %d bytes, want %d", key, len(v), n)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryBudgetKeepsLargeTransactions writes, in one transaction, as
// much as the seed and the CRL builder do: a small cache budget must not
// shrink the largest transaction Badger takes (15 % of a memtable).
func TestMemoryBudgetKeepsLargeTransactions(t *testing.T) {
	s, err := Open(Options{Dir: t.TempDir(), CacheBytes: 8 << 20, MinFreeBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	val := make([]byte, 3000)
	if err := s.Update(context.Background(), func(tx *Tx) error {
		for i := range 1300 { // 3.9 MB: more than 15 % of a 16 MiB memtable
			if err := tx.PutBlob("test", fmt.Sprint(i), val); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("one transaction of 1300 records: %v", err)
	}
	getBlob2(t, s, "1299", len(val))
}
