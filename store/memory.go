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
//   - memtables are skiplist arenas on the heap (64 MiB each, up to 5 of
//     them while flushes lag): a quarter of the budget each, at most
//     numMemtables, and never more than the free-space floor allows
//     (space.go);
//   - value-log files are mmap'd and count as RssFile, not heap: sized by
//     the floor only.
const numMemtables = 3

// withMemory sizes Badger's caches and memtables for a budget of
// cacheBytes (0: DefaultCacheBytes).
func withMemory(o badger.Options, cacheBytes int64) badger.Options {
	if cacheBytes <= 0 {
		cacheBytes = DefaultCacheBytes
	}
	index := cacheBytes / 4
	mt := min(max(cacheBytes/4, 1<<20), 64<<20)
	return o.WithBlockCacheSize(cacheBytes - index).
		WithIndexCacheSize(index).
		WithMemTableSize(mt).
		WithNumMemtables(numMemtables)
}
