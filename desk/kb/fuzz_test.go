package kb

import (
	"errors"
	"net/url"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzDecodeArticle: any body is either refused with an InputError or
// gives an article that passes its own checks again.
func FuzzDecodeArticle(f *testing.F) {
	for _, s := range []string{
		`{"lang":"zh","title":"忘记口令","body":"请到受理点解锁。","category":"token_use","level":"public","tags":["PIN"]}`,
		`{"lang":"en","title":"t","body":"b","category":"systems/ocsp","level":"engineer","translation":"kb-000001"}`,
		`{"lang":"en","title":"","body":"b","category":"cert_use","level":"public"}`,
		`{"lang":"en"}{"lang":"zh"}`,
		`{"lang":"en","title":"a\u0000b"}`,
		`[]`, ``, `null`, `{"tags":[""]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := DecodeArticle(b, DefaultCategories, 1024)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InputError", err)
			}
			return
		}
		if in.Title == "" || len(in.Body) > 1024 || !utf8.ValidString(in.Title+in.Body) ||
			!slices.Contains(DefaultCategories, in.Category) || !slices.Contains(Levels, in.Level) {
			t.Fatalf("accepted %+v", in)
		}
		again := *in
		if err := again.Check(DefaultCategories, 1024); err != nil {
			t.Fatalf("accepted article fails its check again: %v", err)
		}
	})
}

// FuzzParseQuery: any query string is refused with an InputError or gives a
// query within the limits, which the analyzers take without failing.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{"q=%E5%8F%A3%E4%BB%A4", "q=revoked+certificates&lang=en&limit=5", "q=x&category=systems&level=agent&offset=10",
		"q=", "q=a&q=b", "q=a&limit=-1", "q=%ff", "q=a&foo=1", "q=a:b+AND+(c", "q=" + url.QueryEscape("\"unterminated")} {
		f.Add(s)
	}
	e := newEnv(f)
	k := e.open(f)
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := ParseQuery(v, DefaultCategories)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an InputError", err)
			}
			return
		}
		if q.Text == "" || len(q.Text) > MaxQueryBytes || q.Limit < 1 || q.Limit > MaxLimit || q.Offset < 0 || q.Offset > MaxOffset {
			t.Fatalf("accepted %+v", q)
		}
		if _, err := k.Find(t.Context(), q); err != nil {
			t.Fatalf("searching accepted query %+v: %v", q, err)
		}
	})
}
