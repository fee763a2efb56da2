package ocsp

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// cacheKey identifies a response in the cache: the CertID hash algorithm
// (a SHA-256 CertID needs its own signed response) and the serial. It is an
// array so a lookup neither allocates nor hashes a string.
type cacheKey struct {
	hash   HashAlg
	n      uint8
	serial [maxSerialLen]byte
}

func makeKey(h HashAlg, serial []byte) (cacheKey, bool) {
	var k cacheKey
	if len(serial) == 0 || len(serial) > maxSerialLen {
		return k, false
	}
	k.hash, k.n = h, uint8(len(serial))
	copy(k.serial[:], serial)
	return k, true
}

// entry is a response ready to write: the DER and its HTTP header values,
// built once so serving it allocates nothing.
type entry struct {
	der           []byte
	issuer        string
	revoked       bool
	thisUpdate    time.Time
	nextUpdate    time.Time
	certUpdatedAt time.Time

	contentLength []string
	lastModified  []string
	expires       []string
	etag          []string
}

type maxAgeValue struct {
	next, at int64
	v        []string
}

func newEntry(rec *record) *entry {
	return &entry{
		der:           rec.der,
		issuer:        rec.issuer,
		revoked:       rec.revoked,
		thisUpdate:    rec.thisUpdate,
		nextUpdate:    rec.nextUpdate,
		certUpdatedAt: rec.certUpdatedAt,
		contentLength: []string{strconv.Itoa(len(rec.der))},
		lastModified:  []string{rec.thisUpdate.UTC().Format(http.TimeFormat)},
		expires:       []string{rec.nextUpdate.UTC().Format(http.TimeFormat)},
		etag:          []string{etagOf(rec.der)},
	}
}

// etagOf is a strong validator: FNV-1a 64 of the DER, which changes with
// every re-signing because the signature and times do.
func etagOf(der []byte) string {
	h := uint64(14695981039346656037)
	for _, c := range der {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return `"` + strconv.FormatUint(h, 16) + `"`
}

// cacheControl is the Cache-Control value for a response served at now:
// cacheable until nextUpdate (RFC 5019 §6.2). The value depends only on the
// second of nextUpdate and the current second, and responses signed in one
// batch share their nextUpdate second, so one small memo serves every entry
// (a memo per entry misses on nearly every request when thousands of
// responses are each asked for about once a second).
func (m *maxAgeMemo) cacheControl(nextUpdate, now time.Time) []string {
	next, sec := nextUpdate.Unix(), now.Unix()
	if now.Nanosecond() == 0 || nextUpdate.Nanosecond() != 0 {
		// Not the usual whole-second nextUpdate seen mid-second: no memo.
		return []string{maxAgeHeader(int64(nextUpdate.Sub(now) / time.Second))}
	}
	slot := &m.slots[uint64(next)%uint64(len(m.slots))]
	if v := slot.Load(); v != nil && v.next == next && v.at == sec {
		return v.v
	}
	// Rounded down, so no cache keeps the response past nextUpdate.
	v := &maxAgeValue{next: next, at: sec, v: []string{maxAgeHeader(next - sec - 1)}}
	slot.Store(v)
	return v.v
}

func maxAgeHeader(age int64) string {
	return "max-age=" + strconv.FormatInt(max(age, 0), 10) + ", public, no-transform, must-revalidate"
}

// maxAgeMemo holds the Cache-Control values made this second, by nextUpdate.
type maxAgeMemo struct {
	slots [256]atomic.Pointer[maxAgeValue]
}

// cache is a bounded map of responses: sharded, each shard evicting with the
// CLOCK algorithm (a hit only sets a bit under the read lock, so hot readers
// never contend for the write lock the way an LRU list would make them).
//
// A generation number per shard keeps a slow reader from putting back a
// response that a re-signing replaced while the reader was in the store:
// readers take the generation before reading (begin) and fill only if it
// did not move; put and invalidate move it.
type cache struct {
	shards   []cacheShard
	perShard int
}

type cacheShard struct {
	mu   sync.RWMutex
	m    map[cacheKey]*slot
	ring []*slot
	hand int
	gen  atomic.Uint64
	_    [40]byte // keep shards on separate cache lines
}

type slot struct {
	key cacheKey
	e   *entry
	ref atomic.Bool
	pos int
}

const cacheShards = 64

// newCache returns a cache of at most size entries; size 0 disables it.
func newCache(size int) *cache {
	if size <= 0 {
		return &cache{}
	}
	n := min(cacheShards, size)
	c := &cache{shards: make([]cacheShard, n), perShard: max(size/n, 1)}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*slot)
	}
	return c
}

func (c *cache) shard(k *cacheKey) *cacheShard {
	if len(c.shards) == 0 {
		return nil
	}
	// Serials are random, so their last octets spread keys evenly.
	h := uint(k.serial[k.n-1]) | uint(k.serial[max(int(k.n)-2, 0)])<<8
	return &c.shards[h%uint(len(c.shards))]
}

func (c *cache) get(k *cacheKey) *entry {
	sh := c.shard(k)
	if sh == nil {
		return nil
	}
	sh.mu.RLock()
	s := sh.m[*k]
	var e *entry
	if s != nil {
		e = s.e
		if !s.ref.Load() {
			s.ref.Store(true)
		}
	}
	sh.mu.RUnlock()
	return e
}

// begin returns the generation to pass to fill.
func (c *cache) begin(k *cacheKey) uint64 {
	if sh := c.shard(k); sh != nil {
		return sh.gen.Load()
	}
	return 0
}

// fill inserts e unless the shard changed since begin returned gen.
func (c *cache) fill(k *cacheKey, e *entry, gen uint64) {
	sh := c.shard(k)
	if sh == nil {
		return
	}
	sh.mu.Lock()
	if sh.gen.Load() == gen {
		c.insert(sh, k, e)
	}
	sh.mu.Unlock()
}

// put inserts or replaces e and makes fills that began earlier fail.
func (c *cache) put(k *cacheKey, e *entry) {
	sh := c.shard(k)
	if sh == nil {
		return
	}
	sh.mu.Lock()
	sh.gen.Add(1)
	c.insert(sh, k, e)
	sh.mu.Unlock()
}

// invalidate removes k and makes fills that began earlier fail.
func (c *cache) invalidate(k *cacheKey) {
	sh := c.shard(k)
	if sh == nil {
		return
	}
	sh.mu.Lock()
	sh.gen.Add(1)
	if s := sh.m[*k]; s != nil {
		delete(sh.m, *k)
		last := sh.ring[len(sh.ring)-1]
		sh.ring[s.pos] = last
		last.pos = s.pos
		sh.ring = sh.ring[:len(sh.ring)-1]
		if sh.hand >= len(sh.ring) {
			sh.hand = 0
		}
	}
	sh.mu.Unlock()
}

func (c *cache) insert(sh *cacheShard, k *cacheKey, e *entry) {
	if s := sh.m[*k]; s != nil {
		s.e = e
		s.ref.Store(true)
		return
	}
	s := &slot{key: *k, e: e}
	if len(sh.ring) < c.perShard {
		s.pos = len(sh.ring)
		sh.ring = append(sh.ring, s)
		sh.m[*k] = s
		return
	}
	// CLOCK: pass over referenced slots, clearing their bit, and replace the
	// first one not used since the hand last came by.
	for {
		victim := sh.ring[sh.hand]
		if victim.ref.Load() {
			victim.ref.Store(false)
			sh.hand = (sh.hand + 1) % len(sh.ring)
			continue
		}
		delete(sh.m, victim.key)
		s.pos = sh.hand
		sh.ring[sh.hand] = s
		sh.m[*k] = s
		sh.hand = (sh.hand + 1) % len(sh.ring)
		return
	}
}

// len counts the entries (tests and metrics).
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}
