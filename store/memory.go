package store

import "github.com/dgraph-io/badger/v4"

// DefaultCacheBytes is Badger's memory budget when Options.CacheBytes is 0
// (store.cache_mb's default): with it a store of 100 000 certificates
// stays well inside the server's 400 MB.
const DefaultCacheBytes = 48 << 20

// Where Badger's memory goes, and what bounds each part (measured with
// pprof at 100 000 certificates; README "Memory"):
//
//   - the block cache (decompressed 4 KiB table blocks) was 256 MiB by
//     default and is Go heap (ristretto's Calloc without jemalloc), so the
//     collector doubles it: three quarters of the budget;
//   - table indexes and bloom filters stayed in memory for every table
//     (IndexCacheSize 0): a quarter of the budget, so they no longer grow
//     with the store;
//   - memtables are skiplist arenas on the heap (Badger's default 64 MiB,
//     resident from the start), up to 5 of them while flushes lag. Their
//     size is not the budget's: it sets the largest transaction Badger
//     takes (15 % of a memtable), so it is maxMemTable, or less when the
//     free-space floor says so (space.go). 32 MiB takes 4.8 MB in one
//     transaction, several times the largest certcenter writes (the seed's
//     500 certificates, an estimated 1.3 MB); 12 MiB was too small for a
//     test's 1 000. Their count drops to numMemtables: one being written,
//     one being flushed;
//   - value-log files are mmap'd and count as RssFile, not heap: sized by
//     the floor only.
const numMemtables = 2

// maxMemTable is the memtable size unless the floor asks for less.
const maxMemTable = 32 << 20

// withMemory sizes Badger's caches for a budget of cacheBytes (0:
// DefaultCacheBytes) and bounds the number of memtables.
func withMemory(o badger.Options, cacheBytes int64) badger.Options {
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	index := cacheBytes / 4
	return o.WithBlockCacheSize(cacheBytes - index).
		WithIndexCacheSize(index).
		WithMemTableSize(min(o.MemTableSize, maxMemTable)).
		WithNumMemtables(numMemtables)
}
