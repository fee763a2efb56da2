package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
)

// TestEachOrgUnit: every (organisation, unit) pair some subscriber has,
// once each, kept by the index as subscribers are written and moved; a
// store written before the index gets it from EnsureSubscriberIndexes.
func TestEachOrgUnit(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	put := func(id, org, unit string) {
		t.Helper()
		if err := s.Update(ctx, func(tx *Tx) error {
			return tx.PutSubscriber(&Subscriber{ID: id, CommonName: id, Organization: org, OrgUnit: unit})
		}); err != nil {
			t.Fatal(err)
		}
	}
	pairs := func() [][2]string {
		t.Helper()
		var out [][2]string
		if err := s.View(ctx, func(tx *Tx) error {
			return tx.EachOrgUnit(func(o, u string) error {
				out = append(out, [2]string{o, u})
				return nil
			})
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for i := range 50 {
		put(fmt.Sprintf("a%02d", i), "Hospital A", "Cardiology")
	}
	put("b1", "Hospital A", "")
	put("b2", "Hospital A", "Cardiology 2")
	put("b3", "Hospital A", "心内科") // bytes above 0x7f
	put("c1", "Hospital B", "Radiology")
	put("c2", "", "")
	want := [][2]string{{"", ""}, {"Hospital A", ""}, {"Hospital A", "Cardiology"}, {"Hospital A", "Cardiology 2"}, {"Hospital A", "心内科"}, {"Hospital B", "Radiology"}}
	if got := pairs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("pairs %q, want %q", got, want)
	}
	// The only subscriber of Hospital B moves: its old pair goes.
	put("c1", "Hospital C", "Radiology")
	want[5] = [2]string{"Hospital C", "Radiology"}
	if got := pairs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a move: pairs %q, want %q", got, want)
	}

	// A store from before the index: drop its keys and the marker.
	if err := s.Update(ctx, func(tx *Tx) error {
		if err := tx.txn.Delete(kSubIdxMarker); err != nil {
			return err
		}
		var keys [][]byte
		if err := tx.scan(pIdxSubOrg, nil, false, func(k, _ []byte) error {
			keys = append(keys, append([]byte(nil), k...))
			return nil
		}); err != nil {
			return err
		}
		for _, k := range keys {
			if err := tx.txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := pairs(); len(got) != 0 {
		t.Fatalf("index not dropped: %q", got)
	}
	if err := s.EnsureSubscriberIndexes(ctx); err != nil {
		t.Fatal(err)
	}
	if got := pairs(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after rebuilding: pairs %q, want %q", got, want)
	}
}
