// Package ldapdn writes RFC 4514 distinguished-name strings. It is the one
// escaper: ca names the directory entries of its CAs with it and directory
// names every entry it serves with it, so the two always agree on a DN.
package ldapdn

import "strings"

// specials are the characters RFC 4514 §2.4 escapes anywhere in a value.
const specials = ",+\"\\<>;="

// EscapeValue escapes an attribute value for an RFC 4514 string: the
// specials with a backslash, a leading space or '#' and a trailing space,
// and NUL as \00 (RFC 4514 §2.4 requires it; a backslash before a raw NUL
// would still carry the NUL).
func EscapeValue(v string) string {
	need := v != "" && (v[0] == ' ' || v[0] == '#' || v[len(v)-1] == ' ')
	for i := 0; !need && i < len(v); i++ {
		need = strings.IndexByte(specials, v[i]) >= 0 || v[i] == 0
	}
	if !need {
		return v
	}
	var b strings.Builder
	b.Grow(len(v) + 4)
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == 0:
			b.WriteString(`\00`)
			continue
		case strings.IndexByte(specials, c) >= 0,
			i == 0 && (c == ' ' || c == '#'),
			i == len(v)-1 && c == ' ':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
