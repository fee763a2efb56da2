package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"strconv"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// oidFreshestCRL is the freshest CRL extension, RFC 5280 §4.2.1.15: where the
// delta CRLs of the certificate's scope are.
var oidFreshestCRL = asn1.ObjectIdentifier{2, 5, 29, 46}

// ShardOf is the CRL partition of a serial when a CA's CRL is split into n
// shards: the serial's last (up to) eight octets, read as a big-endian
// number, modulo n. Serials are random (NewSerial), so shards fill evenly;
// the shard depends only on the serial and n, so it is fixed at issuance and
// the crl package finds it again from the revocation index alone.
func ShardOf(serial []byte, n int) int {
	if n <= 1 {
		return 0
	}
	tail := serial
	if len(tail) > 8 {
		tail = tail[len(tail)-8:]
	}
	var v uint64
	for _, b := range tail {
		v = v<<8 | uint64(b)
	}
	return int(v % uint64(n))
}

// CRLFile is the file name under /crl/ (and the crl store blob key) of a
// CA's CRL: "<ca>.crl" for the complete CRL, "<ca>-<shard>.crl" for one
// partition (shard >= 0), with "-delta" before ".crl" for the delta CRL.
func CRLFile(ca string, shard int, delta bool) string {
	name := ca
	if shard >= 0 {
		name += "-" + strconv.Itoa(shard)
	}
	if delta {
		name += "-delta"
	}
	return name + ".crl"
}

// CRLShards is the number of CRL partitions; 1 when the CRL is not split.
func (a *Authority) CRLShards() int {
	return max(a.opts.CRLShards, 1)
}

// URLsFor is URLs for one certificate: with CRL shards, its http CRL and
// delta CRL URLs name the shard of its serial. The ldap URLs always name the
// CA entry, whose attributes hold the complete CRLs.
func (a *Authority) URLsFor(iss *Issuer, serial []byte) URLs {
	u := a.URLs(iss)
	if n := a.CRLShards(); n > 1 {
		base := strings.TrimRight(a.opts.PublicURL, "/") + "/crl/"
		shard := ShardOf(serial, n)
		u.CRL = base + CRLFile(iss.Name, shard, false)
		u.DeltaCRL = base + CRLFile(iss.Name, shard, true)
	}
	return u
}

// freshestCRL encodes the freshest CRL extension with one distribution point
// per URL, the way crypto/x509 encodes CRLDistributionPoints (the http and
// the ldap URL are two places, each naming a whole CRL).
func freshestCRL(urls ...string) (pkix.Extension, error) {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, u := range urls {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // DistributionPoint
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // distributionPoint (explicit: a CHOICE)
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { // fullName
						b.AddASN1(cbasn1.Tag(6).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(u)) })
					})
				})
			})
		}
	})
	der, err := b.Bytes()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: oidFreshestCRL, Value: der}, nil
}
