package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestReplicationRoundTrip writes on a "primary" with ReplicateWrites,
// ships every LogRecord entry's records to a "replica" with
// ApplyReplicated (twice, as a redelivery would), and compares what the
// replica's indexes answer.
func TestReplicationRoundTrip(t *testing.T) {
	ctx := context.Background()
	p, _ := openTest(t)
	r, _ := openTest(t)
	p.ReplicateWrites("ocsp")
	now := time.Unix(1700000000, 0).UTC()
	c := &Cert{Serial: []byte{1, 2, 3}, Issuer: "demo", DER: []byte{0x30}, Subject: "CN=Alice", CommonName: "Alice",
		SubscriberID: "s1", NotBefore: now, NotAfter: now.Add(time.Hour), IssuedAt: now, UpdatedAt: now}
	must(t, p.Update(ctx, func(tx *Tx) error {
		if err := tx.PutSubscriber(&Subscriber{ID: "s1", CommonName: "Alice", Email: "a@example.org"}); err != nil {
			return err
		}
		if err := tx.InsertCert(c); err != nil {
			return err
		}
		return tx.PutBlob("ocsp", "010203", []byte("good"))
	}))
	must(t, p.Update(ctx, func(tx *Tx) error {
		if _, err := tx.RevokeCert(c.Serial, now.Add(time.Minute), 1); err != nil {
			return err
		}
		if err := tx.PutBlob("ocsp", "010203", []byte("revoked")); err != nil {
			return err
		}
		return tx.PutBlob("other", "x", []byte("not replicated"))
	}))
	must(t, p.Update(ctx, func(tx *Tx) error {
		return tx.PutSubscriber(&Subscriber{ID: "s1", CommonName: "Alice B", Email: "b@example.org"})
	}))
	es, err := p.ReadLog(ctx, 0, 100)
	must(t, err)
	var recs []Record
	must(t, p.View(ctx, func(tx *Tx) error {
		for _, e := range es {
			if e.Kind != LogRecord {
				t.Fatalf("entry %d is %s, want only record entries without a CA", e.Seq, e.Kind)
			}
			rs, err := tx.ReplicaRecords(e)
			if err != nil {
				return err
			}
			recs = append(recs, rs...)
		}
		return nil
	}))
	for _, rec := range recs {
		if _, _, ok := rec.Blob(); ok && string(rec.Value) == "not replicated" {
			t.Fatal("a blob outside the replicated namespaces was logged")
		}
	}
	for range 2 {
		must(t, r.Update(ctx, func(tx *Tx) error {
			for _, rec := range recs {
				if err := tx.ApplyReplicated(rec); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	must(t, r.View(ctx, func(tx *Tx) error {
		got, err := tx.Cert(c.Serial)
		if err != nil || got.Status != StatusRevoked {
			t.Fatalf("replicated certificate: %+v, %v", got, err)
		}
		n := 0
		if err := tx.EachRevoked("demo", func(*Revocation) error { n++; return nil }); err != nil || n != 1 {
			t.Fatalf("revocation index: %d entries, %v", n, err)
		}
		n = 0
		if err := tx.EachRevokedSince("demo", now, func(*Revocation) error { n++; return nil }); err != nil || n != 1 {
			t.Fatalf("revocation time index: %d entries, %v", n, err)
		}
		b, err := tx.Blob("ocsp", "010203")
		if err != nil || string(b) != "revoked" {
			t.Fatalf("OCSP blob %q, %v", b, err)
		}
		n = 0
		tx.SubscribersByEmail("a@example.org", func(*Subscriber) error { n++; return nil })
		if n != 0 {
			t.Fatal("the subscriber's old mail index survived")
		}
		tx.SubscribersByEmail("b@example.org", func(*Subscriber) error { n++; return nil })
		if n != 1 {
			t.Fatal("the subscriber's new mail index is missing")
		}
		n = 0
		tx.CertsByCommonName("alice", func(*Cert) error { n++; return nil })
		if n != 1 {
			t.Fatalf("CN index: %d", n)
		}
		return nil
	}))
	// The replica's own store logs nothing for what it applies.
	es, err = r.ReadLog(ctx, 0, 100)
	must(t, err)
	if len(es) != 0 {
		t.Fatalf("the replica logged %d entries", len(es))
	}
	// Keys outside the replicated records are refused.
	if err := r.Update(ctx, func(tx *Tx) error { return tx.ApplyReplicated(Record{Key: []byte("staff\x00x"), Value: []byte{1}}) }); err == nil {
		t.Fatal("a staff record was applied")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestReloadKeepsNewestVersions loads a backup whose keys have several
// versions (and a deletion) into a store that is being read meanwhile.
func TestReloadKeepsNewestVersions(t *testing.T) {
	ctx := context.Background()
	p, _ := openTest(t)
	r, _ := openTest(t)
	for i := range 3 {
		must(t, p.Update(ctx, func(tx *Tx) error { return tx.PutBlob("ocsp", "a", []byte{byte(i)}) }))
	}
	must(t, p.Update(ctx, func(tx *Tx) error { return tx.PutBlob("ocsp", "gone", []byte{9}) }))
	must(t, p.Update(ctx, func(tx *Tx) error { return tx.DeleteBlob("ocsp", "gone") }))
	must(t, r.Update(ctx, func(tx *Tx) error { return tx.PutBlob("ocsp", "stale", []byte{7}) }))
	var buf bytes.Buffer
	must(t, p.Backup(ctx, &buf))
	done := make(chan struct{})
	go func() { // a replica serves while it reloads
		defer close(done)
		for range 200 {
			r.View(ctx, func(tx *Tx) error { _, _ = tx.Blob("ocsp", "a"); return nil })
		}
	}()
	must(t, r.Reload(ctx, &buf))
	<-done
	must(t, r.View(ctx, func(tx *Tx) error {
		if b, err := tx.Blob("ocsp", "a"); err != nil || !bytes.Equal(b, []byte{2}) {
			t.Fatalf("a = %v, %v; want the newest version [2]", b, err)
		}
		for _, k := range []string{"gone", "stale"} {
			if _, err := tx.Blob("ocsp", k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s survived the reload: %v", k, err)
			}
		}
		return nil
	}))
}

// TestReloadFlattensTheTree loads a backup several times a memtable's size:
// the tables it leaves hold the records in one level below level 0, not in
// overlapping level-0 tables that each read would search.
func TestReloadFlattensTheTree(t *testing.T) {
	ctx := context.Background()
	p, _ := openTest(t)
	r, err := Open(Options{Dir: t.TempDir(), MinFreeBytes: 4 << 20}) // 1 MiB memtables
	must(t, err)
	t.Cleanup(func() { r.Close() })
	val := bytes.Repeat([]byte("x"), 300) // below the value threshold: in the tables
	for i := range 60 {
		must(t, p.Update(ctx, func(tx *Tx) error {
			for j := range 1000 {
				if err := tx.PutBlob("ocsp", fmt.Sprintf("%03d-%04d", i, j), val); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	var buf bytes.Buffer
	must(t, p.Backup(ctx, &buf))
	must(t, r.Reload(ctx, &buf))
	var below []int
	l0 := 0
	for _, l := range r.db.Levels() {
		if l.Level == 0 {
			l0 = l.NumTables
		} else if l.NumTables > 0 {
			below = append(below, l.Level)
		}
	}
	// Level 0 may hold a memtable flushed after the merge (without it,
	// it held ten overlapping tables here).
	if len(below) != 1 || l0 > 2 {
		t.Fatalf("after the reload level 0 holds %d tables and levels %v below it hold tables; want the records in one level:\n%s", l0, below, r.db.LevelsToString())
	}
	must(t, r.View(ctx, func(tx *Tx) error {
		for _, k := range []string{"000-0000", "031-0500", "059-0999"} {
			if b, err := tx.Blob("ocsp", k); err != nil || !bytes.Equal(b, val) {
				t.Fatalf("%s after the reload: %d bytes, %v", k, len(b), err)
			}
		}
		return nil
	}))
}
