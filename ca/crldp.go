package ca

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"net/url"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certcenter/certcenter/internal/crlscope"
)

// oidFreshestCRL is the freshest CRL extension, RFC 5280 §4.2.1.15: where the
// delta CRLs of the certificate's scope are.
var oidFreshestCRL = asn1.ObjectIdentifier{2, 5, 29, 46}

// CRLLayout is how this CA's CRLs are split (ca.Options.CRLShards, set
// from crl.shards): the one shard count that the CDPs written here and the
// CRLs the crl package builds share.
func (a *Authority) CRLLayout() crlscope.Layout {
	return crlscope.Layout{Shards: a.opts.CRLShards}
}

// entryURL is the ldap URL of the CA's directory entry.
func (a *Authority) entryURL(iss *Issuer) string {
	// RFC 4516: the DN is percent-encoded; ',' and '=' may stay as they are.
	dn := strings.ReplaceAll(url.PathEscape(a.EntryDN(iss)), "%2C", ",")
	return strings.TrimRight(a.opts.LDAPURL, "/") + "/" + dn
}

// CRLScope is what the issuing distribution point of one of the CA's CRLs
// must say, naming the URLs this CA writes into certificates.
func (a *Authority) CRLScope(iss *Issuer, c crlscope.CRL) crlscope.Scope {
	return a.CRLLayout().Scope(c, a.opts.PublicURL, a.entryURL(iss))
}

// URLsFor is URLs for one certificate: its http CRL and delta CRL URLs
// name the CRL that lists its serial (its shard's, with shards). The ldap
// URLs always name the CA entry, whose attributes hold the complete CRLs.
func (a *Authority) URLsFor(iss *Issuer, serial []byte) URLs {
	u := a.URLs(iss)
	c := a.CRLLayout().For(iss.Name, serial)
	u.CRL = crlscope.HTTPURL(a.opts.PublicURL, c)
	u.DeltaCRL = crlscope.HTTPURL(a.opts.PublicURL, c.DeltaCRL())
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
