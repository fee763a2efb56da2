package directory

import (
	"unsafe"
)

// The entry cache: built subscriber entries by ID (byID, with byDN and
// bySerial pointing into it), bounded by Options.CacheEntries and
// Options.CacheBytes, whichever is reached first; and the cn groups
// (cnGroup) the entries were built from, bounded with them. cacheMu guards
// all of it.
//
// An entry keeps each value once, as the bytes a response sends (entry.go):
// about 2.4 KB counted with a 1 KB certificate, so the default 32 MB hold
// some 14 000 entries. The bound is in bytes because the
// entries' size follows their certificates, and a cache bounded by count
// alone was a gigabyte of heap at 100 000 entries, which the collector then
// doubles.

// DefaultCacheBytes bounds the entry cache when Options.CacheBytes is 0
// (ldap.cache_mb's default).
const DefaultCacheBytes = 32 << 20

// cnGroupSlack is how many more cn groups than cached entries may be kept:
// searches by cn cache groups whose entries are not built.
const cnGroupSlack = 4096

// mapEntryBytes is a cached entry's share of a map (byID, byDN, bySerial):
// its slot and the table's spare room.
const mapEntryBytes = 48

// allocSize is what malloc gives for a request of n bytes: Go's size
// classes, which grow by an eighth or so (runtime/sizeclasses.go), and
// whole pages above 32 KB.
func allocSize(n int) int64 {
	switch {
	case n <= 0:
		return 0
	case n <= 16:
		return int64((n + 7) &^ 7)
	case n <= 128:
		return int64((n + 15) &^ 15)
	case n > 32<<10:
		return int64((n + 8191) &^ 8191)
	}
	// classes above 128 bytes are at most 1/8 apart: round up to the
	// next multiple of a power of two an eighth of n's magnitude
	step := 1
	for step*16 <= n {
		step <<= 1
	}
	return int64((n + step - 1) / step * step)
}

// entrySize is what a cached entry costs the heap, in bytes: its own
// allocations (struct, block, attributes, norms, certificates, strings) as
// malloc rounds them, and its keys in byID, byDN and bySerial. Strings it
// shares — the normalized DN as entryDN's norm, norms of object class
// names, issuer DNs, organisation and profile names (intern) — are not
// counted.
func entrySize(e *Entry) int64 {
	n := allocSize(int(unsafe.Sizeof(Entry{})))
	n += allocSize(len(e.DN)) + allocSize(len(e.norm)) + allocSize(len(e.subscriber))
	n += allocSize(cap(e.block))
	n += allocSize(cap(e.attrs) * int(unsafe.Sizeof(entryAttr{})))
	n += allocSize(cap(e.norms) * int(unsafe.Sizeof("")))
	for _, v := range e.norms {
		if len(v) > 0 && unsafe.StringData(v) != unsafe.StringData(e.norm) && !sharedNorm(v) {
			n += allocSize(len(v))
		}
	}
	n += allocSize(cap(e.certs) * int(unsafe.Sizeof(certInfo{})))
	n += allocSize(len(e.serials))
	for range e.eachSerial() {
		n += mapEntryBytes
	}
	return n + 2*mapEntryBytes // byID and byDN
}

// sharedNorm reports whether v is one of constNorms' strings, which every
// entry shares.
func sharedNorm(v string) bool {
	for _, c := range constNorms {
		if unsafe.StringData(c) == unsafe.StringData(v) {
			return true
		}
	}
	return false
}

// cacheLocked admits the entry of subscriber id, evicting others until it
// fits; an entry larger than the whole bound is not cached. cacheMu is held.
func (d *Directory) cacheLocked(id string, e *Entry) {
	d.evictLocked(id)
	size := entrySize(e)
	if size > d.opts.CacheBytes {
		return
	}
	for len(d.byID) > 0 && (len(d.byID) >= d.opts.CacheEntries || d.cacheBytes+size > d.opts.CacheBytes) {
		d.evictSomeLocked()
	}
	d.byID[id] = e
	d.byDN[e.norm] = e
	for serial := range e.eachSerial() {
		d.bySerial[serial] = id
	}
	d.cacheBytes += size
	for len(d.cnGroup) > len(d.byID)+cnGroupSlack {
		d.dropSomeGroupLocked()
	}
}

// evictSomeLocked frees an eighth of the cache, at random but giving a
// second chance to entries read since the last eviction (map order is
// random enough; a scan once in a while is cheaper than an LRU list that
// every cached read would have to lock, and read entries survive reads of
// many others — a hot set stays cached under a stream of misses). Whole
// cn groups go, as a change would drop them, so a cached entry's group is
// always known. cacheMu is held.
func (d *Directory) evictSomeLocked() {
	n := max(len(d.byID)/8, 1)
	for pass := range 2 {
		for id, e := range d.byID {
			if pass == 0 && e.used.Swap(false) {
				continue
			}
			d.dropLocked(id)
			if n--; n <= 0 {
				return
			}
		}
	}
}

// dropSomeGroupLocked drops a cn group (and its cached entries), one
// whose entries were not read since the last eviction if one of the
// first few looked at is such. cacheMu is held.
func (d *Directory) dropSomeGroupLocked() {
	tries := 8
	for cn, ids := range d.cnGroup {
		used := false
		for _, id := range ids {
			if e := d.byID[id]; e != nil && e.used.Load() {
				used = true
				break
			}
		}
		if tries--; !used || tries <= 0 {
			d.dropGroupLocked(cn)
			return
		}
	}
}

// touch marks a cached entry read, for evictSomeLocked's second chance;
// it writes only the first time, so hot entries' cache lines stay shared.
func (e *Entry) touch() {
	if !e.used.Load() {
		e.used.Store(true)
	}
}

// evictLocked removes one cached entry and its certificates' references.
// cacheMu is held.
func (d *Directory) evictLocked(id string) {
	e := d.byID[id]
	if e == nil {
		return
	}
	for s := range e.eachSerial() {
		if d.bySerial[s] == id {
			delete(d.bySerial, s)
		}
	}
	if d.byDN[e.norm] == e {
		delete(d.byDN, e.norm)
	}
	delete(d.byID, id)
	d.cacheBytes -= entrySize(e)
}
