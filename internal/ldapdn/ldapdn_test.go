package ldapdn

import (
	"strings"
	"testing"
)

func TestEscapeValue(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"ok/plain", "Alice Zhang", "Alice Zhang"},
		{"ok/empty", "", ""},
		{"ok/unicode", "张三", "张三"},
		{"escape/specials", `a,b+c"d\e<f>g;h=i`, `a\,b\+c\"d\\e\<f\>g\;h\=i`},
		{"escape/leading space", " x", `\ x`},
		{"escape/leading hash", "#x", `\#x`},
		{"escape/trailing space", "x ", `x\ `},
		{"escape/one space", " ", `\ `},
		{"escape/inner hash and space untouched", "a #b", "a #b"},
		{"escape/NUL", "a\x00b", `a\00b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := EscapeValue(tc.in); got != tc.want {
				t.Errorf("EscapeValue(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// unescape reverses EscapeValue's output (the subset of RFC 4514 it writes).
func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", false
		}
		if s[i+1] == '0' && i+2 < len(s) && s[i+2] == '0' {
			b.WriteByte(0)
			i += 2
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String(), true
}

func FuzzEscapeValue(f *testing.F) {
	for _, s := range []string{"", "a", " #x ", `,+"\<>;=`, "a\x00b", "\\00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		e := EscapeValue(v)
		if strings.IndexByte(e, 0) >= 0 {
			t.Fatalf("EscapeValue(%q) = %q carries a raw NUL", v, e)
		}
		if got, ok := unescape(e); !ok || got != v {
			t.Fatalf("EscapeValue(%q) = %q, which reads back as %q", v, e, got)
		}
		for i := 0; i < len(e); i++ {
			if e[i] == '\\' {
				i++
				continue
			}
			if strings.IndexByte(specials, e[i]) >= 0 {
				t.Fatalf("EscapeValue(%q) = %q leaves %q unescaped", v, e, e[i])
			}
		}
	})
}
