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
// An entry is large for what it holds (about 10 KB with one certificate):
// every value is kept decoded for filters, normalized for matching and
// encoded for answers, so a read costs no work. That is why the bound is in
// bytes: 100 000 cached entries were a gigabyte of heap, which the
// collector then doubles.

// DefaultCacheBytes bounds the entry cache when Options.CacheBytes is 0
// (ldap.cache_mb's default).
const DefaultCacheBytes = 32 << 20

// cnGroupSlack is how many more cn groups than cached entries may be kept:
// searches by cn cache groups whose entries are not built.
const cnGroupSlack = 4096

// Per-allocation costs the sizes below add: a map entry's share of its
// bucket, a slice's or string's header, and malloc's rounding.
const (
	mapEntryBytes = 48
	allocBytes    = 16
)

// entrySize is what a cached entry costs the heap, in bytes: its slices'
// capacities (what was allocated), its strings, its structs, and its keys
// in byID, byDN and bySerial.
func entrySize(e *Entry) int64 {
	n := int64(unsafe.Sizeof(Entry{})) + allocBytes
	n += int64(len(e.DN) + len(e.norm) + len(e.subscriber))
	n += int64(cap(e.dnTLV) + cap(e.allUser) + cap(e.allUserTypes))
	for _, r := range e.rdns {
		n += int64(cap(r))*int64(unsafe.Sizeof(ava{})) + allocBytes
		for _, a := range r {
			n += int64(len(a.attr) + len(a.value))
		}
	}
	for _, s := range e.serials {
		n += int64(len(s)) + int64(unsafe.Sizeof(s)) + mapEntryBytes + int64(len(e.subscriber))
	}
	n += int64(cap(e.attrs)) * int64(unsafe.Sizeof(entryAttr{}))
	for i := range e.attrs {
		a := &e.attrs[i]
		n += int64(cap(a.tlv)+cap(a.typesTLV)) + 2*allocBytes
		n += int64(cap(a.values)) * int64(unsafe.Sizeof([]byte(nil)))
		for _, v := range a.values {
			n += int64(cap(v)) + allocBytes
		}
		for _, v := range a.norm {
			n += int64(len(v)) + int64(unsafe.Sizeof(v)) + allocBytes
		}
		for _, c := range a.certs {
			n += int64(unsafe.Sizeof(certInfo{})) + int64(len(c.issuer)) + 64 // big.Int and its words
		}
	}
	// byID and byDN keys and map entries.
	n += 2*mapEntryBytes + int64(len(e.subscriber)+len(e.norm))
	return n
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
	for _, serial := range e.serials {
		d.bySerial[serial] = id
	}
	d.cacheBytes += size
	for len(d.cnGroup) > len(d.byID)+cnGroupSlack {
		for cn := range d.cnGroup {
			d.dropGroupLocked(cn)
			break
		}
	}
}

// evictSomeLocked frees an eighth of the cache at random (map order is
// random enough, and a scan of everything once in a while is cheaper than
// an LRU list that every cached read would have to lock). Whole cn groups
// go, as a change would drop them, so a cached entry's group is always
// known. cacheMu is held.
func (d *Directory) evictSomeLocked() {
	n := max(len(d.byID)/8, 1)
	for id := range d.byID {
		d.dropLocked(id)
		if n--; n <= 0 {
			return
		}
	}
}

// evictLocked removes one cached entry and its certificates' references.
// cacheMu is held.
func (d *Directory) evictLocked(id string) {
	e := d.byID[id]
	if e == nil {
		return
	}
	for _, s := range e.serials {
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
