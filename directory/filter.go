package directory

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// Filter tags (RFC 4511 section 4.5.1.7).
const (
	fAnd        = 0xa0
	fOr         = 0xa1
	fNot        = 0xa2
	fEquality   = 0xa3
	fSubstrings = 0xa4
	fGreater    = 0xa5
	fLess       = 0xa6
	fPresent    = 0x87
	fApprox     = 0xa8
	fExtensible = 0xa9
)

// tri is a filter result: RFC 4511's TRUE, FALSE or Undefined.
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUndef
)

// maxFilterDepth bounds nesting so a hostile filter cannot exhaust the stack.
const maxFilterDepth = 64

// filter is a compiled search filter.
type filter struct {
	kind byte
	subs []*filter
	desc string    // attribute description as sent
	at   *attrType // nil for an unknown attribute
	// value is the assertion value, normalized for the attribute's matching rule.
	value   string
	raw     []byte
	initial string
	any     []string
	final   string
	cert    *certAssertion
	num     int64  // the assertion value of an integerMatch attribute
	rule    string // extensible: matching rule OID or name, lower-case
	dnAttrs bool
	badVal  bool // the assertion value is invalid for the syntax: Undefined
}

// certAssertion is a CertificateExactAssertion (RFC 4523 section 2.1).
type certAssertion struct {
	serial *big.Int
	issuer string // normalized DN
}

// compileFilter compiles a BER-encoded Filter.
func compileFilter(e elem, depth int) (*filter, error) {
	if depth > maxFilterDepth {
		return nil, errors.New("filter nested too deeply")
	}
	f := &filter{kind: e.tag}
	switch e.tag {
	case fAnd, fOr:
		for b := e.body; len(b) > 0; {
			var c elem
			var err error
			if c, b, err = readElem(b); err != nil {
				return nil, err
			}
			sub, err := compileFilter(c, depth+1)
			if err != nil {
				return nil, err
			}
			f.subs = append(f.subs, sub)
		}
	case fNot:
		c, rest, err := readElem(e.body)
		if err != nil || len(rest) != 0 {
			return nil, errors.New("bad not filter")
		}
		sub, err := compileFilter(c, depth+1)
		if err != nil {
			return nil, err
		}
		f.subs = []*filter{sub}
	case fEquality, fGreater, fLess, fApprox:
		d, rest, err := readElem(e.body)
		if err != nil || d.tag != 0x04 {
			return nil, errors.New("bad attribute value assertion")
		}
		v, rest, err := readElem(rest)
		if err != nil || v.tag != 0x04 || len(rest) != 0 {
			return nil, errors.New("bad attribute value assertion")
		}
		f.setAttr(string(d.body))
		f.setValue(v.body)
	case fPresent:
		if len(e.body) == 0 {
			return nil, errors.New("empty attribute in present filter")
		}
		f.setAttr(string(e.body))
	case fSubstrings:
		d, rest, err := readElem(e.body)
		if err != nil || d.tag != 0x04 {
			return nil, errors.New("bad substrings filter")
		}
		seq, tail, err := readElem(rest)
		if err != nil || seq.tag != 0x30 || len(tail) != 0 || len(seq.body) == 0 {
			return nil, errors.New("bad substrings filter")
		}
		f.setAttr(string(d.body))
		for b, n := seq.body, 0; len(b) > 0; n++ {
			var s elem
			if s, b, err = readElem(b); err != nil {
				return nil, errors.New("bad substring")
			}
			v := normalize(string(s.body))
			switch s.tag {
			case 0x80:
				if n != 0 {
					return nil, errors.New("initial substring not first")
				}
				f.initial = v
			case 0x81:
				f.any = append(f.any, v)
			case 0x82:
				if len(b) != 0 {
					return nil, errors.New("final substring not last")
				}
				f.final = v
			default:
				return nil, fmt.Errorf("bad substring choice %#x", s.tag)
			}
		}
	case fExtensible:
		var val []byte
		hasVal := false
		for b := e.body; len(b) > 0; {
			var c elem
			var err error
			if c, b, err = readElem(b); err != nil {
				return nil, errors.New("bad extensible match")
			}
			switch c.tag {
			case 0x81:
				f.rule = strings.ToLower(string(c.body))
			case 0x82:
				f.setAttr(string(c.body))
			case 0x83:
				val, hasVal = c.body, true
			case 0x84:
				f.dnAttrs = len(c.body) == 1 && c.body[0] != 0
			default:
				return nil, errors.New("bad extensible match")
			}
		}
		if !hasVal || f.rule == "" && f.desc == "" {
			return nil, errors.New("extensible match needs a value and a rule or a type")
		}
		if f.rule != "" {
			if r, ok := rules[f.rule]; ok {
				f.rule = r
			}
		}
		if f.rule == "certificateexactmatch" || f.rule == "" && f.at != nil && f.at.match == matchCertificate {
			f.cert, f.badVal = parseCertAssertion(val), false
			f.badVal = f.cert == nil
		} else {
			f.value = normalize(string(val))
		}
		f.raw = val
	default:
		return nil, fmt.Errorf("unknown filter choice %#x", e.tag)
	}
	return f, nil
}

// rules maps matching rule OIDs to the lower-case names the evaluator uses.
var rules = map[string]string{
	"2.5.13.2": "caseignorematch", "2.5.13.5": "caseexactmatch", "2.5.13.34": "certificateexactmatch",
	"2.5.13.1": "distinguishednamematch", "2.5.13.0": "objectidentifiermatch", "2.5.13.14": "integermatch",
	"1.3.6.1.4.1.1466.109.114.2": "caseignoreia5match",
}

func (f *filter) setAttr(desc string) {
	f.desc = desc
	f.at, _, _ = lookupAttr(desc)
}

func (f *filter) setValue(v []byte) {
	f.raw = v
	if f.at == nil {
		return
	}
	switch f.at.match {
	case matchDN:
		n, ok := normDN(string(v))
		f.value, f.badVal = n, !ok
	case matchInteger:
		n, err := strconv.ParseInt(string(v), 10, 64)
		f.num, f.badVal = n, err != nil
		f.value = string(v)
	case matchCertificate:
		f.cert = parseCertAssertion(v)
		f.badVal = f.cert == nil
	default:
		f.value = normalize(string(v))
	}
}

// parseCertAssertion accepts a CertificateExactAssertion as GSER
// ({ serialNumber 123, issuer rdnSequence:"cn=CA,o=x" }), in OpenLDAP's
// short form (123$cn=CA,o=x; a serial in hex as 0x7b or '7B'H), or a whole
// DER certificate.
func parseCertAssertion(v []byte) *certAssertion {
	if len(v) > 0 && v[0] == 0x30 {
		if c, err := x509.ParseCertificate(v); err == nil {
			return &certAssertion{serial: c.SerialNumber, issuer: mustNorm(c.Issuer.String())}
		}
	}
	s := strings.TrimSpace(string(v))
	var serial, issuer string
	if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
		body := strings.TrimSpace(s[1 : len(s)-1])
		rest, ok := strings.CutPrefix(body, "serialNumber")
		if !ok {
			return nil
		}
		serial, rest, ok = strings.Cut(strings.TrimSpace(rest), ",")
		if !ok {
			return nil
		}
		rest, ok = strings.CutPrefix(strings.TrimSpace(rest), "issuer")
		if !ok {
			return nil
		}
		rest = strings.TrimSpace(rest)
		rest = strings.TrimPrefix(rest, "rdnSequence:")
		if len(rest) < 2 || rest[0] != '"' || rest[len(rest)-1] != '"' {
			return nil
		}
		issuer = strings.ReplaceAll(rest[1:len(rest)-1], `""`, `"`)
	} else {
		var ok bool
		if serial, issuer, ok = strings.Cut(s, "$"); !ok {
			return nil
		}
	}
	n, ok := parseSerial(strings.TrimSpace(serial))
	if !ok {
		return nil
	}
	norm, ok := normDN(issuer)
	if !ok {
		return nil
	}
	return &certAssertion{serial: n, issuer: norm}
}

func parseSerial(s string) (*big.Int, bool) {
	n := new(big.Int)
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		return n.SetString(s[2:], 16)
	case len(s) > 3 && s[0] == '\'' && strings.HasSuffix(s, "'H"):
		return n.SetString(s[1:len(s)-2], 16)
	}
	return n.SetString(s, 10)
}

// eval evaluates the filter against an entry.
func (f *filter) eval(e *Entry) tri {
	switch f.kind {
	case fAnd:
		res := triTrue
		for _, s := range f.subs {
			switch s.eval(e) {
			case triFalse:
				return triFalse
			case triUndef:
				res = triUndef
			}
		}
		return res
	case fOr:
		res := triFalse
		for _, s := range f.subs {
			switch s.eval(e) {
			case triTrue:
				return triTrue
			case triUndef:
				res = triUndef
			}
		}
		return res
	case fNot:
		switch f.subs[0].eval(e) {
		case triTrue:
			return triFalse
		case triFalse:
			return triTrue
		}
		return triUndef
	case fPresent:
		if f.at == nil {
			return triFalse
		}
		if e.attr(f.at) != nil {
			return triTrue
		}
		return triFalse
	case fExtensible:
		return f.evalExtensible(e)
	}
	if f.at == nil || f.badVal {
		return triUndef
	}
	a := e.attr(f.at)
	switch f.kind {
	case fEquality:
		return f.equal(a)
	case fApprox:
		return f.approx(a)
	case fSubstrings:
		if f.at.match != matchCaseIgnore && f.at.match != matchCaseIgnoreIA5 {
			return triUndef
		}
		if a == nil {
			return triFalse
		}
		for _, v := range a.all() {
			if f.substr(v) {
				return triTrue
			}
		}
		return triFalse
	case fGreater, fLess:
		return f.order(a)
	}
	return triUndef
}

func (f *filter) equal(a *entryAttr) tri {
	switch f.at.match {
	case matchNone:
		return triUndef
	case matchCertificate:
		if a == nil {
			return triFalse
		}
		for _, c := range a.certList() {
			if c.match(f.cert) {
				return triTrue
			}
		}
		return triFalse
	case matchInteger:
		return anyInteger(a, func(n int64) bool { return n == f.num })
	}
	if a == nil {
		return triFalse
	}
	for _, v := range a.all() {
		if v == f.value {
			return triTrue
		}
	}
	return triFalse
}

// anyInteger reports whether a value of a, read as an integer, satisfies ok.
func anyInteger(a *entryAttr, ok func(int64) bool) tri {
	if a == nil {
		return triFalse
	}
	for v := range a.values() {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && ok(n) {
			return triTrue
		}
	}
	return triFalse
}

// approx is equality ignoring everything but letters and digits, which
// catches the spacing and punctuation variants people type.
func (f *filter) approx(a *entryAttr) tri {
	if f.at.match != matchCaseIgnore && f.at.match != matchCaseIgnoreIA5 {
		return f.equal(a)
	}
	if a == nil {
		return triFalse
	}
	want := alnum(f.value)
	for _, v := range a.all() {
		if alnum(v) == want {
			return triTrue
		}
	}
	return triFalse
}

func alnum(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r >= 0x80 {
			return r
		}
		return -1
	}, s)
}

func (f *filter) substr(v string) bool {
	if !strings.HasPrefix(v, f.initial) {
		return false
	}
	v = v[len(f.initial):]
	for _, a := range f.any {
		i := strings.Index(v, a)
		if i < 0 {
			return false
		}
		v = v[i+len(a):]
	}
	return strings.HasSuffix(v, f.final)
}

func (f *filter) order(a *entryAttr) tri {
	switch f.at.match {
	case matchCaseIgnore:
		if a == nil {
			return triFalse
		}
		for _, v := range a.all() {
			if c := strings.Compare(v, f.value); f.kind == fGreater && c >= 0 || f.kind == fLess && c <= 0 {
				return triTrue
			}
		}
		return triFalse
	case matchInteger:
		return anyInteger(a, func(n int64) bool { return f.kind == fGreater && n >= f.num || f.kind == fLess && n <= f.num })
	}
	return triUndef
}

func (f *filter) evalExtensible(e *Entry) tri {
	if f.rule == "certificateexactmatch" || f.cert != nil {
		if f.cert == nil {
			return triUndef
		}
		for i := range e.attrs {
			a := &e.attrs[i]
			if a.at.match == matchCertificate && (f.at == nil || f.at == a.at) {
				for _, c := range a.certList() {
					if c.match(f.cert) {
						return triTrue
					}
				}
			}
		}
		return triFalse
	}
	var cmp func(v []byte, norm string) bool
	switch f.rule {
	case "", "caseignorematch", "caseignoreia5match", "distinguishednamematch", "objectidentifiermatch":
		cmp = func(_ []byte, norm string) bool { return norm == f.value }
	case "caseexactmatch":
		cmp = func(v []byte, _ string) bool { return bytes.Equal(v, f.raw) }
	case "integermatch":
		cmp = func(v []byte, _ string) bool { return string(v) == string(f.raw) }
	default:
		return triUndef
	}
	for i := range e.attrs {
		a := &e.attrs[i]
		if f.at != nil && a.at != f.at || !a.at.normalizes() {
			continue
		}
		for v, n := range a.all() {
			if cmp(v, n) {
				return triTrue
			}
		}
	}
	if f.dnAttrs {
		rdns, _ := parseDN(e.DN) // rare: the entry does not keep its RDNs parsed
		for _, r := range rdns {
			for _, av := range r {
				if f.at != nil && !strings.EqualFold(av.attr, f.at.name) {
					continue
				}
				if cmp([]byte(av.value), normalize(av.value)) {
					return triTrue
				}
			}
		}
	}
	if f.at != nil && f.desc != "" && e.attr(f.at) == nil && !f.dnAttrs {
		return triFalse
	}
	return triFalse
}
