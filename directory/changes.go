package directory

import (
	"context"
	"encoding/hex"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Store changes reach the directory in two steps.
//
// onChange runs on the committing goroutine (store.Watch: it must be
// quick). It reads nothing from the store: it drops the cached entries it
// can name from the change keys alone — a changed subscriber, and the
// subscriber of a changed certificate that a cached entry holds — then
// records the change and wakes the directory's goroutine.
//
// applyChanges, the directory's goroutine, reads the changed records and
// does the rest: it drops the entries only a record names (the cn group a
// subscriber joins, the subscriber of a new certificate), adds new
// organisations and units, and rebuilds the CA entries when a CA or a CRL
// changed. Changes that arrive while it works are coalesced into its next
// round.
//
// Searches and compares wait (awaitChanges) until every change committed
// before they began has been applied, so what a commit wrote is visible to
// any request sent after the commit returned.

// changeWait bounds how long a request waits for the directory's goroutine;
// past it, the request is served from what is applied, which already
// leaves out a revoked certificate of a cached entry (onChange dropped it).
const changeWait = 2 * time.Second

// changeQueue hands changes from onChange to applyChanges.
type changeQueue struct {
	mu      sync.Mutex
	subs    map[string]bool // subscriber IDs
	serials map[string]bool // hex serials
	rebuild bool            // a CA or a CRL changed

	wake     chan struct{} // capacity 1: a pending wake-up covers all changes recorded before it
	quit     chan struct{}
	finished chan struct{}

	// queued counts the changes recorded, applied those applied; doneCh is
	// closed (and replaced) whenever applied advances.
	queued, applied atomic.Uint64
	doneMu          sync.Mutex
	doneCh          chan struct{}
}

func (q *changeQueue) init() {
	q.subs, q.serials = map[string]bool{}, map[string]bool{}
	q.wake = make(chan struct{}, 1)
	q.quit, q.finished = make(chan struct{}), make(chan struct{})
	q.doneCh = make(chan struct{})
}

func (q *changeQueue) stop() {
	close(q.quit)
	<-q.finished
}

// onChange runs on the committing goroutine after every store commit.
func (d *Directory) onChange(changes []store.Change) {
	var subs, serials []string
	rebuild := false
	for _, c := range changes {
		switch c.Kind {
		case store.KindSubscriber:
			subs = append(subs, c.Key)
		case store.KindCert:
			serials = append(serials, c.Key)
			d.acctIdx.certChanged(c.Key) // a client certificate bound with (accounts.go)
		case store.KindCA:
			rebuild = true
		case store.KindDirAccount:
			d.acctIdx.changed(c.Key) // accounts.go
		case store.KindBlob:
			if strings.HasPrefix(c.Key, crlNamespace+"/") {
				rebuild = true
			}
		}
	}
	if len(subs) == 0 && len(serials) == 0 && !rebuild {
		return
	}
	if len(subs) > 0 || len(serials) > 0 {
		d.cacheMu.Lock()
		d.gen.Add(1) // entries being built from an older snapshot are not cached
		for _, id := range subs {
			d.dropLocked(id)
		}
		for _, serial := range serials {
			if id, ok := d.bySerial[serial]; ok {
				d.dropLocked(id)
			}
		}
		d.cacheMu.Unlock()
	}
	q := &d.changes
	q.mu.Lock()
	for _, id := range subs {
		q.subs[id] = true
	}
	for _, s := range serials {
		q.serials[s] = true
	}
	q.rebuild = q.rebuild || rebuild
	q.queued.Add(1)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// applyChanges is the directory's goroutine, from Start to Stop.
func (d *Directory) applyChanges() {
	q := &d.changes
	defer close(q.finished)
	for {
		select {
		case <-q.quit:
			return
		case <-q.wake:
		}
		q.mu.Lock()
		subs, serials, rebuild := q.subs, q.serials, q.rebuild
		q.subs, q.serials, q.rebuild = map[string]bool{}, map[string]bool{}, false
		upTo := q.queued.Load()
		q.mu.Unlock()
		d.apply(subs, serials, rebuild)
		q.applied.Store(upTo)
		q.doneMu.Lock()
		close(q.doneCh)
		q.doneCh = make(chan struct{})
		q.doneMu.Unlock()
	}
}

// apply reads the changed records and brings the caches and the CA
// entries up to date with them.
func (d *Directory) apply(subs, serials map[string]bool, rebuild bool) {
	ctx := context.Background()
	var records []*store.Subscriber
	ids := map[string]bool{}
	if err := d.st.View(ctx, func(tx *store.Tx) error {
		for id := range subs {
			ids[id] = true
			if s, err := tx.Subscriber(id); err == nil {
				records = append(records, s)
			}
		}
		for h := range serials {
			serial, err := hex.DecodeString(h)
			if err != nil {
				continue
			}
			if c, err := tx.Cert(serial); err == nil && c.SubscriberID != "" {
				ids[c.SubscriberID] = true
			}
		}
		return nil
	}); err != nil {
		d.log.Error("reading changed records for the directory", "err", err)
	}
	newCN := map[string]bool{}
	d.contMu.Lock()
	for _, s := range records {
		newCN[normalize(s.CommonName)] = true
		if k := [2]string{s.Organization, s.OrgUnit}; !d.containers[k] {
			d.containers[k] = true
			rebuild = true
		}
	}
	d.contMu.Unlock()
	if len(ids) > 0 {
		// Again, now that the commit is certainly visible: an entry built
		// from a snapshot older than it may have been cached meanwhile.
		d.cacheMu.Lock()
		d.gen.Add(1)
		for id := range ids {
			d.dropLocked(id)
		}
		for cn := range newCN {
			d.dropGroupLocked(cn)
		}
		d.cacheMu.Unlock()
	}
	if rebuild {
		if err := d.rebuildStatic(ctx); err != nil {
			d.log.Error("rebuilding directory entries", "err", err)
		}
	}
}

// caughtUp reports whether every change recorded has been applied.
func (q *changeQueue) caughtUp() bool { return q.applied.Load() >= q.queued.Load() }

// awaitChanges waits until the changes committed before it was called are
// applied, or ctx ends, or changeWait passes. It costs two atomic loads
// when nothing is pending.
func (d *Directory) awaitChanges(ctx context.Context) {
	q := &d.changes
	target := q.queued.Load()
	if q.applied.Load() >= target {
		return
	}
	timer := time.NewTimer(changeWait)
	defer timer.Stop()
	for {
		q.doneMu.Lock()
		ch := q.doneCh
		q.doneMu.Unlock()
		if q.applied.Load() >= target {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-timer.C:
			d.log.Warn("directory changes not applied in time: serving what is applied")
			return
		}
	}
}

// dropLocked removes a subscriber's cached entry and, since the entries of
// a cn group depend on each other's RDNs, the group's. cacheMu is held.
func (d *Directory) dropLocked(id string) {
	if e := d.byID[id]; e != nil {
		d.dropGroupLocked(normalize(firstValue(e, "cn")))
	}
	d.evictLocked(id)
}

func (d *Directory) dropGroupLocked(cn string) {
	for _, other := range d.cnGroup[cn] {
		d.evictLocked(other)
	}
	delete(d.cnGroup, cn)
}
