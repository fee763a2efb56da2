package directory

import (
	"iter"
	"math/big"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"
)

// Entry is one directory entry, kept as the bytes a response sends: every
// attribute is a PartialAttribute in one block, and filters read the values
// there (entryAttr has their offsets). Each value is stored once — the
// certificate DER too, which certInfo slices for its serial — plus its
// normalized form where that differs (norms). Entries are immutable once
// built, so cached ones are shared by concurrent searches.
//
// A subscriber with a 1 KB certificate costs about 2.3 KB of heap this
// way (README.md, Memory); when values were kept decoded, normalized and
// encoded, each in its own allocation, it took 9.2 KB.
type Entry struct {
	DN   string
	norm string
	// block holds the attributes' encodings, user attributes first; in a
	// full entry attrs cover it in order and block[:userEnd] is what "*"
	// returns. A view shares its entry's block with fewer attrs
	// (userEnd < 0: its attributes are sent one by one).
	block   []byte
	userEnd int32
	// used is set when a cached entry is read (touch, cache.go).
	used  atomic.Bool
	attrs []entryAttr
	// norms are the normalized values of attributes with a normalizing
	// matching rule where some value differs from its normalized form.
	norms []string
	// certs identify the values of the certificate attribute, in order.
	certs []certInfo
	// expires is when a published certificate expires and the entry must be
	// rebuilt without it, in Unix nanoseconds; zero if never (live).
	expires int64
	// subscriber is the store ID for subscriber entries.
	subscriber string
	// serials are the hex serials of all the subscriber's certificates,
	// published or not, separated by spaces (eachSerial): a change to any
	// of them drops the cached entry.
	serials string
	// org is what access rules decide on (access.go): the organisation
	// ID of a subscriber entry ("" when none), the normalized name of a
	// container entry; "" for the others.
	org string
	// views are the restricted copies access rules return, made on first use.
	views [numViews]atomic.Pointer[Entry]
}

// entryAttr is one attribute of an entry: its PartialAttribute is
// src.block[off:end], the SET of its values src.block[set:end].
type entryAttr struct {
	src           *Entry
	at            *attrType
	off, set, end uint32
	// idx is where the attribute's values start in src.certs for a
	// certificate attribute; for others, where their normalized forms
	// start in src.norms, or how they are found without being stored
	// (normSelf, normConst, normEntryDN).
	idx int32
}

// Normalized forms an entry does not store (entryAttr.idx).
const (
	normSelf    = -1 - iota // each value is its own normalized form, or the rule normalizes nothing
	normConst               // constNorms has it, else it is its own
	normEntryDN             // the entry's normalized DN (entryDN)
)

// live reports whether the entry still holds only unexpired certificates.
func (e *Entry) live(now time.Time) bool { return e.expires == 0 || now.UnixNano() < e.expires }

// eachSerial yields the hex serials of the subscriber's certificates.
func (e *Entry) eachSerial() iter.Seq[string] { return strings.FieldsSeq(e.serials) }

// certInfo identifies a published certificate for certificateExactMatch.
type certInfo struct {
	// serial is the serial number's magnitude, big-endian without leading
	// zeros, sliced from the certificate's DER in the entry's block.
	serial []byte
	issuer string // normalized issuer DN
	// profile is the certificate's profile (ldap.anonymous_profiles).
	profile string
}

// outName is the name an attribute is returned under when the client did
// not name it: binary attributes carry ;binary (RFC 4522), which NSS and
// OpenSSL-based clients match on.
func (a *attrType) outName() string {
	if a.binary {
		return a.name + ";binary"
	}
	return a.name
}

// normalizes reports whether filters compare the attribute's values in a
// normalized form (the norms of an entry).
func (a *attrType) normalizes() bool {
	switch a.match {
	case matchCaseIgnore, matchCaseIgnoreIA5, matchOID, matchDN:
		return true
	}
	return false
}

// attrSpec is one attribute while building an entry: string values, or
// raw ones (certificates, CRLs: not copied before they go in the block).
type attrSpec struct {
	name   string
	values []string
	raw    [][]byte
	// certs describe the raw values of a certificate attribute, in order.
	certs []certSpec
}

// certSpec is what the directory knows of a certificate beyond its DER.
type certSpec struct {
	issuer  string // normalized issuer DN
	profile string
}

// newEntry builds an entry. Operational attributes are added here.
func newEntry(dn string, structural string, hasSubordinates bool, user []attrSpec, oper []attrSpec) *Entry {
	norm := mustNorm(dn)
	specs := make([]attrSpec, 0, len(user)+len(oper)+4)
	for _, s := range user {
		if at := attrByName[strings.ToLower(s.name)]; at != nil && !at.operational {
			specs = append(specs, s)
		}
	}
	userAttrs := len(specs)
	for _, s := range user {
		if at := attrByName[strings.ToLower(s.name)]; at != nil && at.operational {
			specs = append(specs, s)
		}
	}
	specs = append(specs, oper...)
	if dn != "" && structural != "" {
		hs := "FALSE"
		if hasSubordinates {
			hs = "TRUE"
		}
		specs = append(specs,
			attrSpec{name: "entryDN", values: []string{dn}},
			attrSpec{name: "subschemaSubentry", values: []string{subschemaDN}},
			attrSpec{name: "structuralObjectClass", values: []string{structural}},
			attrSpec{name: "hasSubordinates", values: []string{hs}})
	}
	// One pass to size the block, norms and certs exactly, one to fill them.
	size, nAttrs, nNorms, nCerts := 0, 0, 0, 0
	for i := range specs {
		s := &specs[i]
		at := attrByName[strings.ToLower(s.name)]
		if at == nil || len(s.values)+len(s.raw) == 0 {
			continue
		}
		nAttrs++
		size += tlvLen(tlvLen(len(at.outName())) + tlvLen(setLen(s)))
		if at.match == matchCertificate {
			nCerts += len(s.values) + len(s.raw)
		} else if at.normalizes() && normMode(at, s.values, dn, norm) == 0 {
			nNorms += len(s.values)
		}
	}
	e := &Entry{DN: dn, norm: norm, userEnd: -1,
		block: make([]byte, 0, size), attrs: make([]entryAttr, 0, nAttrs)}
	if nNorms > 0 {
		e.norms = make([]string, 0, nNorms)
	}
	if nCerts > 0 {
		e.certs = make([]certInfo, 0, nCerts)
	}
	for i := range specs {
		if i == userAttrs {
			e.userEnd = int32(len(e.block))
		}
		s := &specs[i]
		at := attrByName[strings.ToLower(s.name)]
		if at == nil || len(s.values)+len(s.raw) == 0 {
			continue
		}
		name, set := at.outName(), setLen(s)
		a := entryAttr{src: e, at: at, off: uint32(len(e.block)), idx: -1}
		e.block = append(e.block, 0x30)
		e.block = appendLength(e.block, tlvLen(len(name))+tlvLen(set))
		e.block = appendString(e.block, 0x04, name)
		a.set = uint32(len(e.block))
		e.block = append(e.block, 0x31)
		e.block = appendLength(e.block, set)
		if at.match == matchCertificate {
			a.idx = int32(len(e.certs))
		}
		for j := range len(s.values) + len(s.raw) {
			n := 0
			if j < len(s.values) {
				n = len(s.values[j])
				e.block = appendString(e.block, 0x04, s.values[j])
			} else {
				n = len(s.raw[j-len(s.values)])
				e.block = appendTLV(e.block, 0x04, s.raw[j-len(s.values)])
			}
			if at.match == matchCertificate {
				ci := certInfo{serial: derSerial(e.block[len(e.block)-n:])}
				if j < len(s.certs) {
					ci.issuer, ci.profile = s.certs[j].issuer, s.certs[j].profile
				}
				e.certs = append(e.certs, ci)
			}
		}
		a.end = uint32(len(e.block))
		if at.normalizes() {
			if a.idx = normMode(at, s.values, dn, norm); a.idx == 0 {
				a.idx = int32(len(e.norms))
				for _, v := range s.values {
					e.norms = append(e.norms, normValue(at, v, dn, norm))
				}
			}
		}
		e.attrs = append(e.attrs, a)
	}
	if e.userEnd < 0 {
		e.userEnd = int32(len(e.block))
	}
	return e
}

// tlvLen is the length of a TLV with a one-octet tag and n octets of body.
func tlvLen(n int) int {
	switch {
	case n < 0x80:
		return 2 + n
	case n < 1<<8:
		return 3 + n
	case n < 1<<16:
		return 4 + n
	case n < 1<<24:
		return 5 + n
	}
	return 6 + n
}

// setLen is the body length of the SET of an attribute's values.
func setLen(s *attrSpec) int {
	n := 0
	for _, v := range s.values {
		n += tlvLen(len(v))
	}
	for _, v := range s.raw {
		n += tlvLen(len(v))
	}
	return n
}

// constNorms are the normalized forms of values most entries carry (object
// classes, the subschema's DN), so that entries share them.
var constNorms = func() map[string]string {
	m := map[string]string{subschemaDN: "cn=subschema"}
	for _, v := range []string{"organizationalPerson", "inetOrgPerson", "pkiUser", "cRLDistributionPoint", "pkiCA",
		"deltaCRL", "organizationalUnit", "extensibleObject"} {
		m[v] = strings.ToLower(v)
	}
	return m
}()

// normValue is the normalized form of v, an attribute value of an entry
// whose DN is dn (normalized: norm).
func normValue(at *attrType, v, dn, norm string) string {
	if v == dn {
		return norm // entryDN
	}
	if n, ok := constNorms[v]; ok {
		return n
	}
	if at.match == matchDN {
		return mustNorm(v)
	}
	return normalize(v)
}

// normMode is how the normalized forms of a normalizing attribute's values
// are found (normSelf, normConst, normEntryDN), or 0 if they must be
// stored: most entries' values are their own normalized forms or shared
// ones, and storing them cost a string header each.
func normMode(at *attrType, values []string, dn, norm string) int32 {
	mode := int32(normSelf)
	for _, v := range values {
		switch {
		case normValue(at, v, dn, norm) == v:
		case v == dn && len(values) == 1:
			return normEntryDN
		case constNorms[v] != "":
			mode = normConst
		default:
			return 0
		}
	}
	return mode
}

// derSerial is the serial number of a DER certificate as an unsigned
// big-endian magnitude without leading zeros, a slice of der; nil if der
// is not a certificate.
func derSerial(der []byte) []byte {
	cert, _, err := readElem(der)
	if err != nil || cert.tag != 0x30 {
		return nil
	}
	tbs, _, err := readElem(cert.body)
	if err != nil || tbs.tag != 0x30 {
		return nil
	}
	f, rest, err := readElem(tbs.body)
	if err == nil && f.tag == 0xa0 { // [0] version
		f, _, err = readElem(rest)
	}
	if err != nil || f.tag != 0x02 {
		return nil
	}
	b := f.body
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}

// match reports whether the certificate is the one the assertion names.
func (c *certInfo) match(a *certAssertion) bool {
	if a == nil || c.serial == nil || c.issuer != a.issuer || a.serial.Sign() < 0 {
		return false
	}
	n := len(c.serial)
	if n == 1 && c.serial[0] == 0 {
		return a.serial.Sign() == 0
	}
	if (a.serial.BitLen()+7)/8 != n {
		return false
	}
	var buf [64]byte
	if n > len(buf) {
		return a.serial.Cmp(new(big.Int).SetBytes(c.serial)) == 0
	}
	return string(a.serial.FillBytes(buf[:n])) == string(c.serial)
}

func (e *Entry) attr(at *attrType) *entryAttr {
	for i := range e.attrs {
		if e.attrs[i].at == at {
			return &e.attrs[i]
		}
	}
	return nil
}

// tlv is the PartialAttribute under the attribute's canonical name.
func (a *entryAttr) tlv() []byte { return a.src.block[a.off:a.end] }

// valueSet is the SET OF values, with its tag and length.
func (a *entryAttr) valueSet() []byte { return a.src.block[a.set:a.end] }

// all yields each value with its normalized form ("" for an attribute
// whose matching rule does not normalize).
func (a *entryAttr) all() iter.Seq2[[]byte, string] {
	return func(yield func([]byte, string) bool) {
		set, _, err := readElem(a.valueSet())
		if err != nil {
			return
		}
		norm := a.at.normalizes()
		for i := 0; len(set.body) > 0; i++ {
			var v elem
			if v, set.body, err = readElem(set.body); err != nil {
				return
			}
			n := ""
			if norm {
				switch a.idx {
				case normEntryDN:
					n = a.src.norm
				case normConst:
					n = constNorms[string(v.body)]
				}
				if a.idx >= 0 {
					n = a.src.norms[int(a.idx)+i]
				} else if n == "" {
					// the value is its own normalized form; the block is
					// never written once built, so the string may share it
					n = unsafe.String(unsafe.SliceData(v.body), len(v.body))
				}
			}
			if !yield(v.body, n) {
				return
			}
		}
	}
}

// values yields each value.
func (a *entryAttr) values() iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for v := range a.all() {
			if !yield(v) {
				return
			}
		}
	}
}

// certList is the certificates of a certificate attribute, nil for others.
func (a *entryAttr) certList() []certInfo {
	if a.at.match != matchCertificate || a.idx < 0 {
		return nil
	}
	n := 0
	for range a.values() {
		n++
	}
	return a.src.certs[a.idx : int(a.idx)+n]
}

// subset is e with only the attributes keepAttr keeps and, of certificate
// attributes, only the certificates keepCert keeps (an attribute left
// without any is dropped); e itself if that is all of it. certs counts the
// certificates kept. The attributes share e's block unless a certificate
// attribute lost some values: then the subset is encoded anew.
func (e *Entry) subset(keepAttr func(*attrType) bool, keepCert func(*certInfo) bool) (v *Entry, certs int) {
	changed, reencode := false, false
	attrs := make([]entryAttr, 0, len(e.attrs))
	for _, a := range e.attrs {
		if !keepAttr(a.at) {
			changed = true
			continue
		}
		if cl := a.certList(); cl != nil {
			kept := 0
			for i := range cl {
				if keepCert(&cl[i]) {
					kept++
				}
			}
			certs += kept
			if kept == 0 {
				changed = true
				continue
			}
			if kept != len(cl) {
				changed, reencode = true, true
			}
		}
		attrs = append(attrs, a)
	}
	if !changed {
		return e, certs
	}
	if reencode {
		var user, oper []attrSpec
		for _, a := range attrs {
			s := attrSpec{name: a.at.name}
			cl := a.certList()
			i := 0
			for val := range a.values() {
				switch {
				case cl != nil:
					if keepCert(&cl[i]) {
						s.raw = append(s.raw, val)
						s.certs = append(s.certs, certSpec{issuer: cl[i].issuer, profile: cl[i].profile})
					}
				case a.at.match == matchNone:
					s.raw = append(s.raw, val)
				default:
					s.values = append(s.values, string(val))
				}
				i++
			}
			if a.at.operational {
				oper = append(oper, s)
			} else {
				user = append(user, s)
			}
		}
		// the operational attributes are copied with the rest
		v = newEntry(e.DN, "", false, user, oper)
	} else {
		v = &Entry{DN: e.DN, norm: e.norm, block: e.block, userEnd: -1, attrs: attrs, norms: e.norms, certs: e.certs}
	}
	v.expires, v.subscriber, v.serials, v.org = e.expires, e.subscriber, e.serials, e.org
	return v, certs
}

// appendAttr appends a PartialAttribute.
func appendAttr(dst []byte, name string, values [][]byte, typesOnly bool) []byte {
	start := len(dst)
	dst = appendString(dst, 0x04, name)
	vs := len(dst)
	if !typesOnly {
		for _, v := range values {
			dst = appendTLV(dst, 0x04, v)
		}
	}
	dst = wrap(dst, vs, 0x31)
	return wrap(dst, start, 0x30)
}

// selection is a search's attribute list, resolved once per request.
type selection struct {
	allUser, allOper bool
	typesOnly        bool
	named            []namedAttr
}

type namedAttr struct {
	at   *attrType
	name string // exactly as the client asked
}

// newSelection resolves an attribute list: none or "*" for all user
// attributes, "+" for all operational ones, "1.1" for none, and names
// answered under exactly the name asked for (so "userCertificate" and
// "userCertificate;binary" both find the certificate, each under its name).
func newSelection(attrs []string, typesOnly bool) *selection {
	s := &selection{typesOnly: typesOnly}
	if len(attrs) == 0 {
		s.allUser = true
	}
	seen := map[string]bool{}
	for _, a := range attrs {
		switch a {
		case "*":
			s.allUser = true
			continue
		case "+":
			s.allOper = true
			continue
		case "1.1":
			continue
		}
		at, _, ok := lookupAttr(a)
		if !ok || seen[strings.ToLower(a)] {
			continue
		}
		seen[strings.ToLower(a)] = true
		s.named = append(s.named, namedAttr{at: at, name: a})
	}
	return s
}

func (s *selection) isNamed(at *attrType) bool {
	for _, n := range s.named {
		if n.at == at {
			return true
		}
	}
	return false
}

// appendSearchEntry appends a SearchResultEntry message for e.
func (e *Entry) appendSearchEntry(dst []byte, id int64, sel *selection) []byte {
	start := len(dst)
	dst = appendInt(dst, 0x02, id)
	opStart := len(dst)
	dst = appendString(dst, 0x04, e.DN)
	as := len(dst)
	if sel.allUser {
		if len(sel.named) == 0 && !sel.typesOnly && e.userEnd >= 0 {
			dst = append(dst, e.block[:e.userEnd]...)
		} else {
			for i := range e.attrs {
				a := &e.attrs[i]
				if !a.at.operational && !sel.isNamed(a.at) {
					dst = a.appendTo(dst, a.at.outName(), sel.typesOnly)
				}
			}
		}
	}
	if sel.allOper {
		for i := range e.attrs {
			a := &e.attrs[i]
			if a.at.operational && !sel.isNamed(a.at) {
				dst = a.appendTo(dst, a.at.outName(), sel.typesOnly)
			}
		}
	}
	for _, n := range sel.named {
		if a := e.attr(n.at); a != nil {
			dst = a.appendTo(dst, n.name, sel.typesOnly)
		}
	}
	dst = wrap(dst, as, 0x30)
	dst = wrap(dst, opStart, opSearchEntry)
	return wrap(dst, start, 0x30)
}

// appendTo appends the attribute as a PartialAttribute named name: its
// stored encoding when that is its canonical name, else the name with the
// stored SET of values (or an empty SET for typesOnly).
func (a *entryAttr) appendTo(dst []byte, name string, typesOnly bool) []byte {
	if typesOnly {
		return appendAttr(dst, name, nil, true)
	}
	if name == a.at.outName() {
		return append(dst, a.tlv()...)
	}
	set := a.valueSet()
	dst = append(dst, 0x30)
	dst = appendLength(dst, tlvLen(len(name))+len(set))
	dst = appendString(dst, 0x04, name)
	return append(dst, set...)
}
