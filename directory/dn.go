package directory

import (
	"errors"
	"sort"
	"strings"

	"github.com/certcenter/certcenter/internal/ldapdn"
)

// ava is one attribute=value of an RDN, with the type resolved to its
// canonical lower-case name and the value unescaped.
type ava struct {
	attr  string
	value string
}

var errDNSyntax = errors.New("invalid DN syntax")

// parseDN parses an RFC 4514 DN string into RDNs, most specific first.
func parseDN(s string) ([][]ava, error) {
	var rdns [][]ava
	var cur []ava
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for i := 0; ; {
		// attribute type
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ',' && s[j] != '+' {
			j++
		}
		if j >= len(s) || s[j] != '=' {
			return nil, errDNSyntax
		}
		typ := strings.TrimSpace(s[i:j])
		if typ == "" {
			return nil, errDNSyntax
		}
		if at := attrByName[strings.ToLower(typ)]; at != nil {
			typ = at.name
		}
		typ = strings.ToLower(typ)
		// value
		var v strings.Builder
		k := j + 1
		for k < len(s) && s[k] == ' ' {
			k++
		}
		trailing := 0 // count of unescaped trailing spaces to trim
		for k < len(s) && s[k] != ',' && s[k] != '+' && s[k] != ';' {
			c := s[k]
			if c == '\\' {
				if k+1 >= len(s) {
					return nil, errDNSyntax
				}
				if h, ok := unhex2(s, k+1); ok {
					v.WriteByte(h)
					k += 3
				} else {
					v.WriteByte(s[k+1])
					k += 2
				}
				trailing = 0
				continue
			}
			if c == ' ' {
				trailing++
			} else {
				trailing = 0
			}
			v.WriteByte(c)
			k++
		}
		val := v.String()
		val = val[:len(val)-trailing]
		cur = append(cur, ava{attr: typ, value: val})
		if k >= len(s) {
			rdns = append(rdns, cur)
			return rdns, nil
		}
		if s[k] != '+' {
			rdns = append(rdns, cur)
			cur = nil
		}
		i = k + 1
		if strings.TrimSpace(s[i:]) == "" {
			return nil, errDNSyntax
		}
	}
}

func unhex2(s string, i int) (byte, bool) {
	if i+1 >= len(s) {
		return 0, false
	}
	hi, ok1 := unhex(s[i])
	lo, ok2 := unhex(s[i+1])
	return hi<<4 | lo, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normRDNs renders parsed RDNs in the normalized form used as map keys:
// types lower-case canonical, values case-folded, multi-valued RDNs sorted.
func normRDNs(rdns [][]ava) string {
	var b strings.Builder
	for i, r := range rdns {
		if i > 0 {
			b.WriteByte(',')
		}
		parts := make([]string, len(r))
		for j, a := range r {
			parts[j] = a.attr + "=" + ldapdn.EscapeValue(normalize(a.value))
		}
		sort.Strings(parts)
		b.WriteString(strings.Join(parts, "+"))
	}
	return b.String()
}

// normDN normalizes a DN string; ok is false if it does not parse.
func normDN(s string) (string, bool) {
	rdns, err := parseDN(s)
	if err != nil {
		return "", false
	}
	return normRDNs(rdns), true
}

// mustNorm normalizes a DN the directory built itself.
func mustNorm(s string) string {
	n, ok := normDN(s)
	if !ok {
		return strings.ToLower(s)
	}
	return n
}

// isUnder reports whether the normalized DN child is base or below it.
func isUnder(child, base string) bool {
	if base == "" {
		return true
	}
	return child == base || strings.HasSuffix(child, ","+base)
}

// parentOf returns the normalized parent of a normalized DN built by the
// directory (whose values never contain an escaped comma before the first
// RDN separator... unless escaped, which this accounts for).
func parentOf(n string) string {
	for i := 0; i < len(n); i++ {
		switch n[i] {
		case '\\':
			i++
		case ',':
			return n[i+1:]
		}
	}
	return ""
}
