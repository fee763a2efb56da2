package directory

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/store"
)

// testSession reads everything, as a service account.
type testSession struct{}

func (testSession) mayRead(bool) bool { return true }
func (testSession) identity() string  { return "cn=test" }
func (testSession) access() *grant    { return &grant{level: accessService, account: "test"} }

// collect keeps the entries a search sends.
type collect struct{ got []*Entry }

func (c *collect) entry(e *Entry, _ *selection) error { c.got = append(c.got, e); return nil }

// TestCacheFillAfterChange is the cache fill race: a search whose store
// transaction was opened before a commit builds the entry from the older
// snapshot after the commit's change dropped it (and after the directory's
// goroutine dropped it again). That entry must not be cached: the next
// search, sent after the commit returned, must see the commit.
//
// The commit is made from the directory's clock, which subscriberEntry reads
// after the search opened its transaction and before it builds the entry.
func TestCacheFillAfterChange(t *testing.T) {
	e := newEnv(t, 3, nil)
	d := e.d
	ctx := context.Background()
	const id, cn = "seed-0000001", "seed-0000001"
	var sub *store.Subscriber
	if err := e.st.View(ctx, func(tx *store.Tx) error {
		var err error
		sub, err = tx.Subscriber(id)
		return err
	}); err != nil {
		t.Fatalf("reading subscriber %s: %v", id, err)
	}
	const newMail = "changed@example.com"
	armed, fired := true, false
	d.now = func() time.Time {
		if armed && calledFrom("subscriberEntry") {
			armed = false
			changed := *sub
			changed.Email = newMail
			if err := e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutSubscriber(&changed) }); err != nil {
				t.Errorf("changing %s: %v", id, err)
			}
			d.awaitChanges(ctx) // the directory's goroutine has dropped the entry again
			fired = true
		}
		return time.Now()
	}
	search := func() string {
		t.Helper()
		p, _ := ldap.CompileFilter("(cn=" + cn + ")")
		body := appendString(nil, 0x04, suffix)
		body = appendInt(body, 0x0a, scopeSub)
		body = appendInt(body, 0x0a, 0)
		body = appendInt(body, 0x02, 0)
		body = appendInt(body, 0x02, 0)
		body = appendTLV(body, 0x01, []byte{0})
		body = append(body, p.Bytes()...)
		body = appendTLV(body, 0x30, appendString(nil, 0x04, "mail"))
		req, err := parseSearch(body)
		if err != nil {
			t.Fatal(err)
		}
		var out collect
		if res := d.search(ctx, testSession{}, req, &out); res.code != resultSuccess || len(out.got) != 1 {
			t.Fatalf("search (cn=%s): %+v, %d entries", cn, res.result, len(out.got))
		}
		return firstValue(out.got[0], "mail")
	}
	search() // from before the commit: either mail is right for it
	if !fired {
		t.Fatal("the change was not made during the search")
	}
	if got := search(); got != newMail {
		t.Fatalf("after the commit: mail %q, want %q (an entry built from the older snapshot was cached)", got, newMail)
	}
}

// calledFrom reports whether a function whose name ends in fn is on the
// caller's stack.
func calledFrom(fn string) bool {
	pc := make([]uintptr, 32)
	frames := runtime.CallersFrames(pc[:runtime.Callers(2, pc)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "."+fn) {
			return true
		}
		if !more {
			return false
		}
	}
}
