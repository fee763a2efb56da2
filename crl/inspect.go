package crl

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certcenter/certcenter/internal/crlscope"
)

// Listing is one current CRL of a CA, as diagnostics show it, and which of
// the serials asked about it covers and lists.
type Listing struct {
	File  string
	Delta bool
	// Number, and for a delta BaseNumber, ThisUpdate, NextUpdate and
	// Entries are from the CRL's metadata, which load checked against the
	// DER.
	Number     uint64
	BaseNumber uint64
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int
	// Covers[i] says whether the CRL's scope includes serials[i] (a shard
	// covers its own serials only); Lists[i] whether it has an entry for it.
	Covers []bool
	Lists  []bool
	// Err says why the stored CRL could not be read or checked; the other
	// fields are then zero.
	Err string
}

// Listings reports the user-certificate CRLs of a CA (the complete CRL, its
// delta, and the shards' when sharded; not the ARL) and which of serials
// each lists. It reads the CRLs that are served (the builder's checked copy,
// else the stored one, verified), never rebuilds one, and scans each CRL's
// entries once for all serials, so asking about a page of an organisation's
// certificates costs one pass per CRL.
//
// Why the DER and not the revocation index: whether a serial is on a CRL is
// what a relying party sees, and only the DER says it. The metadata cannot
// decide it for a revocation near a build: the full CRL's snapshot is known
// only by its window digest, and a delta's entry count does not say which
// serials it has. The pass is cheap: entries are walked in place with
// cryptobyte (no x509.ParseRevocationList, which would make a Go value of
// each of a million entries), comparing each entry's serial against a map.
func (b *Builder) Listings(ctx context.Context, caName string, serials [][]byte) ([]Listing, error) {
	iss, err := b.ca.Issuer(caName)
	if err != nil {
		return nil, err
	}
	want := make(map[string]int, len(serials))
	for i, s := range serials {
		want[string(trimSerial(s))] = i
	}
	var out []Listing
	for _, list := range [][]crlscope.CRL{b.layout.Full(caName), b.layout.Deltas(caName)} {
		for _, c := range list {
			if c.Kind == crlscope.KindARL {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			l := Listing{File: c.File(), Delta: c.Delta, Covers: make([]bool, len(serials)), Lists: make([]bool, len(serials))}
			for i, s := range serials {
				l.Covers[i] = b.layout.Covers(c.Base(), s)
			}
			p, err := b.load(ctx, iss, l.File)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				l.Err = err.Error()
				out = append(out, l)
				continue
			}
			l.Number, l.BaseNumber, l.ThisUpdate, l.NextUpdate, l.Entries = p.meta.Number, p.meta.BaseNumber, p.meta.ThisUpdate, p.meta.NextUpdate, p.meta.Entries
			if len(want) > 0 {
				err := eachEntrySerial(p.der, func(serial []byte) {
					if i, ok := want[string(serial)]; ok {
						l.Lists[i] = true
					}
				})
				if err != nil {
					l.Err = fmt.Sprintf("reading the entries of %s: %v", l.File, err)
				}
			}
			out = append(out, l)
		}
	}
	return out, nil
}

// trimSerial drops leading zero octets: the form the store keys serials by
// (big.Int.Bytes), which an entry's INTEGER contents have once its sign
// octet is dropped.
func trimSerial(s []byte) []byte {
	for len(s) > 1 && s[0] == 0 {
		s = s[1:]
	}
	return s
}

// eachEntrySerial calls fn with the serial of every revokedCertificates
// entry of a DER CertificateList, in place (fn must not keep it).
func eachEntrySerial(der []byte, fn func(serial []byte)) error {
	in := cryptobyte.String(der)
	var cl, tbs, skip cryptobyte.String
	if !in.ReadASN1(&cl, cbasn1.SEQUENCE) || !cl.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return errors.New("malformed CertificateList")
	}
	if tbs.PeekASN1Tag(cbasn1.INTEGER) && !tbs.SkipASN1(cbasn1.INTEGER) { // version
		return errors.New("malformed version")
	}
	if !tbs.SkipASN1(cbasn1.SEQUENCE) || !tbs.SkipASN1(cbasn1.SEQUENCE) { // signature, issuer
		return errors.New("malformed signature or issuer")
	}
	var tag cbasn1.Tag
	if !tbs.ReadAnyASN1(&skip, &tag) { // thisUpdate
		return errors.New("malformed thisUpdate")
	}
	if (tbs.PeekASN1Tag(cbasn1.UTCTime) || tbs.PeekASN1Tag(cbasn1.GeneralizedTime)) && !tbs.ReadAnyASN1(&skip, &tag) {
		return errors.New("malformed nextUpdate")
	}
	if !tbs.PeekASN1Tag(cbasn1.SEQUENCE) {
		return nil // no entries
	}
	var entries cryptobyte.String
	if !tbs.ReadASN1(&entries, cbasn1.SEQUENCE) {
		return errors.New("malformed revokedCertificates")
	}
	for !entries.Empty() {
		var entry, serial cryptobyte.String
		if !entries.ReadASN1(&entry, cbasn1.SEQUENCE) || !entry.ReadASN1(&serial, cbasn1.INTEGER) {
			return errors.New("malformed revokedCertificates entry")
		}
		fn(trimSerial(serial))
	}
	return nil
}
