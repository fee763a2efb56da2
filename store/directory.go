package store

import (
	"context"
	"errors"
	"fmt"
)

// Directory indexes: the LDAP directory answers equality on uid, mail and
// serialNumber from these, never by a scan (cn uses i\0subcn\0).
//
//	i\0subuid\0<lower uid>\0<id>
//	i\0submail\0<lower mail>\0<id>
//	i\0subsn\0<lower serialNumber>\0<id>
//	i\0subidx                          marker: the three indexes are complete
var (
	pIdxSubUID    = []byte("i\x00subuid\x00")
	pIdxSubMail   = []byte("i\x00submail\x00")
	pIdxSubSN     = []byte("i\x00subsn\x00")
	kSubIdxMarker = []byte("i\x00subidx")
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
	return out
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
