package directory

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/store"
)

// TestEntryCacheByteBound reads more entries than the cache's byte bound
// holds, whole-subtree paged and one by one, and checks after each pass
// that the bytes counted never pass the bound and agree with the entries
// cached, that the cn groups stay bounded with them, and that every entry
// is still answered.
func TestEntryCacheByteBound(t *testing.T) {
	const n, bound = 300, 256 << 10
	e := newEnv(t, n, func(c *config.LDAP) { c.CacheMB = 1 })
	if e.d.opts.CacheBytes != 1<<20 {
		t.Fatalf("ldap.cache_mb 1 gave a bound of %d bytes", e.d.opts.CacheBytes)
	}
	e.d.cacheMu.Lock()
	e.d.opts.CacheBytes = bound // below a megabyte: the test's 300 entries are about 700 KB
	e.d.cacheMu.Unlock()
	c := e.dial(t)
	defer c.Close()
	check := func(pass string) {
		t.Helper()
		d := e.d
		d.cacheMu.RLock()
		defer d.cacheMu.RUnlock()
		var sum int64
		for id, en := range d.byID {
			sum += entrySize(en)
			if d.byDN[en.norm] != en {
				t.Fatalf("%s: %s cached without its DN", pass, id)
			}
		}
		if d.cacheBytes > bound || sum != d.cacheBytes {
			t.Fatalf("%s: cache counts %d bytes, holds %d, bound %d", pass, d.cacheBytes, sum, bound)
		}
		if len(d.byID) == 0 || len(d.byID) >= n {
			t.Fatalf("%s: %d entries cached of %d; the bound should keep some and not all", pass, len(d.byID), n)
		}
		if len(d.cnGroup) > len(d.byID)+cnGroupSlack {
			t.Fatalf("%s: %d cn groups for %d entries", pass, len(d.cnGroup), len(d.byID))
		}
	}
	for pass := range 2 {
		r, err := c.SearchWithPaging(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"cn", "userCertificate;binary"}, nil), 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Entries) != n {
			t.Fatalf("pass %d: %d subscriber entries, want %d", pass, len(r.Entries), n)
		}
		for _, en := range r.Entries {
			if len(en.GetRawAttributeValue("userCertificate;binary")) == 0 {
				t.Fatalf("%s without its certificate", en.DN)
			}
		}
		check(fmt.Sprintf("paged pass %d", pass))
	}
	for i := range n {
		cn := fmt.Sprintf("seed-%07d", i)
		r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(cn="+cn+")", []string{"cn"}, nil))
		if err != nil || len(r.Entries) != 1 {
			t.Fatalf("(cn=%s): %v, %v", cn, r, err)
		}
	}
	check("searches by cn")
}

// TestEntrySizeMatchesHeap builds every subscriber entry of a seeded
// store, keeps them, and compares the heap they hold (the live heap's
// growth, after collections) with the cache's estimate, entrySize: the
// byte bound is only as true as the estimate. It also reports the bytes
// per entry, the figure in README.md.
func TestEntrySizeMatchesHeap(t *testing.T) {
	const n = 400
	e := newEnv(t, n, nil)
	d := e.d
	st := d.static.Load()
	var ids []string
	if err := e.st.View(t.Context(), func(tx *store.Tx) error {
		return tx.EachSubscriberIDAfter("", func(id string) error { ids = append(ids, id); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("%d subscribers, want %d", len(ids), n)
	}
	entries := make([]*Entry, 0, n)
	if err := e.st.View(t.Context(), func(tx *store.Tx) error {
		for _, id := range ids {
			s, err := tx.Subscriber(id)
			if err != nil {
				return err
			}
			en, err := d.buildSubscriber(tx, st, s, []string{id}, time.Now())
			if err != nil {
				return err
			}
			entries = append(entries, en)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var est int64
	for _, en := range entries {
		est += entrySize(en)
	}
	// The heap with the entries and without them, each after collections,
	// with nothing else running in between: the store's own work while
	// the entries were built does not enter the difference.
	live := func() int64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	with := live()
	cert := len(firstValue(entries[0], "userCertificate"))
	clear(entries)
	heap := with - live()
	perHeap, perEst := heap/n, est/n
	t.Logf("per subscriber entry with one certificate: %d bytes of heap, %d estimated (certificate DER %d bytes)",
		perHeap, perEst, cert)
	// The estimate also counts the cache's map entries, which the heap
	// here does not hold (about 150 bytes); a factor of 1.25 either way
	// catches an estimate that forgot or invented a copy of the values.
	if float64(perEst) < float64(perHeap)/1.25 || float64(perEst) > float64(perHeap)*1.25 {
		t.Fatalf("entrySize estimates %d bytes per entry, the heap grew %d per entry", perEst, perHeap)
	}
}

// TestEntryCacheKeepsReadEntries: eviction gives entries read since the
// last eviction a second chance, so a hot set read between misses stays
// cached while a stream of other entries passes through the cache.
func TestEntryCacheKeepsReadEntries(t *testing.T) {
	mk := func(i int) *Entry {
		cn := fmt.Sprintf("p%05d", i)
		e := newEntry("cn="+cn+",o=certcenter,c=CN", "inetOrgPerson", false, []attrSpec{
			{name: "objectClass", values: []string{"top", "person"}}, {name: "cn", values: []string{cn}}, {name: "sn", values: []string{cn}},
		}, nil)
		e.subscriber, e.serials = cn, fmt.Sprintf("%04x", i)
		return e
	}
	size := entrySize(mk(0))
	const capacity, hot = 400, 100
	d := &Directory{opts: Options{CacheEntries: 1 << 20, CacheBytes: capacity * size},
		byID: map[string]*Entry{}, byDN: map[string]*Entry{}, bySerial: map[string]string{}, cnGroup: map[string][]string{}}
	d.cacheMu.Lock()
	defer d.cacheMu.Unlock()
	read := func() (cached int) {
		for i := range hot {
			if e := d.byID[fmt.Sprintf("p%05d", i)]; e != nil {
				e.touch()
				cached++
			}
		}
		return cached
	}
	for i := range hot {
		e := mk(i)
		d.cacheLocked(e.subscriber, e)
	}
	read()
	for i := hot; i < hot+20*capacity; i++ {
		e := mk(i)
		d.cacheLocked(e.subscriber, e)
		if got := read(); got != hot {
			t.Fatalf("after %d other entries, %d of the %d read entries are cached", i-hot+1, got, hot)
		}
	}
	if d.cacheBytes > d.opts.CacheBytes || len(d.byID) < capacity/2 {
		t.Fatalf("%d entries, %d bytes cached of %d", len(d.byID), d.cacheBytes, d.opts.CacheBytes)
	}
}
