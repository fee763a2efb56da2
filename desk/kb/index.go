package kb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/keyword"
	"github.com/blevesearch/bleve/v2/analysis/lang/cjk"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/mapping"

	"github.com/certcenter/certcenter/store"
)

// schemaVersion names the index mapping below. An index on disk written
// with another mapping is rebuilt from the store at start; change it with
// the mapping.
const schemaVersion = "kb-1"

// schemaKey is the bleve internal key holding schemaVersion.
var schemaKey = []byte("certcenter-kb-schema")

// Field names of the index document. Title and body go to the field of
// their language, so each is analysed once by the right analyzer: Chinese
// by bleve's CJK analyzer (overlapping character pairs, so a two-character
// word inside a sentence is a term), English by its English analyzer
// (stop words, Porter stemming).
const (
	fLang         = "lang"
	fCategory     = "category"
	fCategoryPath = "category_path"
	fLevel        = "level"
	fTags         = "tags"
)

func titleField(lang string) string { return "title_" + lang }
func bodyField(lang string) string  { return "body_" + lang }

func newMapping() *mapping.IndexMappingImpl {
	kw := func(store bool) *mapping.FieldMapping {
		f := bleve.NewKeywordFieldMapping()
		f.Store = store
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}
	text := func(analyzer string) *mapping.FieldMapping {
		f := bleve.NewTextFieldMapping()
		f.Analyzer = analyzer
		f.Store = true // highlights are cut from the stored text
		f.IncludeTermVectors = true
		f.IncludeInAll = false
		f.DocValues = false
		return f
	}
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(fLang, kw(true))
	doc.AddFieldMappingsAt(fCategory, kw(true))
	doc.AddFieldMappingsAt(fCategoryPath, kw(false))
	doc.AddFieldMappingsAt(fLevel, kw(true))
	doc.AddFieldMappingsAt(fTags, kw(false))
	doc.AddFieldMappingsAt(titleField(LangZH), text(cjk.AnalyzerName))
	doc.AddFieldMappingsAt(bodyField(LangZH), text(cjk.AnalyzerName))
	doc.AddFieldMappingsAt(titleField(LangEN), text(en.AnalyzerName))
	doc.AddFieldMappingsAt(bodyField(LangEN), text(en.AnalyzerName))
	m := bleve.NewIndexMapping()
	m.DefaultMapping = doc
	m.DefaultAnalyzer = keyword.Name
	m.StoreDynamic = false
	m.IndexDynamic = false
	m.DocValuesDynamic = false
	return m
}

// indexDoc is what an article is in the index.
func indexDoc(a *store.KBArticle) map[string]any {
	var path []string
	parts := strings.Split(a.Category, "/")
	for i := range parts {
		path = append(path, strings.Join(parts[:i+1], "/"))
	}
	return map[string]any{
		fLang:              a.Lang,
		fCategory:          a.Category,
		fCategoryPath:      path,
		fLevel:             a.Level,
		fTags:              a.Tags,
		titleField(a.Lang): a.Title,
		bodyField(a.Lang):  a.Body,
	}
}

// openIndex opens the index at path ("" keeps it in memory), or creates an
// empty one when it is missing, unreadable or of another schema; fresh
// says the caller must fill it from the store.
func openIndex(path string) (idx bleve.Index, fresh bool, err error) {
	if path == "" {
		idx, err = bleve.NewMemOnly(newMapping())
		return idx, true, err
	}
	idx, err = bleve.Open(path)
	if err == nil {
		v, gerr := idx.GetInternal(schemaKey)
		if gerr == nil && string(v) == schemaVersion {
			return idx, false, nil
		}
		idx.Close()
		err = fmt.Errorf("schema %q, want %q (%v)", v, schemaVersion, gerr)
	}
	if _, serr := os.Stat(path); serr == nil {
		// Derived data only: the store has every article.
		if rerr := os.RemoveAll(path); rerr != nil {
			return nil, false, fmt.Errorf("removing unusable knowledge-base index %s (%v): %w", path, err, rerr)
		}
	} else if !errors.Is(serr, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("knowledge-base index %s: %w", path, serr)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("creating the knowledge-base index's directory: %w", err)
	}
	idx, err = bleve.New(path, newMapping())
	if err != nil {
		return nil, false, fmt.Errorf("creating knowledge-base index %s: %w", path, err)
	}
	return idx, true, nil
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}
