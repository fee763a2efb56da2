package ocsp

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"
)

func testEntry(derLen int) *entry {
	now := time.Now()
	return newEntry(&record{der: make([]byte, derLen), issuer: "demo", thisUpdate: now, nextUpdate: now.Add(time.Hour)}, nil, nil)
}

// TestCacheByteBound inserts far more bytes than the cache may hold, in
// responses of varied sizes and with re-signings that grow them, and checks
// after every insert that the bytes held never pass the bound, that the
// count agrees with the entries present, and that the entry bound still
// holds too.
func TestCacheByteBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		entries  int
		maxBytes int64
	}{
		{name: "ok/bytes bind first", entries: 100000, maxBytes: 256 << 10},
		{name: "ok/entries bind first", entries: 128, maxBytes: 64 << 20},
		{name: "ok/one shard", entries: 1, maxBytes: 4 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(tc.entries, tc.maxBytes)
			var inserted int64
			for i := range 20000 {
				var serial [8]byte
				binary.BigEndian.PutUint64(serial[:], uint64(i%5000)*0x9e3779b97f4a7c15)
				k, _ := makeKey(HashAlg(i%2), serial[:])
				e := testEntry(200 + (i*37)%1500)
				inserted += e.size()
				if i%3 == 0 {
					c.put(&k, e)
				} else {
					c.fill(&k, e, c.begin(&k))
				}
				if i%500 == 0 || i == 19999 {
					checkCache(t, c, tc.entries, tc.maxBytes)
				}
			}
			if inserted < 4*tc.maxBytes && tc.entries > 1000 {
				t.Fatalf("test inserted only %d bytes for a bound of %d", inserted, tc.maxBytes)
			}
			if c.len() == 0 {
				t.Fatal("cache holds nothing")
			}
		})
	}
}

func checkCache(t *testing.T, c *cache, maxEntries int, maxBytes int64) {
	t.Helper()
	if got := c.bytes(); got > maxBytes {
		t.Fatalf("cache holds %d bytes, bound %d", got, maxBytes)
	}
	if got := c.len(); got > maxEntries {
		t.Fatalf("cache holds %d entries, bound %d", got, maxEntries)
	}
	for i := range c.shards {
		sh := &c.shards[i]
		var sum int64
		for pos, e := range sh.ring {
			if s := &e.slot; s.pos != pos || sh.m[s.key] != e || s.size != e.size() {
				t.Fatalf("shard %d: slot at %d inconsistent", i, pos)
			}
			sum += e.slot.size
		}
		if sum != sh.bytes || len(sh.m) != len(sh.ring) {
			t.Fatalf("shard %d: counted %d bytes, %d map entries; holds %d bytes, %d ring entries", i, sh.bytes, len(sh.m), sum, len(sh.ring))
		}
	}
}

// TestResponderCacheBytes serves more certificates than the responder's
// byte bound holds, through a real store and HTTP, and checks the bound.
func TestResponderCacheBytes(t *testing.T) {
	const bound = 8 << 10
	e := newEnv(t, func(o *Options) { o.CacheEntries, o.CacheBytes = 1000, bound })
	iss := e.issuer("demo")
	for range 60 {
		_, x := e.issue("")
		r := parse(t, e.post(e.request(x, iss.Cert, crypto.SHA1)), x, iss.Cert)
		if r.SerialNumber.Cmp(x.SerialNumber) != 0 {
			t.Fatal("wrong serial answered")
		}
		checkCache(t, e.r.cache, 1000, bound)
	}
	if e.r.cache.len() == 0 {
		t.Fatal("nothing cached")
	}
}

// TestCachedResponseSharesResponderCert checks that a cached response keeps
// one copy of the responder certificate for all responses, is served byte
// for byte as stored, and that a response too large for net/http's buffer
// still goes out with a Content-Length, not chunked.
func TestCachedResponseSharesResponderCert(t *testing.T) {
	e := newEnv(t)
	iss := e.issuer("demo")
	var entries []*entry
	var targets []string
	var keys []cacheKey
	for range 3 {
		_, x := e.issue("")
		target := "/ocsp/" + base64.StdEncoding.EncodeToString(e.request(x, iss.Cert, crypto.SHA1))
		_, _, first := e.getRaw(target, nil) // fills the cache
		code, hdr, cached := e.getRaw(target, nil)
		if code != http.StatusOK || !bytes.Equal(first, cached) {
			t.Fatalf("HTTP %d; cached response differs from the first (%d vs %d bytes)", code, len(cached), len(first))
		}
		parse(t, cached, x, iss.Cert)
		if cl := hdr.Get("Content-Length"); cl != strconv.Itoa(len(cached)) {
			t.Fatalf("Content-Length %q for %d bytes", cl, len(cached))
		}
		k, _ := makeKey(SHA1, x.SerialNumber.Bytes())
		ce := e.r.cache.get(&k)
		if ce == nil {
			t.Fatal("response not cached")
		}
		if !bytes.Equal(ce.response(), cached) {
			t.Fatal("entry's response differs from what was served")
		}
		entries = append(entries, ce)
		targets = append(targets, target)
		keys = append(keys, k)
	}
	for _, ce := range entries {
		if len(ce.tail) == 0 || &ce.tail[0] != &entries[0].tail[0] {
			t.Fatal("responses do not share one copy of the responder certificate")
		}
		if ce.size() >= int64(len(ce.der)+len(ce.tail)) {
			t.Fatalf("entry counts %d bytes for a %d-byte response with a shared tail", ce.size(), len(ce.der)+len(ce.tail))
		}
	}

	// A response larger than net/http's buffer (an RSA-4096 responder's
	// can be): the cached entry is replaced by one of 3 000 bytes.
	now := e.clock.Now()
	big := newEntry(&record{der: bytes.Repeat([]byte{0x30}, 3000), issuer: "demo", thisUpdate: now, nextUpdate: now.Add(time.Hour)}, nil, nil)
	e.r.cache.put(&keys[0], big)
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL, nil)
	req.URL.Opaque = targets[0]
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if len(body) != 3000 || res.ContentLength != 3000 || len(res.TransferEncoding) != 0 {
		t.Fatalf("large response: %d bytes, Content-Length %d, Transfer-Encoding %v", len(body), res.ContentLength, res.TransferEncoding)
	}
}

// TestHeaderMemo: entries signed in the same second share one copy of
// their date and length header values, and the values are right.
func TestHeaderMemo(t *testing.T) {
	var memo headerMemo
	this := time.Date(2026, 12, 1, 9, 59, 24, 0, time.UTC)
	a := newEntry(&record{der: []byte{0x30, 1, 2}, thisUpdate: this, nextUpdate: this.Add(72 * time.Hour)}, nil, &memo)
	b := newEntry(&record{der: []byte{0x30, 1, 3}, thisUpdate: this, nextUpdate: this.Add(72 * time.Hour)}, nil, &memo)
	if &a.lastModified[0] != &b.lastModified[0] || &a.expires[0] != &b.expires[0] || &a.contentLength[0] != &b.contentLength[0] {
		t.Fatal("header values of one batch are not shared")
	}
	if a.lastModified[0] != "Tue, 01 Dec 2026 09:59:24 GMT" || a.expires[0] != "Fri, 04 Dec 2026 09:59:24 GMT" || a.contentLength[0] != "3" {
		t.Fatalf("values %q %q %q", a.lastModified, a.expires, a.contentLength)
	}
	if a.etag[0] == b.etag[0] || len(a.etag[0]) < 3 || a.etag[0][0] != '"' {
		t.Fatalf("ETags %q %q", a.etag, b.etag)
	}
}
