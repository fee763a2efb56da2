package directory

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Search scopes.
const (
	scopeBase     = 0
	scopeOne      = 1
	scopeSub      = 2
	scopeChildren = 3 // RFC 4512 extension: subordinates, not the base
)

// result is the outcome of an operation, rendered into its response in one place.
type result struct {
	code    resultCode
	matched string
	diag    string
}

// sink receives encoded search result entries; it flushes as it fills.
type sink interface {
	entry(e *Entry, sel *selection) error
}

// searchOutcome is a search's result and, for a paged search, the cookie.
type searchOutcome struct {
	result
	paged  bool
	cookie []byte
}

// cursor is a position in a search's deterministic order: static entries
// first, in DIT order, then subscribers in ID order. A paged search's
// cookie carries a cursor, so the server keeps no state between pages.
type cursor struct {
	static int    // next static entry index
	after  string // last subscriber ID returned
	subs   bool   // the static phase is done
}

var errStopScan = errors.New("stop")

// searchPlan is what a search will do, decided before it sends anything:
// the base, the scope, where the candidates come from, the limits.
type searchPlan struct {
	req      *searchRequest
	sel      *selection
	st       *staticDIT
	baseNorm string
	identity string // paging cookies are bound to it
	grant    *grant // what the client may read (access.go)
	// only is the one entry a base search of the rootDSE or the
	// subschema tests; it needs no store read.
	only *Entry
	// base is the base entry, nil for the root (set by locate).
	base *Entry
	// limit bounds this response's entries; totalLeft is what a paged
	// search may still return across its pages (-1: no client limit).
	limit, totalLeft int64
	page             pageState
	deadline         time.Time
	// indexed: the subscriber candidates are ids (sorted, distinct) from
	// an index; else scanSubs says whether subscribers are scanned at all.
	indexed  bool
	ids      []string
	scanSubs bool
	// gen is the cache generation from before the store transaction
	// opened (subscriberEntry).
	gen uint64
}

// search runs one search request, writing entries to out.
func (d *Directory) search(ctx context.Context, sess session, req *searchRequest, out sink) searchOutcome {
	d.awaitChanges(ctx)
	p, early := d.plan(sess, req)
	if early != nil {
		return *early
	}
	if p.only != nil {
		return d.one(p.only, req, p.sel, out)
	}
	if req.scope == scopeBase {
		// the hot path: a base read of a cached entry reads nothing from
		// the store, so it needs no transaction
		if p.base = d.cachedEntry(p.st, p.baseNorm, true); p.base != nil {
			if p.base = d.view(p.grant, p.base); p.base == nil {
				return d.absent(p)
			}
			res, err := d.execute(ctx, nil, p, out)
			return d.outcome(ctx, req, res, err)
		}
	}
	var res searchOutcome
	// before the transaction opens: entries built from it are cached only
	// if no change was committed meanwhile (subscriberEntry)
	p.gen = d.gen.Load()
	err := d.st.View(ctx, func(tx *store.Tx) error {
		if early, err := d.locate(tx, p); err != nil || early != nil {
			if early != nil {
				res = *early
			}
			return err
		}
		var err error
		res, err = d.execute(ctx, tx, p, out)
		return err
	})
	return d.outcome(ctx, req, res, err)
}

// outcome maps a search's error to its result.
func (d *Directory) outcome(ctx context.Context, req *searchRequest, res searchOutcome, err error) searchOutcome {
	switch {
	case errors.Is(err, errTimeLimit):
		res = searchOutcome{result: result{code: resultTimeLimitExceeded, diag: "time limit exceeded"}, paged: req.paged}
	case err != nil:
		if ctx.Err() != nil {
			return searchOutcome{result: result{code: resultOther, diag: "abandoned"}}
		}
		d.log.Error("search failed", "base", req.base, "err", err)
		res = searchOutcome{result: result{code: resultOther, diag: "internal error"}, paged: req.paged}
	}
	return res
}

// searchNow answers a base search that needs neither the store nor a
// wait — the rootDSE, the subschema, a refusal, or a cached entry, with
// every committed change applied — and reports false, having sent
// nothing, for any other.
func (d *Directory) searchNow(sess session, req *searchRequest, out sink) (searchOutcome, bool) {
	if req.scope != scopeBase || !d.changes.caughtUp() {
		return searchOutcome{}, false
	}
	p, early := d.plan(sess, req)
	switch {
	case early != nil:
		return *early, true
	case p.only != nil:
		return d.one(p.only, req, p.sel, out), true
	}
	if p.base = d.cachedEntry(p.st, p.baseNorm, false); p.base == nil {
		return searchOutcome{}, false
	}
	if p.base = d.view(p.grant, p.base); p.base == nil {
		return d.absent(p), true
	}
	ctx := context.Background()
	res, err := d.execute(ctx, nil, p, out)
	return d.outcome(ctx, req, res, err), true
}

// plan decides what needs no store read: the base's syntax, the rootDSE
// and the subschema, access, the size and time limits and the paging
// cookie. A non-nil outcome is the whole answer.
func (d *Directory) plan(sess session, req *searchRequest) (*searchPlan, *searchOutcome) {
	p := &searchPlan{req: req, st: d.static.Load(), sel: newSelection(req.attrs, req.typesOnly), totalLeft: -1}
	var ok bool
	if p.baseNorm, ok = normDN(req.base); !ok {
		return nil, &searchOutcome{result: result{code: resultInvalidDNSyntax, diag: "invalid base DN"}}
	}
	// the rootDSE and the subschema answer anyone: clients need them to
	// discover how to bind.
	if p.baseNorm == "" && req.scope == scopeBase {
		p.only = p.st.rootDSE
		return p, nil
	}
	if p.baseNorm == p.st.subschema.norm {
		if req.scope == scopeBase {
			p.only = p.st.subschema
			return p, nil
		}
		return nil, &searchOutcome{}
	}
	if !sess.mayRead(d.opts.Config.AnonymousRead) {
		return nil, &searchOutcome{result: result{code: resultInsufficientAccess, diag: "anonymous read is disabled: bind as a service account"}}
	}
	p.identity, p.grant = sess.identity(), sess.access()

	// Without paging the lower of the server's and the client's size limit
	// bounds the search. With paging the server's bounds each page and the
	// client's the whole search across its pages (RFC 4511 4.5.1.4; slapd
	// does the same): totalLeft is what the client may still receive.
	p.limit = int64(d.opts.Config.SizeLimit)
	if p.grant.sizeLimit > 0 {
		p.limit = min(p.limit, int64(p.grant.sizeLimit))
	}
	if req.paged {
		if req.pageSize == 0 { // the client abandons the paged search
			return nil, &searchOutcome{paged: true}
		}
		p.limit = min(p.limit, req.pageSize)
		var r result
		if p.page, r = d.cookies.open(req, p.identity); r.code != resultSuccess {
			return nil, &searchOutcome{result: r, paged: true}
		}
		if req.sizeLimit > 0 {
			p.totalLeft = req.sizeLimit - p.page.sent
			p.limit = min(p.limit, p.totalLeft)
		}
	} else if req.sizeLimit > 0 {
		p.limit = min(p.limit, req.sizeLimit)
	}
	timeLimit := d.opts.Config.TimeLimit.D()
	if p.grant.timeLimit > 0 {
		timeLimit = min(timeLimit, p.grant.timeLimit)
	}
	if req.timeLimit > 0 && time.Duration(req.timeLimit)*time.Second < timeLimit {
		timeLimit = time.Duration(req.timeLimit) * time.Second
	}
	p.deadline = d.now().Add(timeLimit)
	return p, nil
}

// locate finishes the plan with what the store says: the base entry and
// where the subscriber candidates come from — an index when the filter
// allows, else a scan when subscribers can be in scope at all.
func (d *Directory) locate(tx *store.Tx, p *searchPlan) (*searchOutcome, error) {
	if p.baseNorm != "" {
		var err error
		if p.base, err = d.lookupDNAt(tx, p.st, p.baseNorm, p.gen); err != nil {
			return nil, err
		}
		if p.base != nil {
			p.base = d.view(p.grant, p.base)
		}
		if p.base == nil {
			out := d.absent(p)
			return &out, nil
		}
	}
	if p.req.scope == scopeBase || d.seesNoPeople(p.grant) {
		return nil, nil
	}
	ids, ok, err := d.indexed(tx, p.req.filter, p.gen)
	if err != nil {
		return nil, err
	}
	if ok {
		sort.Strings(ids)
		p.indexed, p.ids = true, slices.Compact(ids)
	} else {
		p.scanSubs = d.subscribersMayBeUnder(p.st, p.baseNorm)
	}
	return nil, nil
}

// absent is the answer to a search whose base does not exist or is out of
// the client's access: the same in both cases, so it leaks nothing.
func (d *Directory) absent(p *searchPlan) searchOutcome {
	return searchOutcome{paged: p.req.paged, result: result{code: resultNoSuchObject, matched: d.matchedDN(p.st, p.grant, p.baseNorm), diag: "no such entry"}}
}

// inScope reports whether the entry with normalized DN n is in the scope.
func (p *searchPlan) inScope(n string) bool {
	switch p.req.scope {
	case scopeBase:
		return n == p.baseNorm
	case scopeOne:
		return n != "" && parentOf(n) == p.baseNorm
	case scopeChildren:
		return n != p.baseNorm && isUnder(n, p.baseNorm)
	}
	return isUnder(n, p.baseNorm)
}

// execution is one run of a plan: it walks the candidates in the
// deterministic order from the plan's cursor, sends the matches and stops
// at the limit.
type execution struct {
	ctx     context.Context
	d       *Directory
	tx      *store.Tx
	p       *searchPlan
	out     sink
	sent    int64
	more    bool   // a match beyond the limit exists
	last    cursor // position of the last entry sent
	checked int
}

// execute runs a plan and renders its outcome, with the next page's
// cookie or sizeLimitExceeded when more entries match than were sent.
func (d *Directory) execute(ctx context.Context, tx *store.Tx, p *searchPlan, out sink) (searchOutcome, error) {
	res := searchOutcome{paged: p.req.paged}
	x := &execution{ctx: ctx, d: d, tx: tx, p: p, out: out}
	if err := x.run(); err != nil && !errors.Is(err, errStopScan) {
		return res, err
	}
	if x.more {
		if p.req.paged && p.limit != p.totalLeft {
			res.cookie = d.cookies.seal(p.req, p.identity, pageState{cur: x.last, sent: p.page.sent + x.sent})
		} else {
			res.code, res.diag = resultSizeLimitExceeded, fmt.Sprintf("more than %d entries match", p.limit)
		}
	}
	return res, nil
}

func (x *execution) run() error {
	p := x.p
	if p.req.scope == scopeBase {
		if p.req.filter.eval(p.base) == triTrue {
			return x.out.entry(p.base, p.sel)
		}
		return nil
	}
	cur := p.page.cur
	if !cur.subs {
		for i := cur.static; i < len(p.st.order); i++ {
			if e := p.st.order[i]; p.inScope(e.norm) {
				if err := x.emit(e, cursor{static: i + 1}); err != nil {
					return err
				}
			}
		}
	}
	switch {
	case p.indexed:
		for _, id := range p.ids {
			if cur.subs && id <= cur.after {
				continue
			}
			if err := x.visit(id); err != nil {
				return err
			}
		}
	case p.scanSubs:
		return x.tx.EachSubscriberIDAfter(cur.after, x.visit)
	}
	return nil
}

// visit considers one subscriber.
func (x *execution) visit(id string) error {
	if x.checked++; x.checked&63 == 0 {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		if x.d.now().After(x.p.deadline) {
			return errTimeLimit
		}
	}
	e, err := x.d.subscriberEntry(x.tx, x.p.st, id, x.p.gen)
	if err != nil || e == nil || !x.p.inScope(e.norm) {
		return err
	}
	return x.emit(e, cursor{subs: true, after: id})
}

// emit sends e if it matches, or stops the scan at the limit.
func (x *execution) emit(e *Entry, pos cursor) error {
	if e = x.d.view(x.p.grant, e); e == nil || x.p.req.filter.eval(e) != triTrue {
		return nil
	}
	if x.sent == x.p.limit {
		x.more = true
		return errStopScan
	}
	if err := x.out.entry(e, x.p.sel); err != nil {
		return err
	}
	x.sent++
	x.last = pos
	return nil
}

var errTimeLimit = errors.New("time limit exceeded")

func (d *Directory) one(e *Entry, req *searchRequest, sel *selection, out sink) searchOutcome {
	if req.filter.eval(e) == triTrue {
		if err := out.entry(e, sel); err != nil {
			return searchOutcome{result: result{code: resultOther, diag: err.Error()}}
		}
	}
	return searchOutcome{paged: req.paged}
}

// subscribersMayBeUnder reports whether subscriber entries can be below base.
func (d *Directory) subscribersMayBeUnder(st *staticDIT, baseNorm string) bool {
	return isUnder(st.suffixNorm, baseNorm) || isUnder(baseNorm, st.suffixNorm)
}

// cachedEntry is the entry with a normalized DN if it is static or a
// cached subscriber entry that has not expired; else nil. Without wait it
// also gives nil rather than wait for the cache's lock.
func (d *Directory) cachedEntry(st *staticDIT, norm string, wait bool) *Entry {
	if e := st.byNorm[norm]; e != nil {
		return e
	}
	if !wait {
		if !d.cacheMu.TryRLock() {
			return nil
		}
	} else {
		d.cacheMu.RLock()
	}
	e := d.byDN[norm]
	d.cacheMu.RUnlock()
	if e != nil && e.live(d.now()) {
		e.touch()
		return e
	}
	return nil
}

// lookupDNAt finds an entry by normalized DN: a static one, a cached one, or
// a subscriber found through the cn index (the RDN's cn) — never a scan.
// gen is the cache generation from before tx opened (subscriberEntry).
func (d *Directory) lookupDNAt(tx *store.Tx, st *staticDIT, norm string, gen uint64) (*Entry, error) {
	if e := d.cachedEntry(st, norm, true); e != nil {
		return e, nil
	}
	rdns, err := parseDN(norm)
	if err != nil || len(rdns) == 0 || !isUnder(norm, st.suffixNorm) {
		return nil, nil
	}
	cn := ""
	for _, a := range rdns[0] {
		if a.attr == "cn" {
			cn = a.value
		}
	}
	if cn == "" {
		return nil, nil
	}
	ids, err := d.cnIDs(tx, cn, gen)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		e, err := d.subscriberEntry(tx, st, id, gen)
		if err != nil {
			return nil, err
		}
		if e != nil && e.norm == norm {
			return e, nil
		}
	}
	return nil, nil
}

// matchedDN is the longest ancestor of a missing entry that exists and g sees.
func (d *Directory) matchedDN(st *staticDIT, g *grant, norm string) string {
	for n := parentOf(norm); n != ""; n = parentOf(n) {
		if e := st.byNorm[n]; e != nil && d.view(g, e) != nil {
			return e.DN
		}
	}
	return ""
}

// indexed returns candidate subscriber IDs when the filter is, or is an AND
// containing, an equality on an indexed attribute (cn, uid, mail,
// serialNumber) or a certificateExactMatch (the certificate's serial is the
// store's primary key). An OR of such filters uses the union.
func (d *Directory) indexed(tx *store.Tx, f *filter, gen uint64) ([]string, bool, error) {
	switch f.kind {
	case fAnd:
		for _, s := range f.subs {
			if ids, ok, err := d.indexed(tx, s, gen); ok || err != nil {
				return ids, ok, err
			}
		}
		return nil, false, nil
	case fOr:
		var all []string
		for _, s := range f.subs {
			ids, ok, err := d.indexed(tx, s, gen)
			if !ok || err != nil {
				return nil, false, err
			}
			all = append(all, ids...)
		}
		return all, len(f.subs) > 0, nil
	case fEquality, fExtensible:
	default:
		return nil, false, nil
	}
	if f.at == nil && f.cert == nil || f.badVal {
		return nil, false, nil
	}
	if f.cert != nil {
		return d.byCertificate(tx, f.cert)
	}
	if f.kind == fExtensible {
		return nil, false, nil
	}
	if d.hidden[f.at] {
		// no entry has it: nothing matches, and no scan is needed to say so
		return []string{}, true, nil
	}
	var ids []string
	collect := func(s *store.Subscriber) error { ids = append(ids, s.ID); return nil }
	var err error
	switch f.at.name {
	case "cn":
		ids, err = d.cnIDs(tx, f.value, gen)
		ids = append([]string(nil), ids...) // the cached slice is shared
	case "uid":
		err = tx.SubscribersByUID(f.value, collect)
		if err == nil {
			// a subscriber without uid is published with its ID as uid
			if s, e := tx.Subscriber(string(f.raw)); e == nil && s.UID == "" {
				ids = append(ids, s.ID)
			}
		}
	case "mail":
		err = tx.SubscribersByEmail(f.value, collect)
	case "serialnumber", "serialNumber":
		err = tx.SubscribersBySerialNumber(f.value, collect)
	default:
		return nil, false, nil
	}
	return ids, true, err
}

// byCertificate finds the subscriber holding a certificate by issuer and serial.
func (d *Directory) byCertificate(tx *store.Tx, a *certAssertion) ([]string, bool, error) {
	c, err := tx.Cert(a.serial.Bytes())
	if errors.Is(err, store.ErrNotFound) || err == nil && c.SubscriberID == "" {
		return []string{}, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []string{c.SubscriberID}, true, nil
}

// session is the per-connection state searches consult.
type session interface {
	mayRead(anonymousRead bool) bool
	// identity is the bound name ("" when anonymous), to which paging
	// cookies are bound.
	identity() string
	// access is what the bound identity may read.
	access() *grant
}
