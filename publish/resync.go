package publish

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/store"
)

// A resync compares instead of trusting: it reads the target's subtree
// page by page (a paged search, each page streamed with SearchAsync, so
// the target is never held in memory whole), compares every entry that
// carries a certificate or CRL with what the store says it should carry,
// and repairs the differences through the ordinary delivery (so a refused
// repair lands in the failed set like any delivery). What it holds in
// memory is the expected state: one hash per value per entry.

// nsCheck records, per target and certificate, the time of the resync
// check that found the certificate absent from the target
// ("<target>/<serial hex>"). The last resync's report is
// "<target>/report" in nsPublish.
const nsCheck = "publish-check"

// ResyncReport is what a target's last resync found and repaired.
type ResyncReport struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Entries is how many target entries carrying certificates or CRLs
	// were read; Unchanged of them matched the store.
	Entries   int `json:"entries"`
	Unchanged int `json:"unchanged"`
	// Added counts entries missing on the target; Replaced entries whose
	// values differed (a value changed by hand, a certificate missing or
	// extra); Removed entries from which certificates the target should
	// not carry (revoked or expired per remove_revoked, or belonging to
	// another entry) were taken out.
	Added    int `json:"added"`
	Replaced int `json:"replaced"`
	Removed  int `json:"removed"`
	// AbsentCerts counts certificates found absent from their entry.
	AbsentCerts int `json:"absent_certs"`
	// Failed counts repairs the target refused (see the failed records).
	Failed int `json:"failed"`
}

func (w *worker) resyncKey() string { return w.t.Name + "/resync" }
func (w *worker) reportKey() string { return w.t.Name + "/report" }

type digest = [sha256.Size]byte

// expEntry is what one target entry should carry: per attribute (lower
// case), the hash of each value and the record it comes from.
type expEntry struct {
	dn    string
	attrs map[string]map[digest]string
	seen  bool
}

func (e *expEntry) keys() []string {
	var out []string
	for _, vs := range e.attrs {
		for _, k := range vs {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	slices.Sort(out)
	return out
}

// normDN is a DN in a form two spellings of the same DN share.
func normDN(s string) string {
	d, err := ldap.ParseDN(s)
	if err != nil {
		return strings.ToLower(s)
	}
	rdns := make([]string, len(d.RDNs))
	for i, r := range d.RDNs {
		as := make([]string, len(r.Attributes))
		for j, a := range r.Attributes {
			as[j] = strings.ToLower(a.Type) + "=" + strings.ToLower(a.Value)
		}
		slices.Sort(as)
		rdns[i] = strings.Join(as, "+")
	}
	return strings.Join(rdns, ",")
}

// expected reads, in one transaction, what the target should carry, and
// the hashes of every certificate the store holds (to tell ours from
// values someone else put on the target).
func (w *worker) expected(ctx context.Context) (map[string]*expEntry, map[digest]string, error) {
	exp := map[string]*expEntry{}
	ours := map[digest]string{}
	put := func(dn, attr string, val []byte, key string) {
		n := normDN(dn)
		e := exp[n]
		if e == nil {
			e = &expEntry{dn: dn, attrs: map[string]map[digest]string{}}
			exp[n] = e
		}
		if e.attrs[attr] == nil {
			e.attrs[attr] = map[digest]string{}
		}
		e.attrs[attr][sha256.Sum256(val)] = key
	}
	pub := w.t.Publish
	err := w.p.opts.Store.View(ctx, func(tx *store.Tx) error {
		cas, err := tx.CAs()
		if err != nil {
			return err
		}
		for _, rec := range cas {
			x, err := x509.ParseCertificate(rec.CertDER)
			if err != nil {
				continue // a record delivery refuses too (failed set)
			}
			dn, err := w.m.caDN(rec.Name, x)
			if err != nil {
				continue
			}
			if pub.CACerts {
				put(dn, "cacertificate;binary", rec.CertDER, "ca/"+rec.Name)
			}
			for _, c := range crlscope.Published(rec.Name) {
				on := (c.Kind == crlscope.KindComplete && !c.Delta && pub.CRLs) ||
					(c.Kind == crlscope.KindComplete && c.Delta && pub.DeltaCRLs) ||
					(c.Kind == crlscope.KindARL && !c.Delta && pub.ARLs)
				if !on {
					continue
				}
				der, err := tx.Blob(crlscope.Namespace, c.File())
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				put(dn, strings.ToLower(c.LDAPAttribute())+";binary", der, "crl/"+c.File())
			}
		}
		return tx.EachCert(func(c *store.Cert) error {
			ours[sha256.Sum256(c.DER)] = c.SerialHex()
			if !w.wants(c) || !w.current(c) {
				return nil
			}
			x, err := x509.ParseCertificate(c.DER)
			if err != nil {
				return nil
			}
			dn, err := w.m.subscriberDN(x.Subject)
			if err != nil {
				return nil // in the failed set from its delivery
			}
			put(dn, "usercertificate;binary", c.DER, "cert/"+c.SerialHex())
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("reading the expected state of %s: %w", w.t.Name, err)
	}
	return exp, ours, nil
}

// resyncAttrs are the attributes a resync reads and compares.
var resyncAttrs = []string{"userCertificate;binary", "cACertificate;binary", "certificateRevocationList;binary",
	"deltaRevocationList;binary", "authorityRevocationList;binary"}

// resyncPage is the paged search's page size (Options.ResyncPageSize).
func (w *worker) resyncPage() uint32 {
	if n := w.p.opts.ResyncPageSize; n > 0 {
		return uint32(n)
	}
	return 500
}

// eachTargetEntry streams the target's entries below base_dn that carry
// a certificate or CRL, one page at a time.
func (w *worker) eachTargetEntry(ctx context.Context, fn func(*ldap.Entry) error) error {
	filter := "(|(userCertificate=*)(cACertificate=*)(certificateRevocationList=*)(deltaRevocationList=*)(authorityRevocationList=*))"
	paging := ldap.NewControlPaging(w.resyncPage())
	for {
		req := ldap.NewSearchRequest(w.t.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			filter, resyncAttrs, []ldap.Control{paging})
		res := w.conn.SearchAsync(ctx, req, int(w.resyncPage()))
		for res.Next() {
			if e := res.Entry(); e != nil {
				if err := fn(e); err != nil {
					return err
				}
			}
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("reading %s on the target: %w", w.t.BaseDN, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var cookie []byte
		for _, c := range res.Controls() {
			if pc, ok := c.(*ldap.ControlPaging); ok {
				cookie = pc.Cookie
			}
		}
		if len(cookie) == 0 {
			return nil
		}
		paging.SetCookie(cookie)
	}
}

// resync compares the target with the store and repairs it; the durable
// request is cleared only when it finished.
func (w *worker) resyncTarget(ctx context.Context) error {
	rep := ResyncReport{Started: w.p.now()}
	w.log.Info("resync: comparing the target with the store")
	exp, ours, err := w.expected(ctx)
	if err != nil {
		w.fail(err)
		return err
	}
	if err := w.connect(); err != nil {
		w.fail(err)
		return err
	}
	repair := map[string]bool{}
	absent := map[string]bool{} // serial hex
	var cleanups []*entry
	err = w.eachTargetEntry(ctx, func(te *ldap.Entry) error {
		rep.Entries++
		got := map[string]map[digest]bool{}
		for _, a := range te.Attributes {
			name := strings.ToLower(a.Name)
			if !strings.HasSuffix(name, ";binary") {
				name += ";binary"
			}
			if got[name] == nil {
				got[name] = map[digest]bool{}
			}
			for _, v := range a.ByteValues {
				got[name][sha256.Sum256(v)] = true
			}
		}
		e := exp[normDN(te.DN)]
		if e == nil {
			// No certificate belongs here: take ours out (revoked,
			// expired, or mapped elsewhere now), keep anyone else's.
			var kept [][]byte
			removed := false
			for _, a := range te.Attributes {
				if !strings.EqualFold(strings.TrimSuffix(a.Name, ";binary"), "userCertificate") {
					continue
				}
				for _, v := range a.ByteValues {
					if _, mine := ours[sha256.Sum256(v)]; mine {
						removed = true
					} else {
						kept = append(kept, v)
					}
				}
			}
			if removed {
				cleanups = append(cleanups, &entry{dn: te.DN, replace: map[string][][]byte{"userCertificate;binary": kept}})
			} else {
				rep.Unchanged++
			}
			return nil
		}
		e.seen = true
		differs := false
		for attr, want := range e.attrs {
			have := got[attr]
			for h, k := range want {
				if !have[h] {
					differs = true
					if s, ok := strings.CutPrefix(k, "cert/"); ok {
						absent[s] = true
					}
				}
			}
			if len(have) != len(want) {
				differs = true
			}
		}
		if differs {
			rep.Replaced++
			for _, k := range e.keys() {
				repair[k] = true
			}
		} else {
			rep.Unchanged++
		}
		return nil
	})
	if err != nil {
		if !isRecordErr(err) || ctx.Err() != nil {
			w.disconnect()
		}
		w.fail(err)
		return err
	}
	for _, e := range exp {
		if e.seen {
			continue
		}
		rep.Added++
		for _, k := range e.keys() {
			repair[k] = true
			if s, ok := strings.CutPrefix(k, "cert/"); ok {
				absent[s] = true
			}
		}
	}
	rep.AbsentCerts = len(absent)
	// Record what was found before repairing: a crash during the repair
	// still leaves the diagnosis.
	if err := w.recordCheck(ctx, rep.Started, absent); err != nil {
		w.fail(err)
		return err
	}
	for _, c := range cleanups {
		if err := put(w.conn, w.t.BaseDN, c); err != nil {
			if !isRecordErr(err) {
				w.fail(err)
				w.disconnect()
				return err
			}
			rep.Failed++
			w.log.Warn("resync: removing certificates from an entry failed", "dn", c.dn, "err", err)
			continue
		}
		rep.Removed++
	}
	keys := make([]string, 0, len(repair))
	for k := range repair {
		keys = append(keys, k)
	}
	if err := w.deliverKeys(ctx, keys); err != nil {
		return err
	}
	for _, k := range keys {
		if _, ok := w.failedFor(k); ok {
			rep.Failed++
		}
	}
	rep.Finished = w.p.now()
	v, _ := json.Marshal(rep)
	if err := w.p.opts.Store.Update(ctx, func(tx *store.Tx) error {
		if err := tx.PutBlob(nsPublish, w.reportKey(), v); err != nil {
			return err
		}
		return tx.DeleteBlob(nsPublish, w.resyncKey())
	}); err != nil {
		err = fmt.Errorf("recording the resync of %s: %w", w.t.Name, err)
		w.fail(err)
		return err
	}
	w.log.Info("resync finished", "entries", rep.Entries, "unchanged", rep.Unchanged, "added", rep.Added,
		"replaced", rep.Replaced, "removed", rep.Removed, "absent_certs", rep.AbsentCerts, "failed", rep.Failed)
	return nil
}

// recordCheck replaces the target's absent-at-check records with this
// check's.
func (w *worker) recordCheck(ctx context.Context, at time.Time, absent map[string]bool) error {
	prefix := w.t.Name + "/"
	var old []string
	if err := w.p.opts.Store.View(ctx, func(tx *store.Tx) error {
		return tx.EachBlob(nsCheck, func(k string, _ []byte) error {
			if strings.HasPrefix(k, prefix) {
				old = append(old, k)
			}
			return nil
		})
	}); err != nil {
		return fmt.Errorf("reading the resync checks of %s: %w", w.t.Name, err)
	}
	stamp := []byte(at.UTC().Format(time.RFC3339Nano))
	var todo []func(tx *store.Tx) error
	for _, k := range old {
		todo = append(todo, func(tx *store.Tx) error { return tx.DeleteBlob(nsCheck, k) })
	}
	for s := range absent {
		todo = append(todo, func(tx *store.Tx) error { return tx.PutBlob(nsCheck, prefix+s, stamp) })
	}
	const chunk = 1000
	for i := 0; i < len(todo); i += chunk {
		part := todo[i:min(i+chunk, len(todo))]
		if err := w.p.opts.Store.Update(ctx, func(tx *store.Tx) error {
			for _, f := range part {
				if err := f(tx); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("recording the resync check of %s: %w", w.t.Name, err)
		}
	}
	return nil
}

// checkedAbsent is when the last resync found serial absent (zero: it
// did not).
func checkedAbsent(tx *store.Tx, target string, serial []byte) time.Time {
	b, err := tx.Blob(nsCheck, target+"/"+hex.EncodeToString(serial))
	if err != nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(b))
	return t
}
