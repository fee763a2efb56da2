package crl

import (
	"context"
	"crypto/x509"
	"math/big"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
)

// Listings says which CRLs list which serials: a revoked certificate is on
// the complete CRL and, once the delta is rebuilt, on the delta; a valid one
// is on neither; a sharded CA's shard CRLs cover only their own serials.
func TestListings(t *testing.T) {
	for _, shards := range []int{1, 2} {
		e := newEnv(t, envOpts{shards: shards})
		ctx := context.Background()
		certs := e.issue(3)
		e.revoke(certs[0], ca.ReasonKeyCompromise)
		if err := e.b.Full(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
		serials := [][]byte{certs[0].SerialNumber.Bytes(), certs[1].SerialNumber.Bytes()}
		ls, err := e.b.Listings(ctx, "demo", serials)
		if err != nil {
			t.Fatal(err)
		}
		if want := 2 * shards; shards > 1 && len(ls) != 2+want || shards == 1 && len(ls) != 2 {
			t.Fatalf("shards %d: %d listings", shards, len(ls))
		}
		for _, l := range ls {
			if l.Err != "" {
				t.Fatalf("%s: %s", l.File, l.Err)
			}
			if l.Number == 0 || l.NextUpdate.IsZero() {
				t.Errorf("%s: no metadata: %+v", l.File, l)
			}
			if l.Lists[1] {
				t.Errorf("%s lists the valid certificate", l.File)
			}
			if l.Covers[0] != l.Lists[0] {
				t.Errorf("shards %d: %s covers the revoked certificate %v, lists it %v", shards, l.File, l.Covers[0], l.Lists[0])
			}
			if l.Delta && l.BaseNumber == 0 {
				t.Errorf("%s: delta without base number", l.File)
			}
		}
	}
}

// eachEntrySerial finds every serial of a CRL that crypto/x509 made, with
// and without the sign octet, and a CRL without entries.
func TestEachEntrySerial(t *testing.T) {
	e := newEnv(t, envOpts{})
	want := []*big.Int{big.NewInt(1), big.NewInt(0x80), new(big.Int).SetBytes([]byte{0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19})}
	for _, n := range []int{0, len(want)} {
		var entries []x509.RevocationListEntry
		for _, s := range want[:n] {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: s, RevocationTime: time.Now()})
		}
		der, err := x509.CreateRevocationList(nil, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now(),
			NextUpdate: time.Now().Add(time.Hour), RevokedCertificateEntries: entries}, e.iss.Cert, e.iss.Signer)
		if err != nil {
			t.Fatal(err)
		}
		var got []*big.Int
		if err := eachEntrySerial(der, func(s []byte) { got = append(got, new(big.Int).SetBytes(s)) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Fatalf("%d entries, want %d", len(got), n)
		}
		for i := range got {
			if got[i].Cmp(want[i]) != 0 {
				t.Errorf("entry %d: %x, want %x", i, got[i], want[i])
			}
		}
	}
	if err := eachEntrySerial([]byte{0x30, 0x05, 1}, func([]byte) {}); err == nil {
		t.Error("a truncated CRL was read")
	}
}

// BenchmarkListings measures the pass over a large CRL that diagnostics
// make per CRL and page (-crl.revoked entries, a million by default).
func BenchmarkListings(b *testing.B) {
	if testing.Short() {
		b.Skip("seeds a million revoked certificates; not in -short")
	}
	e := seededEnv(b, nil)
	ctx := context.Background()
	if err := e.b.Full(ctx, "demo"); err != nil {
		b.Fatal(err)
	}
	serials := [][]byte{{1, 2, 3}}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := e.b.Listings(ctx, "demo", serials); err != nil {
			b.Fatal(err)
		}
	}
}
