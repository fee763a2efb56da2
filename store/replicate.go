package store

// Replication support: what a read replica needs from the change log.
//
// Change-log entries name records instead of copying them. A consumer in
// this process reads the record when it applies the entry; a replica on
// another machine cannot, so the primary's publisher resolves each entry to
// the raw records it names (ReplicaRecords) and ships those, and the replica
// writes them into its own store (ApplyReplicated), re-deriving the indexes
// the store owns.
//
// Which writes a replica needs. The CA's entries (cert-issued, cert-revoked,
// ca-cert) and the CRL builder's (crl-published) do not cover everything a
// replica serves: OCSP responses re-signed by the refresher, subscribers
// updated by the RA, directory accounts and organisations. So, once
// ReplicateWrites is called (the primary role), every write to a replicated
// key — certificates, CAs, subscribers, directory accounts, organisations
// and their certificate links, and blobs of the named namespaces — appends
// a LogRecord entry naming the raw key in the same transaction, so nothing
// a replica serves can change without an entry. Without ReplicateWrites
// (the all-in-one server, a replica's own store) nothing extra is logged.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"google.golang.org/protobuf/proto"
)

// LogRecord: a replicated record was written or deleted (Key: the raw store
// key, base64url without padding; see ReplicateWrites).
const LogRecord LogKind = "record"

// replicatedPrefixes are the store-owned records a replica serves from.
var replicatedPrefixes = [][]byte{pCert, pCA, pSub, pDirAccount, pOrg, pIdxCertOrg, pIdxOrgCert}

// replication is the store's set of replicated key prefixes (nil: off).
type replication struct {
	prefixes [][]byte
}

// ReplicateWrites turns on LogRecord entries for every write to a record a
// replica serves, and to blobs in blobNamespaces (the OCSP responses, the
// CRLs and their metadata). Call it before the store is written to.
func (s *Store) ReplicateWrites(blobNamespaces ...string) {
	r := &replication{prefixes: append([][]byte{}, replicatedPrefixes...)}
	for _, ns := range blobNamespaces {
		r.prefixes = append(r.prefixes, cat(pBlob, []byte(ns), nil))
	}
	s.repl.Store(r)
}

// replicated reports whether key is a replicated record.
func (s *Store) replicated(key []byte) bool {
	r := s.repl.Load()
	if r == nil {
		return false
	}
	for _, p := range r.prefixes {
		if bytes.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// logReplicated appends the LogRecord entry of a write to key, if key is
// replicated. Several writes of one key in a transaction log once.
func (tx *Tx) logReplicated(key []byte) error {
	if tx.readOnly || !tx.s.replicated(key) {
		return nil
	}
	k := base64.RawURLEncoding.EncodeToString(key)
	if tx.replLogged == nil {
		tx.replLogged = map[string]bool{}
	}
	if tx.replLogged[k] {
		return nil
	}
	tx.replLogged[k] = true
	return tx.AppendLog(LogEntry{Kind: LogRecord, Key: k})
}

// Record is one raw record shipped to a replica: its key and value, or
// Deleted.
type Record struct {
	Key     []byte `json:"k"`
	Value   []byte `json:"v,omitempty"`
	Deleted bool   `json:"d,omitempty"`
}

// ReplicaRecords resolves a change-log entry to the records a replica needs,
// read in tx (their current state). Entries of other kinds resolve to
// nothing: with ReplicateWrites on, every record they name has its own
// LogRecord entry.
func (tx *Tx) ReplicaRecords(e LogEntry) ([]Record, error) {
	if e.Kind != LogRecord {
		return nil, nil
	}
	key, err := base64.RawURLEncoding.DecodeString(e.Key)
	if err != nil {
		return nil, fmt.Errorf("change-log entry %d: key %q: %w", e.Seq, e.Key, err)
	}
	v, err := tx.get(key)
	if errors.Is(err, ErrNotFound) {
		return []Record{{Key: key, Deleted: true}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading record of change-log entry %d: %w", e.Seq, err)
	}
	return []Record{{Key: key, Value: v}}, nil
}

// ErrNotReplicated is returned by ApplyReplicated for a key outside the
// replicated records: a replica refuses to write what a primary never ships.
var ErrNotReplicated = errors.New("not a replicated record")

// ApplyReplicated writes a record shipped by a primary into this (a
// replica's) store, keeping the store's indexes: a certificate's subject,
// CN, subscriber, expiry and revocation indexes; a subscriber's attribute
// indexes. Applying the same record twice leaves the store as applying it
// once. Watchers see the change as if the record had been written here.
func (tx *Tx) ApplyReplicated(r Record) error {
	switch {
	case bytes.HasPrefix(r.Key, pCert):
		return tx.applyCert(r)
	case bytes.HasPrefix(r.Key, pSub):
		return tx.applySubscriber(r)
	case bytes.HasPrefix(r.Key, pCA), bytes.HasPrefix(r.Key, pDirAccount), bytes.HasPrefix(r.Key, pOrg),
		bytes.HasPrefix(r.Key, pIdxCertOrg), bytes.HasPrefix(r.Key, pIdxOrgCert), bytes.HasPrefix(r.Key, pBlob):
		if r.Deleted {
			if err := tx.txn.Delete(r.Key); err != nil {
				return fmt.Errorf("deleting replicated record: %w", err)
			}
		} else if err := tx.set(r.Key, r.Value); err != nil {
			return fmt.Errorf("writing replicated record: %w", err)
		}
		tx.changedRaw(r.Key)
		return nil
	}
	return fmt.Errorf("record %q: %w", r.Key, ErrNotReplicated)
}

// changedRaw records the Change a raw write stands for.
func (tx *Tx) changedRaw(key []byte) {
	switch {
	case bytes.HasPrefix(key, pCA):
		tx.changed(KindCA, string(key[len(pCA):]))
	case bytes.HasPrefix(key, pDirAccount):
		tx.changed(KindDirAccount, string(key[len(pDirAccount):]))
	case bytes.HasPrefix(key, pBlob):
		rest := key[len(pBlob):]
		if i := bytes.IndexByte(rest, 0); i >= 0 {
			tx.changed(KindBlob, string(rest[:i])+"/"+string(rest[i+1:]))
		}
	}
}

// certIndexes are the index keys of c (revocation indexes apart).
func certIndexes(c *Cert) [][]byte {
	idx := [][]byte{cat(pIdxSubj, fold(c.Subject), c.Serial), cat(pIdxExp, be64(c.NotAfter), c.Serial)}
	if c.CommonName != "" {
		idx = append(idx, cat(pIdxCN, fold(c.CommonName), c.Serial))
	}
	if c.SubscriberID != "" {
		idx = append(idx, cat(pIdxSub, []byte(c.SubscriberID), c.Serial))
	}
	return idx
}

func revTimeKey(c *Cert) []byte {
	var t [8]byte
	for i := range 8 {
		t[i] = byte(uint64(c.RevokedAt.UnixNano()) >> (56 - 8*i))
	}
	return append(cat(pIdxRevT, []byte(c.Issuer), nil), append(t[:], c.Serial...)...)
}

func (tx *Tx) applyCert(r Record) error {
	serial := r.Key[len(pCert):]
	old, err := tx.Cert(serial)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if old != nil {
		// Drop the old state's indexes; the new state writes its own.
		del := certIndexes(old)
		if old.Status == StatusRevoked {
			del = append(del, cat(pIdxRev, []byte(old.Issuer), old.Serial), revTimeKey(old))
		}
		for _, k := range del {
			if err := tx.txn.Delete(k); err != nil {
				return fmt.Errorf("replacing indexes of %x: %w", serial, err)
			}
		}
	}
	if r.Deleted {
		if err := tx.txn.Delete(r.Key); err != nil {
			return fmt.Errorf("deleting certificate %x: %w", serial, err)
		}
		tx.changed(KindCert, hex.EncodeToString(serial))
		return nil
	}
	var c Cert
	if err := decode(r.Value, &c); err != nil {
		return fmt.Errorf("decoding replicated certificate %x: %w", serial, err)
	}
	if err := tx.putCert(&c); err != nil {
		return err
	}
	for _, k := range certIndexes(&c) {
		if err := tx.set(k, nil); err != nil {
			return fmt.Errorf("writing index for %x: %w", c.Serial, err)
		}
	}
	if c.Status == StatusRevoked {
		return tx.indexRevocation(&c)
	}
	return nil
}

func (tx *Tx) applySubscriber(r Record) error {
	id := string(r.Key[len(pSub):])
	if r.Deleted {
		old, err := tx.Subscriber(id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, k := range append(subscriberAttrIndexes(old), cat(pIdxSubCN, fold(old.CommonName), []byte(id)), r.Key) {
			if err := tx.txn.Delete(k); err != nil {
				return fmt.Errorf("deleting subscriber %s: %w", id, err)
			}
		}
		tx.changed(KindSubscriber, id)
		return nil
	}
	var s Subscriber
	if err := decode(r.Value, &s); err != nil {
		return fmt.Errorf("decoding replicated subscriber %s: %w", id, err)
	}
	return tx.PutSubscriber(&s)
}

// Reload replaces every record with those of a backup stream (a replica
// loading a new snapshot), then tells watchers that every CA, certificate,
// subscriber, directory account and blob may have changed, so caches built
// from the old records are dropped. Reads during the reload see an empty
// or partial store. The loaded tables are merged into one level before it
// returns.
func (s *Store) Reload(ctx context.Context, r io.Reader) error {
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("dropping the store's records: %w", err)
	}
	// Not Badger's Load: it moves the transaction timestamps without a
	// lock and must not run beside other transactions, and a replica goes
	// on serving while it reloads. A write batch is safe beside them.
	if err := s.loadBatched(ctx, r); err != nil {
		return fmt.Errorf("loading backup stream: %w", err)
	}
	// The load leaves the records spread over level 0 and levels being
	// compacted meanwhile: each read then searches several overlapping
	// tables, and the compactions that follow for minutes take the CPU the
	// reads need (a replica answered OCSP 10-40 % slower than the
	// all-in-one server after bootstrapping). Merging the tree into one
	// level here moves that work before the store serves again.
	// One worker: compactions are stopped meanwhile, so nothing competes
	// for the tables (a second worker finds none to take and logs it).
	// Failing to merge loses speed, not records: the reload stands.
	begin := time.Now()
	if err := s.db.Flatten(1); err != nil {
		s.log.Warn("merging the reloaded store's tables into one level failed; reads stay slower until compactions catch up", "err", err)
	} else {
		s.log.Info("reloaded store merged into one level", "elapsed", time.Since(begin).Round(time.Millisecond))
	}
	var changes []Change
	flush := func() {
		s.notify(changes)
		changes = nil
	}
	err := s.View(ctx, func(tx *Tx) error {
		for _, p := range [][]byte{pCA, pCert, pSub, pDirAccount, pBlob} {
			if err := tx.scan(p, nil, false, func(k, _ []byte) error {
				tx.changes = tx.changes[:0]
				tx.changedRaw(k)
				switch {
				case bytes.HasPrefix(k, pCert):
					tx.changed(KindCert, hex.EncodeToString(k[len(pCert):]))
				case bytes.HasPrefix(k, pSub):
					tx.changed(KindSubscriber, string(k[len(pSub):]))
				}
				changes = append(changes, tx.changes...)
				if len(changes) >= 10000 {
					flush()
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	flush()
	if err != nil {
		return fmt.Errorf("announcing reloaded records: %w", err)
	}
	return nil
}

// replState is the store's replication switch (see ReplicateWrites).
type replState = atomic.Pointer[replication]

// loadBatched writes the records of a backup stream (Badger's format: a
// little-endian length, then a protobuf KVList) through a write batch.
func (s *Store) loadBatched(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	var buf, last []byte
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var sz uint64
		if err := binary.Read(br, binary.LittleEndian, &sz); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		if sz > 1<<30 {
			return fmt.Errorf("a backup block of %d bytes", sz)
		}
		if uint64(cap(buf)) < sz {
			buf = make([]byte, sz)
		}
		if _, err := io.ReadFull(br, buf[:sz]); err != nil {
			return err
		}
		var list pb.KVList
		if err := proto.Unmarshal(buf[:sz], &list); err != nil {
			return err
		}
		for _, kv := range list.Kv {
			// A key's versions come newest first: keep only the newest
			// (Load let versions decide; a batch writes in order).
			if last != nil && bytes.Equal(kv.Key, last) {
				continue
			}
			last = append(last[:0], kv.Key...)
			if bytes.HasPrefix(kv.Key, []byte("!badger!")) || (len(kv.Meta) > 0 && kv.Meta[0]&1 != 0) { // internal keys, deletions
				continue
			}
			e := badger.NewEntry(kv.Key, kv.Value)
			if len(kv.UserMeta) > 0 {
				e = e.WithMeta(kv.UserMeta[0])
			}
			if err := wb.SetEntry(e); err != nil {
				return err
			}
		}
	}
	return wb.Flush()
}

// Blob says which blob a record is (namespace and key), if it is one.
func (r Record) Blob() (ns, k string, ok bool) {
	if !bytes.HasPrefix(r.Key, pBlob) {
		return "", "", false
	}
	rest := r.Key[len(pBlob):]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return "", "", false
	}
	return string(rest[:i]), string(rest[i+1:]), true
}

// IsCA says whether a record is a CA record.
func (r Record) IsCA() bool { return bytes.HasPrefix(r.Key, pCA) }
