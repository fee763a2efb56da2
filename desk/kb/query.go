package kb

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Query is one search.
type Query struct {
	// Text is plain words (no query syntax): Chinese is matched by
	// overlapping character pairs, English by stemmed words.
	Text string
	// Lang, Category and Level filter when set; a Category includes its
	// children ("systems" finds "systems/ldap").
	Lang, Category, Level string
	// Levels are the levels the reader may see; the caller sets them from
	// who asks, never from the request. Empty means every level.
	Levels []string
	// Limit is how many hits (1..MaxLimit, default 10), Offset how many to
	// skip (0..MaxOffset).
	Limit, Offset int
}

// ParseQuery reads a Query from URL parameters q, lang, category, level,
// limit and offset. Unknown parameters are errors, so a misspelt filter is
// not silently ignored.
func ParseQuery(v url.Values, categories []string) (Query, error) {
	for k := range v {
		switch k {
		case "q", "lang", "category", "level", "limit", "offset":
			if len(v[k]) != 1 {
				return Query{}, bad("parameter %s given %d times", k, len(v[k]))
			}
		default:
			return Query{}, bad("unknown parameter %q: q, lang, category, level, limit, offset", k)
		}
	}
	q := Query{Text: v.Get("q"), Lang: v.Get("lang"), Category: v.Get("category"), Level: v.Get("level"), Limit: 10}
	var err error
	if s := v.Get("limit"); s != "" {
		if q.Limit, err = strconv.Atoi(s); err != nil {
			return Query{}, bad("limit %q is not a number", s)
		}
	}
	if s := v.Get("offset"); s != "" {
		if q.Offset, err = strconv.Atoi(s); err != nil {
			return Query{}, bad("offset %q is not a number", s)
		}
	}
	return q, q.Check(categories)
}

// Check validates q and trims its text.
func (q *Query) Check(categories []string) error {
	q.Text = strings.TrimSpace(q.Text)
	switch {
	case q.Text == "":
		return bad("query text q is empty")
	case len(q.Text) > MaxQueryBytes:
		return bad("query text is %d bytes, at most %d", len(q.Text), MaxQueryBytes)
	case !printable(q.Text, false):
		return bad("query text has invalid UTF-8 or control characters")
	}
	if q.Lang != "" && q.Lang != LangZH && q.Lang != LangEN {
		return bad("lang %q: want %q or %q", q.Lang, LangZH, LangEN)
	}
	if q.Category != "" && !slices.Contains(categories, q.Category) {
		return bad("unknown category %q: one of %s", q.Category, strings.Join(categories, ", "))
	}
	if q.Level != "" && !slices.Contains(Levels, q.Level) {
		return bad("unknown level %q: one of %s", q.Level, strings.Join(Levels, ", "))
	}
	if q.Limit == 0 {
		q.Limit = 10
	}
	if q.Limit < 1 || q.Limit > MaxLimit {
		return bad("limit %d: 1 to %d", q.Limit, MaxLimit)
	}
	if q.Offset < 0 || q.Offset > MaxOffset {
		return bad("offset %d: 0 to %d", q.Offset, MaxOffset)
	}
	return nil
}
