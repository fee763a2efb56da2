package store

import "github.com/dgraph-io/badger/v4"

// SetOCSPPresigned says whether every transaction that writes a
// certificate also stores that certificate's current OCSP response (the
// offline seed does, in the certificate's own transaction, with
// ocsp.Responder.PresignTx). While on, certificate writes leave no OCSP
// dirty mark: the mark would name work already done, and clearing it again
// would leave a tombstone per certificate for start-up to skip. Only a
// process that is the store's sole writer may turn it on (the store is
// opened by one process at a time; the seed opens it with the server
// stopped), and it must turn it off before anything else writes.
func (s *Store) SetOCSPPresigned(on bool) { s.ocspPresigned.Store(on) }

// withBulkLoad is Options.BulkLoad: a million seeded certificates are
// about 2 GB of keys and values written in random key order, and with the
// serving options compaction rewrote them level after level (10 MB base
// level, 2 MB tables, L0 compacted every 5 tables by 4 compactors on 2
// cores), taking a growing share of the CPU and holding hundreds of MB of
// table builders. Bigger tables and levels mean fewer levels to rewrite
// through, more L0 tables before a compaction merges them in one pass, and
// two compactors leave the cores to the signing. Memtable size and count
// stay as the free-space floor and memory budget set them (space.go,
// memory.go): they bound what Badger writes at close without asking.
func withBulkLoad(o badger.Options) badger.Options {
	return o.WithBaseTableSize(8 << 20).
		WithBaseLevelSize(64 << 20).
		WithNumLevelZeroTables(10).
		WithNumLevelZeroTablesStall(30).
		WithNumCompactors(2)
}
