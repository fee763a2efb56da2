package directory

import (
	"math/big"
	"strings"
	"sync/atomic"
	"time"
)

// Entry is one directory entry with its attributes decoded for filter
// evaluation and pre-encoded for responses. Entries are immutable once
// built, so cached ones are shared by concurrent searches.
type Entry struct {
	DN    string
	norm  string
	rdns  [][]ava
	attrs []entryAttr
	// dnTLV is the DN as an OCTET STRING; allUser the PartialAttributes of
	// every user attribute under its canonical name (what "*" returns), and
	// allUserTypes the same without values (typesOnly).
	dnTLV        []byte
	allUser      []byte
	allUserTypes []byte
	// expires is when a published certificate expires and the entry must be
	// rebuilt without it; zero if never.
	expires time.Time
	// subscriber is the store ID for subscriber entries.
	subscriber string
	// serials are the hex serials of all the subscriber's certificates,
	// published or not: a change to any of them drops the cached entry.
	serials []string
	// org is what access rules decide on (access.go): the organisation
	// ID of a subscriber entry ("" when none), the normalized name of a
	// container entry; "" for the others.
	org string
	// views are the restricted copies access rules return, made on first use.
	views [numViews]atomic.Pointer[Entry]
}

type entryAttr struct {
	at     *attrType
	values [][]byte
	norm   []string // normalized values for string matching rules; nil otherwise
	certs  []*certInfo
	// tlv is the PartialAttribute under the canonical name.
	tlv      []byte
	typesTLV []byte
}

// certInfo identifies a published certificate for certificateExactMatch.
type certInfo struct {
	serial *big.Int
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

// attrSpec is one attribute while building an entry.
type attrSpec struct {
	name   string
	values []string
	certs  []*certInfo
}

// newEntry builds an entry. Operational attributes are added here.
func newEntry(dn string, structural string, hasSubordinates bool, user []attrSpec, oper []attrSpec) *Entry {
	rdns, _ := parseDN(dn)
	e := &Entry{DN: dn, rdns: rdns, norm: normRDNs(rdns)}
	e.dnTLV = appendString(nil, 0x04, dn)
	add := func(s attrSpec) {
		at := attrByName[strings.ToLower(s.name)]
		if at == nil || len(s.values) == 0 {
			return
		}
		a := entryAttr{at: at, certs: s.certs}
		for _, v := range s.values {
			a.values = append(a.values, []byte(v))
		}
		switch at.match {
		case matchCaseIgnore, matchCaseIgnoreIA5, matchOID:
			for _, v := range s.values {
				a.norm = append(a.norm, normalize(v))
			}
		case matchDN:
			for _, v := range s.values {
				a.norm = append(a.norm, mustNorm(v))
			}
		}
		a.tlv = appendAttr(nil, at.outName(), a.values, false)
		a.typesTLV = appendAttr(nil, at.outName(), nil, true)
		e.attrs = append(e.attrs, a)
		if !at.operational {
			e.allUser = append(e.allUser, a.tlv...)
			e.allUserTypes = append(e.allUserTypes, a.typesTLV...)
		}
	}
	for _, s := range user {
		add(s)
	}
	for _, s := range oper {
		add(s)
	}
	if dn != "" && structural != "" {
		add(attrSpec{name: "entryDN", values: []string{dn}})
		add(attrSpec{name: "subschemaSubentry", values: []string{subschemaDN}})
		add(attrSpec{name: "structuralObjectClass", values: []string{structural}})
		hs := "FALSE"
		if hasSubordinates {
			hs = "TRUE"
		}
		add(attrSpec{name: "hasSubordinates", values: []string{hs}})
	}
	return e
}

func (e *Entry) attr(at *attrType) *entryAttr {
	for i := range e.attrs {
		if e.attrs[i].at == at {
			return &e.attrs[i]
		}
	}
	return nil
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
	dst = append(dst, e.dnTLV...)
	as := len(dst)
	if sel.allUser {
		if len(sel.named) == 0 {
			if sel.typesOnly {
				dst = append(dst, e.allUserTypes...)
			} else {
				dst = append(dst, e.allUser...)
			}
		} else {
			for i := range e.attrs {
				a := &e.attrs[i]
				if !a.at.operational && !sel.isNamed(a.at) {
					dst = a.appendTo(dst, sel.typesOnly)
				}
			}
		}
	}
	if sel.allOper {
		for i := range e.attrs {
			a := &e.attrs[i]
			if a.at.operational && !sel.isNamed(a.at) {
				dst = a.appendTo(dst, sel.typesOnly)
			}
		}
	}
	for _, n := range sel.named {
		if a := e.attr(n.at); a != nil {
			if n.name == a.at.outName() {
				dst = a.appendTo(dst, sel.typesOnly)
			} else {
				dst = appendAttr(dst, n.name, a.values, sel.typesOnly)
			}
		}
	}
	dst = wrap(dst, as, 0x30)
	dst = wrap(dst, opStart, opSearchEntry)
	return wrap(dst, start, 0x30)
}

func (a *entryAttr) appendTo(dst []byte, typesOnly bool) []byte {
	if typesOnly {
		return append(dst, a.typesTLV...)
	}
	return append(dst, a.tlv...)
}
