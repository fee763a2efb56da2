package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Directory indexes: the LDAP directory answers equality on uid, mail and
// serialNumber from these, never by a scan (cn uses i\0subcn\0).
//
//	i\0subuid\0<lower uid>\0<id>
//	i\0submail\0<lower mail>\0<id>
//	i\0subsn\0<lower serialNumber>\0<id>
//	i\0suborg\0<o>\0<ou>\0<id>          the organisation tree: the directory's
//	                                   containers at start, without reading
//	                                   every subscriber
//	i\0subidx2                         marker: the four indexes are complete
//	                                   (i\0subidx: the first three)
var (
	pIdxSubUID    = []byte("i\x00subuid\x00")
	pIdxSubMail   = []byte("i\x00submail\x00")
	pIdxSubSN     = []byte("i\x00subsn\x00")
	pIdxSubOrg    = []byte("i\x00suborg\x00")
	kSubIdxMarker = []byte("i\x00subidx2")
)

// subscriberAttrIndexes lists the directory index keys of one subscriber.
func subscriberAttrIndexes(s *Subscriber) [][]byte {
	var out [][]byte
	for _, ix := range []struct {
		prefix []byte
		v      string
	}{{pIdxSubUID, s.UID}, {pIdxSubMail, s.Email}, {pIdxSubSN, s.SerialNumber}} {
		if ix.v != "" {
			out = append(out, cat(ix.prefix, fold(ix.v), []byte(s.ID)))
		}
	}
	return append(out, cat(pIdxSubOrg, stripNUL(s.Organization), stripNUL(s.OrgUnit), []byte(s.ID)))
}

// stripNUL removes the NUL that separates key parts, keeping case.
func stripNUL(s string) []byte { return []byte(strings.ReplaceAll(s, "\x00", "")) }

// EachOrgUnit calls fn once for every (organisation, unit) pair that some
// subscriber has, in key order. It reads one index key per pair, seeking
// past the rest of the pair's subscribers, so it costs the number of
// pairs, not of subscribers.
func (tx *Tx) EachOrgUnit(fn func(org, unit string) error) error {
	opts := badger.DefaultIteratorOptions
	opts.PrefetchValues = false
	opts.Prefix = pIdxSubOrg
	it := tx.txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(pIdxSubOrg); it.ValidForPrefix(pIdxSubOrg); {
		k := it.Item().Key()
		rest := k[len(pIdxSubOrg):]
		o, afterO, ok1 := bytes.Cut(rest, []byte{0})
		u, _, ok2 := bytes.Cut(afterO, []byte{0})
		if !ok1 || !ok2 {
			return fmt.Errorf("organisation index key %q: malformed", k)
		}
		org, unit := string(o), string(u)
		if err := fn(org, unit); err != nil {
			return err
		}
		// Past every key of this pair: <o>\0<ou>\0 then 0xff, which sorts
		// after every ID (and 0xff never occurs in UTF-8).
		it.Seek(append(cat(pIdxSubOrg, o, u, nil), 0xff))
	}
	return nil
}

// indexSubscriberAttrs replaces old's directory index keys with s's; old may
// be nil for a new subscriber.
func (tx *Tx) indexSubscriberAttrs(old, s *Subscriber) error {
	keep := map[string]bool{}
	for _, k := range subscriberAttrIndexes(s) {
		keep[string(k)] = true
	}
	if old != nil {
		for _, k := range subscriberAttrIndexes(old) {
			if keep[string(k)] {
				continue
			}
			if err := tx.txn.Delete(k); err != nil {
				return fmt.Errorf("deleting subscriber index of %s: %w", s.ID, err)
			}
		}
	}
	for k := range keep {
		if err := tx.set([]byte(k), nil); err != nil {
			return fmt.Errorf("writing subscriber index of %s: %w", s.ID, err)
		}
	}
	return nil
}

func (tx *Tx) subscribersUnder(prefix []byte, fn func(*Subscriber) error) error {
	return tx.scan(prefix, nil, false, func(k, _ []byte) error {
		s, err := tx.Subscriber(string(k[len(prefix):]))
		if err != nil {
			return err
		}
		return fn(s)
	})
}

// SubscriberIDsByCommonName streams the IDs of subscribers whose CN equals cn
// (case-insensitive) without reading the records.
func (tx *Tx) SubscriberIDsByCommonName(cn string, fn func(id string) error) error {
	prefix := cat(pIdxSubCN, fold(cn), nil)
	return tx.scan(prefix, nil, false, func(k, _ []byte) error { return fn(string(k[len(prefix):])) })
}

// SubscribersByUID streams subscribers whose uid equals uid (case-insensitive).
func (tx *Tx) SubscribersByUID(uid string, fn func(*Subscriber) error) error {
	return tx.subscribersUnder(cat(pIdxSubUID, fold(uid), nil), fn)
}

// SubscribersByEmail streams subscribers whose mail equals mail (case-insensitive).
func (tx *Tx) SubscribersByEmail(mail string, fn func(*Subscriber) error) error {
	return tx.subscribersUnder(cat(pIdxSubMail, fold(mail), nil), fn)
}

// SubscribersBySerialNumber streams subscribers whose serialNumber (the
// identity document number, not a certificate serial) equals sn.
func (tx *Tx) SubscribersBySerialNumber(sn string, fn func(*Subscriber) error) error {
	return tx.subscribersUnder(cat(pIdxSubSN, fold(sn), nil), fn)
}

// EachSubscriberAfter streams subscribers in ID order starting after the
// given ID ("" for the start). Return a non-nil error from fn to stop.
func (tx *Tx) EachSubscriberAfter(after string, fn func(*Subscriber) error) error {
	var start []byte
	if after != "" {
		start = append(cat(pSub, []byte(after)), 0)
	}
	return tx.scan(pSub, start, true, func(k, v []byte) error {
		var s Subscriber
		if err := decode(v, &s); err != nil {
			return fmt.Errorf("decoding subscriber %q: %w", k[len(pSub):], err)
		}
		return fn(&s)
	})
}

// EnsureSubscriberIndexes builds the uid, mail and serialNumber indexes of
// subscribers written before they existed. It is a no-op once the marker is
// set; a crash part way leaves the marker unset, so the next start redoes it
// (writing an index key twice is harmless).
func (s *Store) EnsureSubscriberIndexes(ctx context.Context) error {
	done := false
	if err := s.View(ctx, func(tx *Tx) error {
		ok, err := tx.exists(kSubIdxMarker)
		done = ok
		return err
	}); err != nil {
		return fmt.Errorf("checking subscriber indexes: %w", err)
	}
	if done {
		return nil
	}
	const batch = 1000
	after := ""
	for {
		var page []*Subscriber
		if err := s.View(ctx, func(tx *Tx) error {
			err := tx.EachSubscriberAfter(after, func(sub *Subscriber) error {
				if len(page) == batch {
					return errStop
				}
				page = append(page, sub)
				return nil
			})
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}); err != nil {
			return fmt.Errorf("reading subscribers to index: %w", err)
		}
		if len(page) == 0 {
			break
		}
		if err := s.Update(ctx, func(tx *Tx) error {
			for _, sub := range page {
				if err := tx.indexSubscriberAttrs(nil, sub); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("indexing subscribers: %w", err)
		}
		after = page[len(page)-1].ID
	}
	return s.Update(ctx, func(tx *Tx) error { return tx.set(append([]byte{}, kSubIdxMarker...), nil) })
}

// EachSubscriberIDAfter streams subscriber IDs in order starting after the
// given ID ("" for the start), reading keys only.
func (tx *Tx) EachSubscriberIDAfter(after string, fn func(id string) error) error {
	var start []byte
	if after != "" {
		start = append(cat(pSub, []byte(after)), 0)
	}
	return tx.scan(pSub, start, false, func(k, _ []byte) error { return fn(string(k[len(pSub):])) })
}
