package directory

import (
	"context"
	"errors"
	"fmt"
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
	code    int
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

// search runs one search request, writing entries to out.
func (d *Directory) search(ctx context.Context, sess session, req *searchRequest, out sink) searchOutcome {
	st := d.static.Load()
	sel := newSelection(req.attrs, req.typesOnly)
	baseNorm, ok := normDN(req.base)
	if !ok {
		return searchOutcome{result: result{code: resultInvalidDNSyntax, diag: "invalid base DN"}}
	}
	// the rootDSE and the subschema answer anyone: clients need them to
	// discover how to bind.
	if baseNorm == "" && req.scope == scopeBase {
		return d.one(st.rootDSE, req, sel, out)
	}
	if baseNorm == st.subschema.norm {
		if req.scope == scopeBase {
			return d.one(st.subschema, req, sel, out)
		}
		return searchOutcome{}
	}
	if !sess.mayRead(d.opts.Config.AnonymousRead) {
		return searchOutcome{result: result{code: resultInsufficientAccess, diag: "anonymous read is disabled: bind as a service account"}}
	}

	// Without paging the lower of the server's and the client's size limit
	// bounds the search. With paging the server's bounds each page and the
	// client's the whole search across its pages (RFC 4511 4.5.1.4; slapd
	// does the same): totalLeft is what the client may still receive.
	limit := int64(d.opts.Config.SizeLimit)
	var page pageState
	totalLeft := int64(-1)
	if req.paged {
		if req.pageSize == 0 { // the client abandons the paged search
			return searchOutcome{paged: true}
		}
		if req.pageSize < limit {
			limit = req.pageSize
		}
		var r result
		if page, r = d.cookies.open(req, sess.identity()); r.code != resultSuccess {
			return searchOutcome{result: r, paged: true}
		}
		if req.sizeLimit > 0 {
			totalLeft = req.sizeLimit - page.sent
			limit = min(limit, totalLeft)
		}
	} else if req.sizeLimit > 0 && req.sizeLimit < limit {
		limit = req.sizeLimit
	}
	cur := page.cur
	timeLimit := d.opts.Config.TimeLimit.D()
	if req.timeLimit > 0 && time.Duration(req.timeLimit)*time.Second < timeLimit {
		timeLimit = time.Duration(req.timeLimit) * time.Second
	}
	deadline := d.now().Add(timeLimit)

	out2 := searchOutcome{paged: req.paged}
	err := d.st.View(ctx, func(tx *store.Tx) error {
		var base *Entry
		if baseNorm != "" {
			var err error
			if base, err = d.lookupDN(tx, st, baseNorm); err != nil {
				return err
			}
			if base == nil {
				out2.code = resultNoSuchObject
				out2.matched = d.matchedDN(st, baseNorm)
				out2.diag = "no such entry"
				return nil
			}
		}
		if req.scope == scopeBase {
			if req.filter.eval(base) == triTrue {
				return out.entry(base, sel)
			}
			return nil
		}
		inScope := func(n string) bool {
			switch req.scope {
			case scopeOne:
				return n != "" && parentOf(n) == baseNorm
			case scopeChildren:
				return n != baseNorm && isUnder(n, baseNorm)
			}
			return isUnder(n, baseNorm)
		}
		var sent int64
		more := false
		var last cursor
		emit := func(e *Entry, pos cursor) error {
			if req.filter.eval(e) != triTrue {
				return nil
			}
			if sent == limit {
				more = true
				return errStopScan
			}
			if err := out.entry(e, sel); err != nil {
				return err
			}
			sent++
			last = pos
			return nil
		}
		checked := 0
		tick := func() error {
			if checked++; checked&63 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				if d.now().After(deadline) {
					return errTimeLimit
				}
			}
			return nil
		}
		scan := func() error {
			// static entries
			if !cur.subs {
				for i := cur.static; i < len(st.order); i++ {
					e := st.order[i]
					if !inScope(e.norm) {
						continue
					}
					if err := emit(e, cursor{static: i + 1}); err != nil {
						return err
					}
				}
			}
			// subscriber entries: by index when the filter allows, else a scan
			visit := func(id string) error {
				if err := tick(); err != nil {
					return err
				}
				e, err := d.subscriberEntry(tx, st, id)
				if err != nil || e == nil {
					return err
				}
				if !inScope(e.norm) {
					return nil
				}
				return emit(e, cursor{subs: true, after: id})
			}
			if ids, ok, err := d.indexed(tx, req.filter); err != nil {
				return err
			} else if ok {
				sort.Strings(ids)
				for i, id := range ids {
					if i > 0 && ids[i-1] == id || cur.subs && id <= cur.after {
						continue
					}
					if err := visit(id); err != nil {
						return err
					}
				}
			} else if d.subscribersMayBeUnder(st, baseNorm) {
				if err := tx.EachSubscriberIDAfter(cur.after, visit); err != nil {
					return err
				}
			}
			return nil
		}
		if err := scan(); err != nil && !errors.Is(err, errStopScan) {
			return err
		}
		if more {
			if req.paged && limit != totalLeft {
				out2.cookie = d.cookies.seal(req, sess.identity(), pageState{cur: last, sent: page.sent + sent})
			} else {
				out2.code, out2.diag = resultSizeLimitExceeded, fmt.Sprintf("more than %d entries match", limit)
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errTimeLimit):
		out2.code, out2.diag = resultTimeLimitExceeded, "time limit exceeded"
	case err != nil:
		if ctx.Err() != nil {
			return searchOutcome{result: result{code: resultOther, diag: "abandoned"}}
		}
		d.log.Error("search failed", "base", req.base, "err", err)
		out2.code, out2.diag = resultOther, "internal error"
	}
	return out2
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

// lookupDN finds an entry by normalized DN: a static one, or a subscriber
// found through the cn index (the RDN's cn) — never a scan.
func (d *Directory) lookupDN(tx *store.Tx, st *staticDIT, norm string) (*Entry, error) {
	if e := st.byNorm[norm]; e != nil {
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
	ids, err := d.cnIDs(tx, cn)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		e, err := d.subscriberEntry(tx, st, id)
		if err != nil {
			return nil, err
		}
		if e != nil && e.norm == norm {
			return e, nil
		}
	}
	return nil, nil
}

// matchedDN is the longest existing ancestor of a missing entry.
func (d *Directory) matchedDN(st *staticDIT, norm string) string {
	for n := parentOf(norm); n != ""; n = parentOf(n) {
		if e := st.byNorm[n]; e != nil {
			return e.DN
		}
	}
	return ""
}

// indexed returns candidate subscriber IDs when the filter is, or is an AND
// containing, an equality on an indexed attribute (cn, uid, mail,
// serialNumber) or a certificateExactMatch (the certificate's serial is the
// store's primary key). An OR of such filters uses the union.
func (d *Directory) indexed(tx *store.Tx, f *filter) ([]string, bool, error) {
	switch f.kind {
	case fAnd:
		for _, s := range f.subs {
			if ids, ok, err := d.indexed(tx, s); ok || err != nil {
				return ids, ok, err
			}
		}
		return nil, false, nil
	case fOr:
		var all []string
		for _, s := range f.subs {
			ids, ok, err := d.indexed(tx, s)
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
		ids, err = d.cnIDs(tx, f.value)
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
}
