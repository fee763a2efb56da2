// Package kb is the service desk's knowledge base (SPEC Art. 15-17:
// training material and FAQ for the hotline, engineers and self-service).
//
// Articles are store records (store.KBArticle), in Chinese or English, with
// a category from the support scope and a level that says who may read
// them. The store is the source of truth; the full-text index (bleve, CJK
// bigrams for Chinese, the English analyzer for English) is derived from it
// and kept in step by dirty marks the store writes with every article: the
// index removes a mark once it holds that version, and at start (and every
// Options.CatchUpEvery) it indexes whatever marks remain, so a crash between
// the store's commit and the index costs only the articles it left. An index
// that is missing, unreadable or of another schema is rebuilt from the
// store.
//
// It serves the staff search, the public self-service search (public
// articles only, rate-limited per client address) and the routes that
// create, update and retire articles (audited). It does not know tickets:
// the desk calls Search through an interface of its own.
package kb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/highlight/highlighter/html"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

// Options configure a KB.
type Options struct {
	Store *store.Store
	// Audit records every change; nil records nothing (tests of search only).
	Audit *audit.Log
	// IndexPath is the bleve index directory (server: <data_dir>/kb.bleve);
	// "" keeps the index in memory (bleve's upsidedown on gtreap, rebuilt at
	// every start: slower and bigger than on disk, see bench/README.md).
	IndexPath string
	// Categories are the allowed categories; default DefaultCategories.
	Categories []string
	// MaxBodyBytes bounds an article's body; default DefaultMaxBodyBytes.
	MaxBodyBytes int
	// CatchUpEvery is how often Run indexes articles whose indexing failed
	// after their commit; default 30s.
	CatchUpEvery time.Duration
	Logger       *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// KB is the knowledge base. It is safe for concurrent use.
type KB struct {
	opts Options
	log  *slog.Logger
	idx  bleve.Index
	// mu serialises index writes, so the index always ends with the
	// newest version the store had when the last writer read it.
	mu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

// New checks o and returns a KB whose index Start opens.
func New(o Options) (*KB, error) {
	if o.Store == nil {
		return nil, errors.New("knowledge base: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.Categories) == 0 {
		o.Categories = DefaultCategories
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.CatchUpEvery <= 0 {
		o.CatchUpEvery = 30 * time.Second
	}
	return &KB{opts: o, log: o.Logger.With("component", "kb")}, nil
}

// Open is New and Start.
func Open(ctx context.Context, o Options) (*KB, error) {
	k, err := New(o)
	if err != nil {
		return nil, err
	}
	if err := k.Start(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Start opens the index, or builds it from the store when it is missing,
// unreadable or of another schema, and indexes what the last run committed
// but did not index.
func (k *KB) Start(ctx context.Context) error {
	idx, fresh, err := openIndex(k.opts.IndexPath)
	if err != nil {
		return err
	}
	k.idx = idx
	begin := time.Now()
	if fresh {
		n, err := k.rebuild(ctx)
		if err != nil {
			idx.Close()
			return err
		}
		k.log.Info("knowledge-base index built from the store", "articles", n, "path", k.opts.IndexPath, "took", time.Since(begin).Round(time.Millisecond))
		return nil
	}
	n, err := k.CatchUp(ctx)
	if err != nil {
		idx.Close()
		return err
	}
	if n > 0 {
		k.log.Info("knowledge-base index caught up with the store", "articles", n, "took", time.Since(begin).Round(time.Millisecond))
	}
	return nil
}

// Stop closes the index.
func (k *KB) Stop(context.Context) error { return k.Close() }

// Close closes the index; later calls do nothing.
func (k *KB) Close() error {
	if k.idx == nil {
		return nil
	}
	k.closeOnce.Do(func() { k.closeErr = k.idx.Close() })
	return k.closeErr
}

// Categories are the allowed categories.
func (k *KB) Categories() []string { return k.opts.Categories }

// Run indexes, every CatchUpEvery, the articles whose indexing failed after
// their commit, until ctx ends.
func (k *KB) Run(ctx context.Context) error {
	t := time.NewTicker(k.opts.CatchUpEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if _, err := k.CatchUp(ctx); err != nil && ctx.Err() == nil {
				k.log.Error("knowledge-base index catch-up failed", "err", err)
			}
		}
	}
}

// rebuildBatch is how many articles go to the index per batch when
// rebuilding: each batch is one persisted segment.
const rebuildBatch = 1000

// rebuild fills a fresh index from the store, then marks it with the
// schema: a crash before that mark rebuilds again.
func (k *KB) rebuild(ctx context.Context) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var n int
	indexed := map[string]uint64{}
	b := k.idx.NewBatch()
	flush := func() error {
		if b.Size() == 0 {
			return nil
		}
		if err := k.idx.Batch(b); err != nil {
			return fmt.Errorf("rebuilding the knowledge-base index: %w", err)
		}
		b.Reset()
		return nil
	}
	err := k.opts.Store.View(ctx, func(tx *store.Tx) error {
		return tx.EachKBArticle(func(a *store.KBArticle) error {
			indexed[a.ID] = a.Version
			if a.Retired {
				return nil
			}
			n++
			if err := b.Index(a.ID, indexDoc(a)); err != nil {
				return fmt.Errorf("indexing article %s: %w", a.ID, err)
			}
			if b.Size() >= rebuildBatch {
				return flush()
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	b.SetInternal(schemaKey, []byte(schemaVersion))
	if err := flush(); err != nil {
		return 0, err
	}
	return n, k.clearMarks(ctx, indexed)
}

// CatchUp indexes the articles whose dirty mark is still in the store and
// returns how many it indexed: the time it takes is proportional to what
// the index missed, not to the size of the knowledge base.
func (k *KB) CatchUp(ctx context.Context) (int, error) {
	var ids []string
	if err := k.opts.Store.View(ctx, func(tx *store.Tx) error {
		return tx.EachKBDirty(func(id string, _ uint64) error {
			ids = append(ids, id)
			return nil
		})
	}); err != nil {
		return 0, fmt.Errorf("reading the knowledge-base dirty marks: %w", err)
	}
	for chunk := range slices.Chunk(ids, rebuildBatch) {
		if err := k.sync(ctx, chunk...); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// sync puts the store's current version of each article into the index
// (a retired article is taken out) and clears their dirty marks.
func (k *KB) sync(ctx context.Context, ids ...string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.idx.NewBatch()
	indexed := map[string]uint64{}
	if err := k.opts.Store.View(ctx, func(tx *store.Tx) error {
		for _, id := range ids {
			a, err := tx.KBArticle(id)
			if errors.Is(err, store.ErrNotFound) {
				b.Delete(id)
				continue
			} else if err != nil {
				return err
			}
			indexed[id] = a.Version
			if a.Retired {
				b.Delete(id)
				continue
			}
			if err := b.Index(id, indexDoc(a)); err != nil {
				return fmt.Errorf("indexing article %s: %w", id, err)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// Batch returns once the segment is persisted (bleve's default, not
	// "unsafe_batch"), so the marks are cleared only for what is on disk.
	if err := k.idx.Batch(b); err != nil {
		return fmt.Errorf("indexing articles %s: %w", strings.Join(ids, ", "), err)
	}
	return k.clearMarks(ctx, indexed)
}

func (k *KB) clearMarks(ctx context.Context, indexed map[string]uint64) error {
	for chunk := range slices.Chunk(sortedKeys(indexed), rebuildBatch) {
		if err := k.opts.Store.Update(ctx, func(tx *store.Tx) error {
			for _, id := range chunk {
				if err := tx.ClearKBDirty(id, indexed[id]); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("clearing knowledge-base dirty marks: %w", err)
		}
	}
	return nil
}

func sortedKeys(m map[string]uint64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// ---- writes ----

// Create stores a new article written by actor ("staff:<id>") and indexes
// it. The article is saved once Create returns without error, even if
// indexing failed (it is logged and retried by Run and at the next start).
func (k *KB) Create(ctx context.Context, actor string, in *ArticleInput) (*store.KBArticle, error) {
	if err := in.Check(k.opts.Categories, k.opts.MaxBodyBytes); err != nil {
		return nil, err
	}
	n, err := k.opts.Store.Next("kb-article")
	if err != nil {
		return nil, fmt.Errorf("numbering the article: %w", err)
	}
	now := k.opts.Now().UTC()
	a := &store.KBArticle{ID: fmt.Sprintf("kb-%06d", n), Version: 1, CreatedAt: now, CreatedBy: actor, UpdatedAt: now, UpdatedBy: actor}
	apply(a, in)
	return k.write(ctx, audit.Record{Actor: actor, Action: "kb.create", Object: "kb/" + a.ID}, func(tx *store.Tx) (*store.KBArticle, error) {
		if ok, err := tx.KBArticle(a.ID); err == nil {
			return nil, fmt.Errorf("article %s exists (version %d): %w", a.ID, ok.Version, store.ErrExists)
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return a, k.checkTranslation(tx, a)
	})
}

// Update replaces an article's content. A retired article cannot be
// updated.
func (k *KB) Update(ctx context.Context, actor, id string, in *ArticleInput) (*store.KBArticle, error) {
	if err := in.Check(k.opts.Categories, k.opts.MaxBodyBytes); err != nil {
		return nil, err
	}
	return k.write(ctx, audit.Record{Actor: actor, Action: "kb.update", Object: "kb/" + id}, func(tx *store.Tx) (*store.KBArticle, error) {
		a, err := k.current(tx, id)
		if err != nil {
			return nil, err
		}
		if a.Retired {
			return nil, &StateError{Reason: "article " + id + " is retired"}
		}
		apply(a, in)
		a.Version++
		a.UpdatedAt, a.UpdatedBy = k.opts.Now().UTC(), actor
		return a, k.checkTranslation(tx, a)
	})
}

// Retire takes an article out of every search; it stays in the store and
// in the audit log.
func (k *KB) Retire(ctx context.Context, actor, id, reason string) (*store.KBArticle, error) {
	return k.write(ctx, audit.Record{Actor: actor, Action: "kb.retire", Object: "kb/" + id, Details: map[string]string{"reason": reason}}, func(tx *store.Tx) (*store.KBArticle, error) {
		a, err := k.current(tx, id)
		if err != nil {
			return nil, err
		}
		if a.Retired {
			return nil, &StateError{Reason: "article " + id + " is already retired"}
		}
		a.Retired = true
		a.Version++
		a.RetiredAt, a.RetiredBy = k.opts.Now().UTC(), actor
		a.UpdatedAt, a.UpdatedBy = a.RetiredAt, actor
		return a, nil
	})
}

// StateError is a change the article's state does not allow: an API 409.
type StateError struct{ Reason string }

func (e *StateError) Error() string { return e.Reason }

func (k *KB) current(tx *store.Tx, id string) (*store.KBArticle, error) {
	a, err := tx.KBArticle(id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("article %s: %w", id, ErrNotFound)
	}
	return a, err
}

func (k *KB) checkTranslation(tx *store.Tx, a *store.KBArticle) error {
	if a.Translation == "" {
		return nil
	}
	if a.Translation == a.ID {
		return bad("translation %s is the article itself", a.Translation)
	}
	t, err := tx.KBArticle(a.Translation)
	if errors.Is(err, store.ErrNotFound) {
		return bad("translation %s: no such article", a.Translation)
	} else if err != nil {
		return err
	}
	if t.Lang == a.Lang {
		return bad("translation %s is in %s too", t.ID, t.Lang)
	}
	return nil
}

// write commits the article fn returns (fn runs inside the transaction
// and checks what it needs) with its audit entry, then indexes it.
func (k *KB) write(ctx context.Context, rec audit.Record, fn func(tx *store.Tx) (*store.KBArticle, error)) (*store.KBArticle, error) {
	var entry *store.AuditEntry
	var a *store.KBArticle
	err := k.opts.Store.Update(ctx, func(tx *store.Tx) error {
		entry = nil
		var err error
		if a, err = fn(tx); err != nil {
			return err
		}
		if err := tx.PutKBArticle(a); err != nil {
			return err
		}
		if k.opts.Audit == nil {
			return nil
		}
		r := rec
		r.Details = details(a)
		maps.Copy(r.Details, rec.Details)
		entry, err = k.opts.Audit.AppendTx(tx, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	if entry != nil {
		k.opts.Audit.Logged(entry)
	}
	// The article is committed: index it even if the caller has gone.
	if err := k.sync(context.WithoutCancel(ctx), a.ID); err != nil {
		// Saved but not yet searchable: the dirty mark stays, and Run or
		// the next start indexes it.
		k.log.Error("article saved, indexing failed; it will be retried", "id", a.ID, "err", err)
	}
	return a, nil
}

func apply(a *store.KBArticle, in *ArticleInput) {
	a.Lang, a.Title, a.Body, a.Category, a.Level = in.Lang, in.Title, in.Body, in.Category, in.Level
	a.Tags, a.Translation = in.Tags, in.Translation
}

func details(a *store.KBArticle) map[string]string {
	return map[string]string{"lang": a.Lang, "title": a.Title, "category": a.Category, "level": a.Level, "version": fmt.Sprint(a.Version)}
}

// Article reads an article; a reader limited to levels (empty: every level)
// gets ErrNotFound for one above them or retired.
func (k *KB) Article(ctx context.Context, id string, levels []string) (*store.KBArticle, error) {
	var a *store.KBArticle
	err := k.opts.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		a, err = k.current(tx, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(levels) > 0 && (a.Retired || !slices.Contains(levels, a.Level)) {
		return nil, fmt.Errorf("article %s: %w", id, ErrNotFound)
	}
	return a, nil
}

// ---- search ----

// ArticleHit is one search result.
type ArticleHit struct {
	ID       string  `json:"id"`
	Lang     string  `json:"lang"`
	Title    string  `json:"title"`
	Category string  `json:"category"`
	Level    string  `json:"level"`
	Score    float64 `json:"score"`
	// Highlights are HTML fragments (text escaped, matches in <mark>) of
	// the title and the body, under "title" and "body".
	Highlights map[string][]string `json:"highlights,omitempty"`
}

// Result is a page of hits.
type Result struct {
	Total uint64       `json:"total"`
	Hits  []ArticleHit `json:"hits"`
}

// Search finds articles for the service desk's agents, at every level (an
// engineer's view), in lang ("" for both languages); it is the shape the
// desk's ticket screens call. Find takes the reader's levels and filters.
func (k *KB) Search(ctx context.Context, text, lang string, limit int) ([]ArticleHit, error) {
	q := Query{Text: text, Lang: lang, Limit: limit}
	if q.Limit <= 0 {
		q.Limit = 10
	}
	q.Limit = min(q.Limit, MaxLimit)
	r, err := k.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	return r.Hits, nil
}

// titleBoost ranks a match in the title above matches in bodies: an
// article named for the words searched comes first.
const titleBoost = 8

// Find runs q.
func (k *KB) Find(ctx context.Context, q Query) (*Result, error) {
	if err := q.Check(k.opts.Categories); err != nil {
		return nil, err
	}
	levels := q.Levels
	if len(levels) == 0 {
		levels = Levels
	}
	if q.Level != "" {
		if !slices.Contains(levels, q.Level) {
			// A level the reader may not see is as empty as one without
			// articles: say nothing about what exists there.
			return &Result{Hits: []ArticleHit{}}, nil
		}
		levels = []string{q.Level}
	}
	langs := []string{LangZH, LangEN}
	if q.Lang != "" {
		langs = []string{q.Lang}
	}
	var text []query.Query
	for _, l := range langs {
		t := query.NewMatchQuery(q.Text)
		t.SetField(titleField(l))
		t.SetBoost(titleBoost)
		b := query.NewMatchQuery(q.Text)
		b.SetField(bodyField(l))
		text = append(text, t, b)
	}
	tag := query.NewTermQuery(strings.ToLower(q.Text))
	tag.SetField(fTags)
	tag.SetBoost(2)
	text = append(text, tag)
	must := []query.Query{query.NewDisjunctionQuery(text), terms(fLevel, levels)}
	if q.Lang != "" {
		must = append(must, terms(fLang, []string{q.Lang}))
	}
	if q.Category != "" {
		must = append(must, terms(fCategoryPath, []string{q.Category}))
	}
	req := bleve.NewSearchRequestOptions(query.NewConjunctionQuery(must), q.Limit, q.Offset, false)
	req.Fields = []string{fLang, fCategory, fLevel, titleField(LangZH), titleField(LangEN)}
	req.Highlight = bleve.NewHighlightWithStyle(html.Name)
	for _, l := range langs {
		req.Highlight.AddField(titleField(l))
		req.Highlight.AddField(bodyField(l))
	}
	res, err := k.idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("searching the knowledge base: %w", err)
	}
	out := &Result{Total: res.Total, Hits: make([]ArticleHit, 0, len(res.Hits))}
	for _, h := range res.Hits {
		out.Hits = append(out.Hits, hit(h))
	}
	return out, nil
}

func terms(field string, vals []string) query.Query {
	qs := make([]query.Query, len(vals))
	for i, v := range vals {
		t := query.NewTermQuery(v)
		t.SetField(field)
		qs[i] = t
	}
	if len(qs) == 1 {
		return qs[0]
	}
	return query.NewDisjunctionQuery(qs)
}

func hit(h *search.DocumentMatch) ArticleHit {
	s := func(f string) string { v, _ := h.Fields[f].(string); return v }
	out := ArticleHit{ID: h.ID, Lang: s(fLang), Category: s(fCategory), Level: s(fLevel), Score: h.Score}
	out.Title = s(titleField(out.Lang))
	for f, frags := range h.Fragments {
		key := "body"
		if strings.HasPrefix(f, "title_") {
			key = "title"
		}
		for _, fr := range frags {
			// bleve gives a field with no match its opening as a
			// fragment: not a highlight.
			if !strings.Contains(fr, "<mark>") {
				continue
			}
			if out.Highlights == nil {
				out.Highlights = map[string][]string{}
			}
			out.Highlights[key] = append(out.Highlights[key], fr)
		}
	}
	return out
}

// IndexStats describe the index.
type IndexStats struct {
	Docs      uint64 `json:"docs"`
	DiskBytes int64  `json:"disk_bytes"`
}

// Stats counts the indexed articles and the index's bytes on disk (0 in
// memory).
func (k *KB) Stats() (IndexStats, error) {
	n, err := k.idx.DocCount()
	if err != nil {
		return IndexStats{}, err
	}
	st := IndexStats{Docs: n}
	if k.opts.IndexPath != "" {
		if st.DiskBytes, err = dirSize(k.opts.IndexPath); err != nil {
			return st, err
		}
	}
	return st, nil
}
