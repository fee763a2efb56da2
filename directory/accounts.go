package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Directory accounts (store.DirAccount) are found at bind by an index in
// memory: normalized bind DN → account IDs, and client certificate key
// (store.ClientCertKey) → account IDs. The bind then reads only the
// records the index names. The index is loaded from the store on first
// use and kept current by store.Watch: onChange records the IDs of
// changed accounts and bumps gen; the next lookup re-reads just those.
// Accounts are one per health information system, so the index is small.
//
// gen also lets a bound connection notice, on its next operation, that an
// account changed (a revocation) with one atomic load: a grant remembers
// the gen it was made at and is re-resolved from the store when gen has
// moved or its expiry has passed (conn.access).
type accountIndex struct {
	// gen counts committed changes to directory accounts.
	gen atomic.Uint64

	pmu     sync.Mutex
	pending map[string]bool // IDs changed since the maps were brought up to date

	mu     sync.Mutex // held while the maps are brought up to date and read
	loaded bool
	byDN   map[string][]string // normalized DN → IDs
	byCert map[string][]string // client certificate key → IDs
	keys   map[string][2]string
	// loads counts full loads from the store, for tests.
	loads int

	// bound counts the connections bound with each client certificate
	// (hex serial), so a change to one of them (its revocation) moves gen
	// too; nBound is their total, so the commit path skips the lock
	// while no one is bound with a certificate.
	certMu sync.Mutex
	bound  map[string]int
	nBound atomic.Int64
}

// holdCert and releaseCert count a connection bound with the client
// certificate of serial (hex).
func (x *accountIndex) holdCert(serial string) {
	x.certMu.Lock()
	defer x.certMu.Unlock()
	if x.bound == nil {
		x.bound = map[string]int{}
	}
	x.bound[serial]++
	x.nBound.Add(1)
}

func (x *accountIndex) releaseCert(serial string) {
	x.certMu.Lock()
	defer x.certMu.Unlock()
	if x.bound[serial] <= 1 {
		delete(x.bound, serial)
	} else {
		x.bound[serial]--
	}
	x.nBound.Add(-1)
}

// certChanged runs on the committing goroutine (onChange) for every
// changed certificate: if a connection is bound with it, gen moves and
// that connection checks its certificate again at its next operation.
func (x *accountIndex) certChanged(serial string) {
	if x.nBound.Load() == 0 {
		return
	}
	x.certMu.Lock()
	held := x.bound[serial] > 0
	x.certMu.Unlock()
	if held {
		x.gen.Add(1)
	}
}

// changed runs on the committing goroutine (onChange): it must be quick.
func (x *accountIndex) changed(id string) {
	x.pmu.Lock()
	if x.pending == nil {
		x.pending = map[string]bool{}
	}
	x.pending[id] = true
	x.pmu.Unlock()
	x.gen.Add(1)
}

// lookup returns the IDs of the accounts with normalized bind DN dn, or,
// when dn is "", with client certificate key cert.
func (x *accountIndex) lookup(ctx context.Context, st *store.Store, dn, cert string) ([]string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.refreshLocked(ctx, st); err != nil {
		return nil, err
	}
	if dn != "" {
		return slices.Clone(x.byDN[dn]), nil
	}
	return slices.Clone(x.byCert[cert]), nil
}

// refreshLocked loads the index, or applies the changes recorded since.
// A change recorded while it reads is applied again by the next call.
func (x *accountIndex) refreshLocked(ctx context.Context, st *store.Store) error {
	x.pmu.Lock()
	ids := x.pending
	x.pending = nil
	x.pmu.Unlock()
	if !x.loaded {
		x.byDN, x.byCert, x.keys = map[string][]string{}, map[string][]string{}, map[string][2]string{}
		err := st.View(ctx, func(tx *store.Tx) error {
			return tx.EachDirAccount(func(a *store.DirAccount) error { x.put(a.ID, a); return nil })
		})
		if err != nil {
			x.requeue(ids)
			return fmt.Errorf("loading directory accounts: %w", err)
		}
		x.loaded = true
		x.loads++
		return nil
	}
	if len(ids) == 0 {
		return nil
	}
	err := st.View(ctx, func(tx *store.Tx) error {
		for id := range ids {
			a, err := tx.DirAccount(id)
			if errors.Is(err, store.ErrNotFound) {
				a = nil
			} else if err != nil {
				return err
			}
			x.put(id, a)
		}
		return nil
	})
	if err != nil {
		x.requeue(ids)
		return fmt.Errorf("reading changed directory accounts: %w", err)
	}
	return nil
}

func (x *accountIndex) requeue(ids map[string]bool) {
	x.pmu.Lock()
	defer x.pmu.Unlock()
	if x.pending == nil {
		x.pending = map[string]bool{}
	}
	for id := range ids {
		x.pending[id] = true
	}
}

// put replaces what the index holds for id with a's keys (nil: none).
func (x *accountIndex) put(id string, a *store.DirAccount) {
	drop := func(m map[string][]string, k string) {
		if k == "" {
			return
		}
		if l := slices.DeleteFunc(m[k], func(s string) bool { return s == id }); len(l) > 0 {
			m[k] = l
		} else {
			delete(m, k)
		}
	}
	old := x.keys[id]
	drop(x.byDN, old[0])
	drop(x.byCert, old[1])
	delete(x.keys, id)
	if a == nil {
		return
	}
	var k [2]string
	if n, ok := normDN(a.DN); ok && n != "" {
		k[0] = n
		x.byDN[n] = append(x.byDN[n], id)
	}
	if a.ClientCertKey != "" {
		k[1] = a.ClientCertKey
		x.byCert[k[1]] = append(x.byCert[k[1]], id)
	}
	x.keys[id] = k
}

// accountGrant is what directory account rec may read now: its approved
// organisations by ID (people) and by their current name (the o= and ou=
// containers, which carry only a name). notAfter, if later than zero,
// ends the grant earlier than the account (a client certificate's expiry).
func (d *Directory) accountGrant(tx *store.Tx, rec *store.DirAccount, gen uint64, notAfter time.Time) (*grant, error) {
	g := &grant{level: accessScoped, orgs: map[string]bool{}, orgNames: map[string]bool{}, allAttrs: rec.AllAttributes,
		sizeLimit: rec.SizeLimit, timeLimit: time.Duration(rec.TimeLimitSeconds) * time.Second, account: rec.ID,
		dirAccount: rec.ID, gen: gen, expires: rec.ExpiresAt}
	if !notAfter.IsZero() && notAfter.Before(g.expires) {
		g.expires = notAfter
	}
	for _, id := range rec.Orgs {
		o, err := tx.Org(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // an organisation that is gone approves nothing
		}
		if err != nil {
			return nil, err
		}
		g.orgs[o.ID] = true
		g.orgNames[normalize(o.Name)] = true
	}
	if len(g.orgs) == 0 {
		g.level = accessAnonymous // an account without an approved scope reads what anyone does
	}
	return d.counted(g), nil
}

// current says whether g, a directory account's grant, still holds: no
// account has changed since it was made and it has not expired. Two loads
// and a comparison: it runs before every operation of a bound connection.
func (d *Directory) current(g *grant) bool {
	return g.gen == d.acctIdx.gen.Load() && d.now().Before(g.expires)
}

// refreshGrant re-resolves the grant of a bound directory account after
// an account changed or its grant expired: the account's grant now, or
// nil when it is revoked, expired or gone (its client certificate, if it
// bound with one, is checked again too).
func (d *Directory) refreshGrant(ctx context.Context, g *grant) (*grant, error) {
	gen := d.acctIdx.gen.Load()
	now := d.now()
	var ng *grant
	err := d.st.View(ctx, func(tx *store.Tx) error {
		rec, err := tx.DirAccount(g.dirAccount)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		if !rec.Usable(now) || g.cert != nil && !now.Before(g.cert.NotAfter) {
			return nil
		}
		if g.cert != nil {
			if rec.ClientCertKey != store.ClientCertKey(g.cert.RawSubjectPublicKeyInfo) {
				return nil // the account now names another certificate
			}
			if revoked, err := d.certRevoked(tx, g.cert); err != nil || revoked {
				return err
			}
		}
		var notAfter time.Time
		if g.cert != nil {
			notAfter = g.cert.NotAfter
		}
		if ng, err = d.accountGrant(tx, rec, gen, notAfter); err != nil {
			return err
		}
		ng.cert = g.cert
		return nil
	})
	return ng, err
}
