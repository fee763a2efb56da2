package ocsp

import (
	"bytes"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
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
//
// The response is der followed by tail. A delegated responder's response
// ends with the responder's certificate (RFC 6960 §4.2.1 certs, the last
// field), about half of a P-256 response's bytes and the same in every
// response that responder signed: tail shares that one copy, so the cache
// holds about twice as many responses in the same bytes.
type entry struct {
	der           []byte
	tail          []byte
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

// newEntry builds the entry for rec; shared is the responder certificate
// its response is expected to end with (nil: none).
func newEntry(rec *record, shared []byte) *entry {
	der, tail := rec.der, []byte(nil)
	if len(shared) > 0 && len(der) > len(shared) && bytes.HasSuffix(der, shared) {
		// A copy, so the record's buffer (the store's value) is not kept.
		der, tail = bytes.Clone(der[:len(der)-len(shared)]), shared
	}
	return &entry{
		der:           der,
		tail:          tail,
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

// response is the whole response DER, in a new slice when it is split.
func (e *entry) response() []byte {
	if len(e.tail) == 0 {
		return e.der
	}
	return append(bytes.Clone(e.der), e.tail...)
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
// Each shard holds at most perShard entries and perShardBytes bytes (as
// entry.size counts them), whichever is reached first.
//
// A generation number per shard keeps a slow reader from putting back a
// response that a re-signing replaced while the reader was in the store:
// readers take the generation before reading (begin) and fill only if it
// did not move; put and invalidate move it.
type cache struct {
	shards        []cacheShard
	perShard      int
	perShardBytes int64
}

type cacheShard struct {
	mu    sync.RWMutex
	m     map[cacheKey]*slot
	ring  []*slot
	hand  int
	bytes int64
	gen   atomic.Uint64
	_     [32]byte // keep shards on separate cache lines
}

type slot struct {
	key  cacheKey
	e    *entry
	size int64
	ref  atomic.Bool
	pos  int
}

const cacheShards = 64

// minShardBytes is the least byte bound a shard gets, about ten responses.
const minShardBytes = 16 << 10

// entryOverhead is what a cached response costs besides its variable
// bytes: the entry and slot structs, the header slices' string headers,
// and the map's key, pointer and bucket share.
const entryOverhead = int64(unsafe.Sizeof(entry{}) + unsafe.Sizeof(slot{}) + 4*unsafe.Sizeof("") + 2*unsafe.Sizeof(cacheKey{}) + 16)

// size is what e costs the cache, in bytes.
func (e *entry) size() int64 {
	n := int64(len(e.der) + len(e.issuer)) // tail is shared: not counted
	for _, h := range [][]string{e.contentLength, e.lastModified, e.expires, e.etag} {
		for _, v := range h {
			n += int64(len(v))
		}
	}
	return n + entryOverhead
}

// newCache returns a cache of at most size entries and maxBytes bytes;
// size 0 disables it, maxBytes 0 bounds entries only.
func newCache(size int, maxBytes int64) *cache {
	if size <= 0 {
		return &cache{}
	}
	n := min(cacheShards, size)
	if maxBytes > 0 {
		// Fewer shards for a small bound, so each holds a few responses.
		n = int(min(int64(n), max(maxBytes/minShardBytes, 1)))
	}
	c := &cache{shards: make([]cacheShard, n), perShard: max(size/n, 1), perShardBytes: math.MaxInt64}
	if maxBytes > 0 {
		c.perShardBytes = max(maxBytes/int64(n), 1)
	}
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
		sh.remove(s)
	}
	sh.mu.Unlock()
}

// remove takes s out of the map and the ring; mu is held.
func (sh *cacheShard) remove(s *slot) {
	delete(sh.m, s.key)
	last := sh.ring[len(sh.ring)-1]
	sh.ring[s.pos] = last
	last.pos = s.pos
	sh.ring = sh.ring[:len(sh.ring)-1]
	sh.bytes -= s.size
	if sh.hand >= len(sh.ring) {
		sh.hand = 0
	}
}

// evict removes one entry by CLOCK: it passes over referenced slots,
// clearing their bit, and takes the first one not used since the hand
// last came by. mu is held and the ring is not empty.
func (sh *cacheShard) evict() {
	for {
		victim := sh.ring[sh.hand]
		if victim.ref.Load() {
			victim.ref.Store(false)
			sh.hand = (sh.hand + 1) % len(sh.ring)
			continue
		}
		sh.remove(victim)
		return
	}
}

func (c *cache) insert(sh *cacheShard, k *cacheKey, e *entry) {
	size := e.size()
	old := sh.m[*k]
	if old != nil {
		// A re-signed response may be larger: drop the old one and
		// admit the new one like any other, keeping its use bit.
		sh.remove(old)
	}
	if size > c.perShardBytes {
		return
	}
	for len(sh.ring) > 0 && (len(sh.ring) >= c.perShard || sh.bytes+size > c.perShardBytes) {
		sh.evict()
	}
	s := &slot{key: *k, e: e, size: size, pos: len(sh.ring)}
	if old != nil {
		s.ref.Store(true)
	}
	sh.ring = append(sh.ring, s)
	sh.m[*k] = s
	sh.bytes += size
}

// bytes sums what the entries cost (tests and metrics).
func (c *cache) bytes() int64 {
	var n int64
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += c.shards[i].bytes
		c.shards[i].mu.RUnlock()
	}
	return n
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
