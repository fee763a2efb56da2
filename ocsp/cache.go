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

	// The header values. Content-Length, Last-Modified and Expires come
	// from a headerMemo: responses signed in one batch share their times,
	// so one copy serves thousands of entries and stays in the CPU cache.
	// The ETag is the entry's own, stored inside it: a cache hit then
	// reads the entry, its DER and shared values, and nothing else.
	contentLength []string
	lastModified  []string
	expires       []string
	etag          []string
	etagValue     [1]string
	etagBytes     [etagLen]byte

	slot slot
}

type maxAgeValue struct {
	next, at int64
	v        []string
}

// newEntry builds the entry for rec; shared is the responder certificate
// its response is expected to end with (nil: none); memo may be nil.
func newEntry(rec *record, shared []byte, memo *headerMemo) *entry {
	der, tail := rec.der, []byte(nil)
	if len(shared) > 0 && len(der) > len(shared) && bytes.HasSuffix(der, shared) {
		// A copy, so the record's buffer (the store's value) is not kept.
		der, tail = bytes.Clone(der[:len(der)-len(shared)]), shared
	}
	e := &entry{
		der:           der,
		tail:          tail,
		issuer:        rec.issuer,
		revoked:       rec.revoked,
		thisUpdate:    rec.thisUpdate,
		nextUpdate:    rec.nextUpdate,
		certUpdatedAt: rec.certUpdatedAt,
		contentLength: memo.get(memoLength, int64(len(rec.der)), formatLength),
		lastModified:  memo.get(memoDate, rec.thisUpdate.Unix(), formatDate),
		expires:       memo.get(memoDate, rec.nextUpdate.Unix(), formatDate),
	}
	n := appendETag(e.etagBytes[:0], rec.der)
	e.etagValue[0] = unsafe.String(&e.etagBytes[0], len(n))
	e.etag = e.etagValue[:]
	return e
}

func formatLength(n int64) string { return strconv.FormatInt(n, 10) }

// formatDate is an HTTP date (RFC 9110 §5.6.7) of a Unix second.
func formatDate(sec int64) string { return time.Unix(sec, 0).UTC().Format(http.TimeFormat) }

const (
	memoLength = iota
	memoDate
	memoKinds
)

// headerMemo keeps the header values that many entries share, by kind and
// value, so each is formatted and stored once. A slot holds the last value
// stored for its hash; a miss only formats a new copy.
type headerMemo struct {
	slots [memoKinds][256]atomic.Pointer[memoValue]
}

type memoValue struct {
	key int64
	v   []string
}

func (m *headerMemo) get(kind int, key int64, format func(int64) string) []string {
	if m == nil {
		return []string{format(key)}
	}
	slot := &m.slots[kind][uint64(key)%uint64(len(m.slots[kind]))]
	if v := slot.Load(); v != nil && v.key == key {
		return v.v
	}
	v := &memoValue{key: key, v: []string{format(key)}}
	slot.Store(v)
	return v.v
}

// response is the whole response DER, in a new slice when it is split.
func (e *entry) response() []byte {
	if len(e.tail) == 0 {
		return e.der
	}
	return append(bytes.Clone(e.der), e.tail...)
}

// etagLen is the longest ETag: FNV-1a 64 in hex between quotes.
const etagLen = 18

// appendETag appends a strong validator: FNV-1a 64 of the DER, which
// changes with every re-signing because the signature and times do.
func appendETag(b, der []byte) []byte {
	h := uint64(14695981039346656037)
	for _, c := range der {
		h ^= uint64(c)
		h *= 1099511628211
	}
	b = append(b, '"')
	b = strconv.AppendUint(b, h, 16)
	return append(b, '"')
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
	m     map[cacheKey]*entry
	ring  []*entry
	hand  int
	bytes int64
	gen   atomic.Uint64
	_     [32]byte // keep shards on separate cache lines
}

// slot is an entry's place in a shard, inside the entry so a hit follows
// one pointer. An entry is cached under one key at most (every put and
// fill inserts a new one); key, size and pos change under the shard's lock.
type slot struct {
	key  cacheKey
	size int64
	ref  atomic.Bool
	pos  int
}

const cacheShards = 64

// minShardBytes is the least byte bound a shard gets, about ten responses.
const minShardBytes = 16 << 10

// entryOverhead is what a cached response costs besides its variable
// bytes: the entry (its ETag inside) and slot structs, and the map's key,
// pointer and bucket share.
const entryOverhead = int64(unsafe.Sizeof(entry{}) + unsafe.Sizeof(cacheKey{}) + 16)

// size is what e costs the cache, in bytes.
func (e *entry) size() int64 {
	// The tail and the memoised header values are shared: not counted.
	return int64(len(e.der)+len(e.issuer)) + entryOverhead
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
		c.shards[i].m = make(map[cacheKey]*entry)
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
	e := sh.m[*k]
	if e != nil && !e.slot.ref.Load() {
		e.slot.ref.Store(true)
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
func (sh *cacheShard) remove(e *entry) {
	s := &e.slot
	delete(sh.m, s.key)
	last := sh.ring[len(sh.ring)-1]
	sh.ring[s.pos] = last
	last.slot.pos = s.pos
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
		if victim.slot.ref.Load() {
			victim.slot.ref.Store(false)
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
	e.slot.key, e.slot.size, e.slot.pos = *k, size, len(sh.ring)
	if old != nil {
		e.slot.ref.Store(true)
	}
	sh.ring = append(sh.ring, e)
	sh.m[*k] = e
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
