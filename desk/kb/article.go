package kb

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Languages of articles.
const (
	LangZH = "zh"
	LangEN = "en"
)

// Levels say who may read an article, from the widest audience to the
// narrowest: the public self-service search sees only LevelPublic; hotline
// agents also LevelAgent; engineers, the technical centre and supervisors
// everything.
const (
	LevelPublic   = "public"
	LevelAgent    = "agent"
	LevelEngineer = "engineer"
)

// Levels in order of audience.
var Levels = []string{LevelPublic, LevelAgent, LevelEngineer}

// DefaultCategories is the support scope of SPEC Art. 5-6 as a tree: a
// child is "<parent>/<child>", and a search filtered by a parent finds its
// children's articles too.
var DefaultCategories = []string{
	"cert_management",
	"cert_use",
	"token_use",
	"online_platform",
	"systems",
	"systems/ra",
	"systems/acceptance",
	"systems/ldap",
	"systems/ocsp",
	"systems/information_service",
	"middleware",
	"middleware/client",
	"middleware/server",
	"middleware/server_certificate",
	"middleware/sign_verify",
}

// Limits of an article and of a query.
const (
	MaxTitleBytes = 512
	// DefaultMaxBodyBytes bounds an article's body unless Options says
	// otherwise.
	DefaultMaxBodyBytes = 64 << 10
	MaxTags             = 20
	MaxTagBytes         = 64
	MaxQueryBytes       = 256
	MaxLimit            = 50
	MaxOffset           = 1000
)

// ArticleInput is what a client sends to create or update an article.
type ArticleInput struct {
	Lang     string   `json:"lang"`
	Title    string   `json:"title"`
	Body     string   `json:"body"`
	Category string   `json:"category"`
	Level    string   `json:"level"`
	Tags     []string `json:"tags,omitempty"`
	// Translation is the ID of the same article in the other language.
	Translation string `json:"translation,omitempty"`
}

// InputError is bad input: an API 400 with Reason.
type InputError struct{ Reason string }

func (e *InputError) Error() string { return e.Reason }

func bad(format string, a ...any) error { return &InputError{Reason: fmt.Sprintf(format, a...)} }

// DecodeArticle reads an ArticleInput from JSON strictly (unknown fields
// and trailing data are errors) and checks it against the categories and
// the body limit.
func DecodeArticle(b []byte, categories []string, maxBody int) (*ArticleInput, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	var in ArticleInput
	if err := dec.Decode(&in); err != nil {
		return nil, bad("invalid article JSON: %v", err)
	}
	if dec.More() {
		return nil, bad("invalid article JSON: data after the JSON value")
	}
	if err := in.Check(categories, maxBody); err != nil {
		return nil, err
	}
	return &in, nil
}

// Check validates and normalises in (trims the title, lower-cases and
// de-duplicates tags).
func (in *ArticleInput) Check(categories []string, maxBody int) error {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	if in.Lang != LangZH && in.Lang != LangEN {
		return bad("lang %q: want %q or %q", in.Lang, LangZH, LangEN)
	}
	in.Title = strings.TrimSpace(in.Title)
	switch {
	case in.Title == "":
		return bad("title is empty")
	case len(in.Title) > MaxTitleBytes:
		return bad("title is %d bytes, at most %d", len(in.Title), MaxTitleBytes)
	case !printable(in.Title, false):
		return bad("title has invalid UTF-8 or control characters")
	}
	switch {
	case strings.TrimSpace(in.Body) == "":
		return bad("body is empty")
	case len(in.Body) > maxBody:
		return bad("body is %d bytes, at most %d", len(in.Body), maxBody)
	case !printable(in.Body, true):
		return bad("body has invalid UTF-8 or control characters")
	}
	if !slices.Contains(categories, in.Category) {
		return bad("unknown category %q: one of %s", in.Category, strings.Join(categories, ", "))
	}
	if !slices.Contains(Levels, in.Level) {
		return bad("unknown level %q: one of %s", in.Level, strings.Join(Levels, ", "))
	}
	if len(in.Tags) > MaxTags {
		return bad("%d tags, at most %d", len(in.Tags), MaxTags)
	}
	tags := make([]string, 0, len(in.Tags))
	for _, t := range in.Tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" || len(t) > MaxTagBytes || !printable(t, false) {
			return bad("tag %q: want 1 to %d printable bytes", t, MaxTagBytes)
		}
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	in.Tags = tags
	if in.Translation != "" && !validID(in.Translation) {
		return bad("translation %q is not an article ID", in.Translation)
	}
	return nil
}

// printable says s is valid UTF-8 without control characters (newlines
// and tabs allowed when multiline).
func printable(s string, multiline bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validID says s looks like an article ID ("kb-000123").
func validID(s string) bool {
	if len(s) < 4 || len(s) > 32 || !strings.HasPrefix(s, "kb-") {
		return false
	}
	for _, r := range s[3:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ErrNotFound is returned for an article that does not exist (or, to a
// reader who may not see its level, seems not to).
var ErrNotFound = errors.New("no such article")

// levelsUpTo returns the levels from public up to and including max.
func levelsUpTo(max string) []string {
	i := slices.Index(Levels, max)
	if i < 0 {
		return nil
	}
	return Levels[:i+1]
}
