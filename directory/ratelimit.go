package directory

import (
	"net"
	"sync"
	"time"
)

// bindLimiter slows password guessing: a token bucket per source address
// that each failed bind empties by one and that refills one token per
// ldap.bind_failure_refill, up to ldap.bind_failures_burst. While an
// address's bucket is empty its password binds are refused at once with
// busy and the time to wait — before any bcrypt, so a flood costs no CPU,
// and never held open, so a client is not left hanging.
type bindLimiter struct {
	mu      sync.Mutex
	burst   float64
	refill  time.Duration
	now     func() time.Time
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// maxBuckets bounds the addresses tracked; beyond it full buckets (which
// say nothing) are dropped, then, under a spread attack, the oldest half.
const maxBuckets = 65536

func newBindLimiter(burst int, refill time.Duration, now func() time.Time) *bindLimiter {
	return &bindLimiter{burst: float64(burst), refill: refill, now: now, buckets: map[string]*bucket{}}
}

// sourceOf is the address a connection's binds are counted under: the IP,
// without the port.
func sourceOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// level refills b up to now and returns its tokens; callers hold mu.
func (l *bindLimiter) level(b *bucket, now time.Time) float64 {
	if l.refill > 0 {
		b.tokens = min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.refill))
	}
	b.at = now
	return b.tokens
}

// wait is how long src must wait before its next password bind; zero
// when it may bind now.
func (l *bindLimiter) wait(src string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	if b == nil {
		return 0
	}
	t := l.level(b, l.now())
	if t >= 1 {
		return 0
	}
	return time.Duration((1 - t) * float64(l.refill))
}

// failed takes a token from src's bucket.
func (l *bindLimiter) failed(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[src] = b
	}
	l.level(b, now)
	b.tokens = max(0, b.tokens-1)
}

func (l *bindLimiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets { // map order is random enough
		if len(l.buckets) < maxBuckets/2 {
			break
		}
		delete(l.buckets, k)
	}
}
