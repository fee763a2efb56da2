package crl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Extension OIDs (RFC 5280 §5.2, §5.3).
var (
	oidAuthorityKeyID    = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidCRLNumber         = asn1.ObjectIdentifier{2, 5, 29, 20}
	oidDeltaCRLIndicator = asn1.ObjectIdentifier{2, 5, 29, 27}
	oidIssuingDistPoint  = asn1.ObjectIdentifier{2, 5, 29, 28}

	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
)

// sigAlg is how a CRL is signed with one key: the AlgorithmIdentifier that
// goes into the CRL twice, the hash the signer is given, and the x509 name
// used to verify it again.
type sigAlg struct {
	oid    asn1.ObjectIdentifier
	null   bool // RSA AlgorithmIdentifiers carry NULL parameters (RFC 4055 §5).
	hash   crypto.Hash
	x509Id x509.SignatureAlgorithm
}

// sigAlgFor picks the signature algorithm for a CA key: SHA-256 with RSA,
// and for ECDSA the hash matching the curve (RFC 5480 §4).
func sigAlgFor(pub crypto.PublicKey) (sigAlg, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() >= 4096 {
			return sigAlg{oidSHA384WithRSA, true, crypto.SHA384, x509.SHA384WithRSA}, nil
		}
		return sigAlg{oidSHA256WithRSA, true, crypto.SHA256, x509.SHA256WithRSA}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return sigAlg{oidECDSAWithSHA256, false, crypto.SHA256, x509.ECDSAWithSHA256}, nil
		case elliptic.P384():
			return sigAlg{oidECDSAWithSHA384, false, crypto.SHA384, x509.ECDSAWithSHA384}, nil
		case elliptic.P521():
			return sigAlg{oidECDSAWithSHA512, false, crypto.SHA512, x509.ECDSAWithSHA512}, nil
		}
	}
	return sigAlg{}, fmt.Errorf("CA key type %T is not supported for CRL signing", pub)
}

func sigAlgByOID(oid asn1.ObjectIdentifier) (sigAlg, bool) {
	for _, a := range []sigAlg{
		{oidSHA256WithRSA, true, crypto.SHA256, x509.SHA256WithRSA},
		{oidSHA384WithRSA, true, crypto.SHA384, x509.SHA384WithRSA},
		{oidECDSAWithSHA256, false, crypto.SHA256, x509.ECDSAWithSHA256},
		{oidECDSAWithSHA384, false, crypto.SHA384, x509.ECDSAWithSHA384},
		{oidECDSAWithSHA512, false, crypto.SHA512, x509.ECDSAWithSHA512},
	} {
		if a.oid.Equal(oid) {
			return a, true
		}
	}
	return sigAlg{}, false
}

func (a sigAlg) add(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(a.oid)
		if a.null {
			b.AddASN1NULL()
		}
	})
}

// appendEntry appends one revokedCertificates entry to dst:
//
//	SEQUENCE { userCertificate INTEGER, revocationDate Time,
//	           crlEntryExtensions SEQUENCE { reasonCode } OPTIONAL }
//
// It is written by hand rather than through cryptobyte because it runs once
// per revoked certificate (a million times for a large CA) and every part has
// a short, known length: a serial is at most 20 octets (RFC 5280 §4.1.2.2),
// a time 13 or 15, so every length fits the one-octet form.
func appendEntry(dst, serial []byte, at time.Time, reason int) ([]byte, error) {
	for len(serial) > 1 && serial[0] == 0 && serial[1]&0x80 == 0 {
		serial = serial[1:] // minimal INTEGER encoding
	}
	if len(serial) == 0 || len(serial) > 20 {
		return dst, fmt.Errorf("serial %x: length %d is not 1 to 20 octets", serial, len(serial))
	}
	pad := serial[0]&0x80 != 0 // a positive INTEGER whose top bit is set needs a leading zero
	intLen := len(serial)
	if pad {
		intLen++
	}
	var tbuf [15]byte
	tm := appendTime(tbuf[:0], at)
	body := 2 + intLen + len(tm)
	if reason != 0 {
		// SEQUENCE { SEQUENCE { OID 2.5.29.21, OCTET STRING { ENUMERATED r } } }: 2+2+5+5 octets
		body += 14
	}
	dst = append(dst, 0x30, byte(body), 0x02, byte(intLen))
	if pad {
		dst = append(dst, 0)
	}
	dst = append(dst, serial...)
	dst = append(dst, tm...)
	if reason != 0 {
		dst = append(dst, 0x30, 12, 0x30, 10, 0x06, 3, 85, 29, 21, 0x04, 3, 0x0a, 1, byte(reason))
	}
	return dst, nil
}

// chunkSize is the size of the buffers that encoded entries are collected
// in. A list of fixed chunks instead of one growing slice means a million
// entries (~50 MB) are never copied while they are collected, and leave no
// discarded half-size copies behind for the garbage collector.
const chunkSize = 1 << 20

// chunks holds encoded revokedCertificates entries.
type chunks struct {
	c [][]byte
	n int // total length
}

// maxEntry bounds one encoded entry: header 2, serial 2+21, time 2+15,
// reason 14.
const maxEntry = 56

func (ch *chunks) append(serial []byte, at time.Time, reason int) error {
	if len(ch.c) == 0 || cap(ch.c[len(ch.c)-1])-len(ch.c[len(ch.c)-1]) < maxEntry {
		// Start small and double up to chunkSize: a CA with a thousand
		// shards builds a thousand lists at once.
		ch.c = append(ch.c, make([]byte, 0, min(chunkSize, max(4096, ch.n))))
	}
	last := &ch.c[len(ch.c)-1]
	before := len(*last)
	var err error
	*last, err = appendEntry(*last, serial, at, reason)
	ch.n += len(*last) - before
	return err
}

// appendTime encodes a Time as RFC 5280 §4.1.2.5 requires: UTCTime through
// 2049, GeneralizedTime from 2050, always in UTC with seconds.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	if t.Year() < 2050 && t.Year() >= 1950 {
		s := t.Format("060102150405Z")
		dst = append(dst, 0x17, byte(len(s)))
		return append(dst, s...)
	}
	s := t.Format("20060102150405Z")
	dst = append(dst, 0x18, byte(len(s)))
	return append(dst, s...)
}

func addTime(b *cryptobyte.Builder, t time.Time) {
	var buf [17]byte
	b.AddBytes(appendTime(buf[:0], t))
}

// tbsParams is everything of a TBSCertList except the entries.
type tbsParams struct {
	alg        sigAlg
	issuer     []byte // the issuer's RawSubject
	thisUpdate time.Time
	nextUpdate time.Time
	number     uint64
	akid       []byte
	idp        []byte // DER of IssuingDistributionPoint; nil for none
	// baseNumber, when non-zero, makes this a delta CRL (RFC 5280 §5.2.4).
	baseNumber uint64
}

// reserve is room left in front of the TBSCertList so that sign can write the
// outer CertificateList header there instead of copying a large TBSCertList
// into a new buffer: SEQUENCE with a length of up to four octets.
const reserve = 6

// buildTBS encodes a TBSCertList (RFC 5280 §5.1) around the already encoded
// entries. The result starts reserve bytes into the returned buffer.
func buildTBS(p *tbsParams, entries chunks) ([]byte, error) {
	b := cryptobyte.NewBuilder(make([]byte, reserve, reserve+entries.n+1024))
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1) // v2
		p.alg.add(b)
		b.AddBytes(p.issuer)
		addTime(b, p.thisUpdate)
		addTime(b, p.nextUpdate)
		// An empty list is absent, not an empty SEQUENCE (RFC 5280 §5.1.2.6).
		if entries.n > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, c := range entries.c {
					b.AddBytes(c)
				}
			})
		}
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				addExtension(b, oidAuthorityKeyID, false, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(p.akid) })
					})
				})
				addExtension(b, oidCRLNumber, false, func(b *cryptobyte.Builder) {
					b.AddASN1BigInt(new(big.Int).SetUint64(p.number))
				})
				if p.baseNumber != 0 {
					addExtension(b, oidDeltaCRLIndicator, true, func(b *cryptobyte.Builder) {
						b.AddASN1BigInt(new(big.Int).SetUint64(p.baseNumber))
					})
				}
				if p.idp != nil {
					addExtension(b, oidIssuingDistPoint, true, func(b *cryptobyte.Builder) { b.AddBytes(p.idp) })
				}
			})
		})
	})
	return b.Bytes()
}

func addExtension(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, critical bool, value func(*cryptobyte.Builder)) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1(cbasn1.OCTET_STRING, value)
	})
}

// idpScope says which certificates a CRL covers (RFC 5280 §5.2.5).
type idpScope int

const (
	scopeUsers idpScope = iota // onlyContainsUserCerts
	scopeCAs                   // onlyContainsCACerts (the authority revocation list)
)

// encodeIDP encodes an IssuingDistributionPoint naming urls as the
// distribution point's fullName. A relying party matches these names against
// the certificate's CRL distribution point, so a CRL can only be used for the
// certificates that point at it (RFC 5280 §6.3.3 b.2).
func encodeIDP(urls []string, scope idpScope) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		if len(urls) > 0 {
			// distributionPoint [0] is a CHOICE, so its tag is explicit; fullName
			// [0] IMPLICIT GeneralNames; each name a uniformResourceIdentifier [6].
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, u := range urls {
						b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
					}
				})
			})
		}
		tag := cbasn1.Tag(1).ContextSpecific()
		if scope == scopeCAs {
			tag = cbasn1.Tag(2).ContextSpecific()
		}
		b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddUint8(0xff) })
	})
	return b.Bytes()
}

// sign signs the TBSCertList built by buildTBS (which starts reserve bytes
// into buf) through signer, and returns the DER CertificateList. The
// TBSCertList is not copied: the outer header is written into the reserved
// room before it, and the algorithm and signature appended after it.
func sign(signer crypto.Signer, alg sigAlg, buf []byte) ([]byte, error) {
	tbs := buf[reserve:]
	h := alg.hash.New()
	h.Write(tbs)
	sig, err := signer.Sign(rand.Reader, h.Sum(nil), alg.hash)
	if err != nil {
		return nil, fmt.Errorf("signing CRL: %w", err)
	}
	tail := cryptobyte.NewBuilder(nil)
	alg.add(tail)
	tail.AddASN1BitString(sig)
	t, err := tail.Bytes()
	if err != nil {
		return nil, err
	}
	n := len(tbs) + len(t)
	var hdr []byte
	switch {
	case n < 0x80:
		hdr = []byte{0x30, byte(n)}
	case n < 0x100:
		hdr = []byte{0x30, 0x81, byte(n)}
	case n < 0x10000:
		hdr = []byte{0x30, 0x82, byte(n >> 8), byte(n)}
	case n < 0x1000000:
		hdr = []byte{0x30, 0x83, byte(n >> 16), byte(n >> 8), byte(n)}
	case uint64(n) < 1<<32:
		hdr = []byte{0x30, 0x84, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	default:
		return nil, errors.New("CRL larger than 4 GiB")
	}
	start := reserve - len(hdr)
	copy(buf[start:], hdr)
	return append(buf[start:], t...), nil
}

// parsed is what checkDER reads from a stored or downloaded CRL.
type parsed struct {
	tbs       []byte
	alg       sigAlg
	signature []byte
	number    *big.Int
	delta     bool
	idp       []byte
}

// parseDER splits a DER CertificateList into its signed part, algorithm and
// signature, and reads the CRL number and whether it is a delta, without
// decoding the entries: a stored CRL of a million entries is checked in the
// time it takes to hash it. It accepts only what this package writes (v2,
// a known signature algorithm, a CRL number).
func parseDER(der []byte) (*parsed, error) {
	in := cryptobyte.String(der)
	var cl, tbsRaw, tbs, algSeq, algTBS cryptobyte.String
	var sigBits asn1.BitString
	if !in.ReadASN1(&cl, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, errors.New("malformed CertificateList")
	}
	if !cl.ReadASN1Element(&tbsRaw, cbasn1.SEQUENCE) || !cl.ReadASN1(&algSeq, cbasn1.SEQUENCE) ||
		!cl.ReadASN1BitString(&sigBits) || !cl.Empty() {
		return nil, errors.New("malformed CertificateList")
	}
	var oid asn1.ObjectIdentifier
	if !algSeq.ReadASN1ObjectIdentifier(&oid) {
		return nil, errors.New("malformed signatureAlgorithm")
	}
	alg, ok := sigAlgByOID(oid)
	if !ok {
		return nil, fmt.Errorf("unsupported signature algorithm %s", oid)
	}
	if sigBits.BitLength%8 != 0 {
		return nil, errors.New("signature is not a whole number of octets")
	}
	p := &parsed{tbs: tbsRaw, alg: alg, signature: sigBits.Bytes}
	tbsIn := cryptobyte.String(tbsRaw)
	if !tbsIn.ReadASN1(&tbs, cbasn1.SEQUENCE) {
		return nil, errors.New("malformed TBSCertList")
	}
	var version int64
	if !tbs.ReadASN1Integer(&version) || version != 1 {
		return nil, errors.New("TBSCertList is not version 2")
	}
	var inner asn1.ObjectIdentifier
	if !tbs.ReadASN1(&algTBS, cbasn1.SEQUENCE) || !algTBS.ReadASN1ObjectIdentifier(&inner) || !inner.Equal(oid) {
		return nil, errors.New("TBSCertList signature algorithm differs from the outer one")
	}
	var skip cryptobyte.String
	if !tbs.ReadASN1(&skip, cbasn1.SEQUENCE) { // issuer
		return nil, errors.New("malformed issuer")
	}
	for range 2 { // thisUpdate, nextUpdate
		var tag cbasn1.Tag
		if !tbs.ReadAnyASN1(&skip, &tag) || (tag != cbasn1.UTCTime && tag != cbasn1.GeneralizedTime) {
			return nil, errors.New("malformed thisUpdate or nextUpdate")
		}
	}
	if tbs.PeekASN1Tag(cbasn1.SEQUENCE) && !tbs.SkipASN1(cbasn1.SEQUENCE) {
		return nil, errors.New("malformed revokedCertificates")
	}
	var exts cryptobyte.String
	var present bool
	var extsWrapper cryptobyte.String
	if !tbs.ReadOptionalASN1(&extsWrapper, &present, cbasn1.Tag(0).Constructed().ContextSpecific()) || !present ||
		!extsWrapper.ReadASN1(&exts, cbasn1.SEQUENCE) || !extsWrapper.Empty() || !tbs.Empty() {
		return nil, errors.New("malformed crlExtensions")
	}
	for !exts.Empty() {
		var ext, val cryptobyte.String
		var id asn1.ObjectIdentifier
		if !exts.ReadASN1(&ext, cbasn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&id) ||
			!ext.SkipOptionalASN1(cbasn1.BOOLEAN) || !ext.ReadASN1(&val, cbasn1.OCTET_STRING) {
			return nil, errors.New("malformed extension")
		}
		switch {
		case id.Equal(oidCRLNumber):
			p.number = new(big.Int)
			if !val.ReadASN1Integer(p.number) {
				return nil, errors.New("malformed CRL number")
			}
		case id.Equal(oidDeltaCRLIndicator):
			p.delta = true
		case id.Equal(oidIssuingDistPoint):
			p.idp = val
		}
	}
	if p.number == nil {
		return nil, errors.New("CRL has no CRL number")
	}
	return p, nil
}

// verifyDER parses der and checks its signature against the issuer.
func verifyDER(der []byte, issuer *x509.Certificate) (*parsed, error) {
	p, err := parseDER(der)
	if err != nil {
		return nil, err
	}
	if err := issuer.CheckSignature(p.alg.x509Id, p.tbs, p.signature); err != nil {
		return nil, fmt.Errorf("CRL signature: %w", err)
	}
	return p, nil
}
