// Package crlscope is the one place that says which CRLs a CA has: their
// file names (the /crl/ URL and the store key of each), the store
// namespaces and sequence they live in, the shard a certificate falls in,
// the LDAP attribute that publishes each, and the scope each must state
// in its issuing distribution point.
//
// ca writes distribution points from it, crl builds and serves what it
// lists, and directory publishes the attributes it names; none of them
// spells a CRL file name or store key itself. It imports nothing of
// certcenter, so all three can use it without importing each other.
//
// Adding a shard rule (say, by issuance month instead of by serial)
// changes Layout.ShardOf and Layout.For here, and their tests; the CDP
// that ca writes and the partition that crl builds follow from them.
package crlscope

import (
	"strconv"
	"strings"
)

// Store layout of the CRLs. The DER of every current CRL is the blob
// (Namespace, File()) — exactly what HTTP serves and the directory
// publishes; its builder metadata is the blob (MetaNamespace, File()).
const (
	Namespace     = "crl"
	MetaNamespace = "crlmeta"
)

// HTTPPath is the path under the public URL where CRLs are served, by File.
const HTTPPath = "/crl/"

// Sequence is the store sequence all CRL numbers of a CA come from, so
// numbers rise across full, delta and shard CRLs and across restarts.
func Sequence(ca string) string { return "crl-" + ca }

// FileOfKey returns the CRL file name of a store change key
// ("<namespace>/<key>") when it is a CRL blob.
func FileOfKey(key string) (file string, ok bool) {
	return strings.CutPrefix(key, Namespace+"/")
}

// Kind is which certificates of a CA a CRL lists.
type Kind uint8

const (
	// KindComplete lists every revoked user certificate of the CA.
	KindComplete Kind = iota
	// KindShard lists the revoked user certificates of one shard.
	KindShard
	// KindARL is the authority revocation list: revoked CA certificates
	// (empty while a CA issues none).
	KindARL
)

// CRL names one CRL of one CA.
type CRL struct {
	CA    string
	Kind  Kind
	Shard int // the partition, for KindShard
	Delta bool
}

// Complete is a CA's complete CRL.
func Complete(ca string) CRL { return CRL{CA: ca, Kind: KindComplete} }

// ARL is a CA's authority revocation list.
func ARL(ca string) CRL { return CRL{CA: ca, Kind: KindARL} }

// Shard is the full CRL of one partition of a CA's certificates.
func Shard(ca string, k int) CRL { return CRL{CA: ca, Kind: KindShard, Shard: k} }

// DeltaCRL is the delta CRL against c (c itself when c is a delta).
func (c CRL) DeltaCRL() CRL { c.Delta = true; return c }

// Base is the full CRL a delta CRL is issued against (c itself when c is
// full).
func (c CRL) Base() CRL { c.Delta = false; return c }

// File is the file name under HTTPPath and the store key: "<ca>.crl",
// "<ca>-arl.crl", "<ca>-<k>.crl", with "-delta" before ".crl" for a delta.
func (c CRL) File() string {
	name := c.CA
	switch c.Kind {
	case KindARL:
		name += "-arl"
	case KindShard:
		name += "-" + strconv.Itoa(c.Shard)
	}
	if c.Delta {
		name += "-delta"
	}
	return name + ".crl"
}

// LDAPAttribute is the attribute of the CA's directory entry that holds c
// ("" for a CRL the directory does not publish: shards and the ARL's
// delta). An entry has one value per attribute, so only the complete CRL,
// its delta and the ARL are there.
func (c CRL) LDAPAttribute() string {
	switch {
	case c.Kind == KindComplete && !c.Delta:
		return "certificateRevocationList"
	case c.Kind == KindComplete && c.Delta:
		return "deltaRevocationList"
	case c.Kind == KindARL && !c.Delta:
		return "authorityRevocationList"
	}
	return ""
}

// Published lists the CRLs of a CA that its directory entry publishes,
// each with LDAPAttribute set.
func Published(ca string) []CRL {
	return []CRL{Complete(ca), Complete(ca).DeltaCRL(), ARL(ca)}
}

// HTTPURL is where c is served below publicURL ("http://host:8080").
func HTTPURL(publicURL string, c CRL) string {
	return strings.TrimRight(publicURL, "/") + HTTPPath + c.File()
}

// LDAPURL is the ldap URL of c below entryURL, the URL of the CA's
// directory entry ("ldap://host:1389/cn=CA,o=Org"); "" when the directory
// does not publish c.
func LDAPURL(entryURL string, c CRL) string {
	attr := c.LDAPAttribute()
	if attr == "" {
		return ""
	}
	return entryURL + "?" + attr + ";binary"
}

// Layout is how every CA's CRL is split: the one shard count
// (config crl.shards), fixed for the certificates issued under it.
type Layout struct {
	// Shards is the number of partitions; 0 or 1: the CRL is not split.
	Shards int
}

// N is the number of partitions, at least 1.
func (l Layout) N() int { return max(l.Shards, 1) }

// Sharded reports whether the CRL is split.
func (l Layout) Sharded() bool { return l.N() > 1 }

// ShardOf is the partition of a serial: its last (up to) eight octets, read
// as a big-endian number, modulo N. Serials are random, so shards fill
// evenly; the shard depends only on the serial and N, so it is fixed at
// issuance (by the CDP written into the certificate) and the builder finds
// it again from the revocation index alone. Changing crl.shards later
// leaves older certificates' CDPs naming shards that no longer match (their
// ldap URL and the complete CRL stay right).
func (l Layout) ShardOf(serial []byte) int {
	n := l.N()
	if n == 1 {
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

// For is the full CRL a user certificate's http CRL distribution point
// names: its shard's, or the complete CRL when the CRL is not split. Its
// freshest CRL names For(...).DeltaCRL().
func (l Layout) For(ca string, serial []byte) CRL {
	if !l.Sharded() {
		return Complete(ca)
	}
	return Shard(ca, l.ShardOf(serial))
}

// Covers reports whether c lists a revoked user certificate with serial
// (the ARL lists CA certificates only).
func (l Layout) Covers(c CRL, serial []byte) bool {
	switch c.Kind {
	case KindComplete:
		return true
	case KindShard:
		return l.Sharded() && c.Shard == l.ShardOf(serial)
	}
	return false
}

// Full lists the full CRLs of a CA: the complete CRL first, the ARL, then
// one per shard.
func (l Layout) Full(ca string) []CRL {
	out := []CRL{Complete(ca), ARL(ca)}
	if l.Sharded() {
		for k := range l.N() {
			out = append(out, Shard(ca, k))
		}
	}
	return out
}

// Deltas lists the delta CRLs of a CA: the complete CRL's first, then one
// per shard. The ARL has none.
func (l Layout) Deltas(ca string) []CRL {
	out := []CRL{Complete(ca).DeltaCRL()}
	if l.Sharded() {
		for k := range l.N() {
			out = append(out, Shard(ca, k).DeltaCRL())
		}
	}
	return out
}

// Find returns the CRL of ca whose file name is file, if the layout has it.
func (l Layout) Find(ca, file string) (CRL, bool) {
	for _, list := range [][]CRL{l.Full(ca), l.Deltas(ca)} {
		for _, c := range list {
			if c.File() == file {
				return c, true
			}
		}
	}
	return CRL{}, false
}

// Scope is what a CRL's issuing distribution point (RFC 5280 §5.2.5) must
// say.
type Scope struct {
	// IDP: the CRL carries a critical issuing distribution point. Without
	// one a CRL covers every certificate of its CA.
	IDP bool
	// OnlyCACerts: onlyContainsCACerts, else onlyContainsUserCerts.
	OnlyCACerts bool
	// Names are the distribution point's full names: the URLs that
	// certificates carry for this CRL, which a relying party matches
	// against their CRL distribution points (RFC 5280 §6.3.3 b.2).
	Names []string
}

// Scope is the scope c states. publicURL and entryURL are as for HTTPURL
// and LDAPURL. A delta CRL states its base's scope (RFC 5280 §5.2.4).
//
// Without shards the complete CRL and its delta carry no IDP: NSS
// (libpkix) refuses a CRL whose IDP is critical, RFC 5280 requires it
// critical, and a CRL without one covers every certificate of the CA,
// which the complete CRL lists. With shards the IDP is what keeps one
// shard's CRL from being taken for another's or for the complete CRL, so
// every CRL keeps it (and NSS cannot use sharded CRLs). The ARL always has
// one: it names no URL (no certificate carries one for it), only its
// scope, which keeps it from being taken for the CA's user CRL.
func (l Layout) Scope(c CRL, publicURL, entryURL string) Scope {
	c = c.Base()
	switch {
	case c.Kind == KindARL:
		return Scope{IDP: true, OnlyCACerts: true}
	case c.Kind == KindComplete && !l.Sharded():
		return Scope{}
	}
	names := []string{HTTPURL(publicURL, c)}
	if u := LDAPURL(entryURL, c); u != "" {
		names = append(names, u)
	}
	return Scope{IDP: true, Names: names}
}
