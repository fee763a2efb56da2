package kb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/store"
)

type env struct {
	st    *store.Store
	dir   string
	audit *audit.Log
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{st: st, dir: dir, audit: audit.New(audit.Options{Store: st})}
}

func (e *env) open(t testing.TB) *KB {
	t.Helper()
	k, err := Open(context.Background(), Options{Store: e.st, Audit: e.audit, IndexPath: filepath.Join(e.dir, "kb.bleve")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func mustCreate(t *testing.T, k *KB, in ArticleInput) *store.KBArticle {
	t.Helper()
	a, err := k.Create(context.Background(), "staff:author", &in)
	if err != nil {
		t.Fatalf("creating %q: %v", in.Title, err)
	}
	return a
}

func ids(hits []ArticleHit) []string {
	var out []string
	for _, h := range hits {
		out = append(out, h.ID)
	}
	return out
}

func find(t *testing.T, k *KB, q Query) []ArticleHit {
	t.Helper()
	r, err := k.Find(context.Background(), q)
	if err != nil {
		t.Fatalf("searching %q: %v", q.Text, err)
	}
	return r.Hits
}

// The test: a two-character Chinese word inside a sentence finds
// the article, and the article with the word in its title ranks first,
// above one that repeats it in its body.
func TestChineseWordInSentenceAndTitleFirst(t *testing.T) {
	e := newEnv(t)
	k := e.open(t)
	body := mustCreate(t, k, ArticleInput{Lang: LangZH, Category: "token_use", Level: LevelPublic,
		Title: "USBKey 驱动安装说明",
		Body:  "插入介质后如果系统提示找不到设备，请先安装驱动程序。安装完成后重新插拔，再次尝试登录，登录时需要输入口令。口令连续输错会锁定，锁定后请联系管理员。"})
	title := mustCreate(t, k, ArticleInput{Lang: LangZH, Category: "token_use", Level: LevelPublic,
		Title: "忘记口令怎么办",
		Body:  "请携带有效证件到受理点办理解锁业务。"})
	mustCreate(t, k, ArticleInput{Lang: LangZH, Category: "cert_management", Level: LevelPublic,
		Title: "证书更新流程", Body: "证书到期前三十天，系统会提醒管理员提交更新申请。"})

	hits := find(t, k, Query{Text: "口令"})
	if len(hits) != 2 || hits[0].ID != title.ID || hits[1].ID != body.ID {
		t.Fatalf("口令: hits %v, want [%s (title) %s (body)]", ids(hits), title.ID, body.ID)
	}
	if !strings.Contains(strings.Join(hits[0].Highlights["title"], ""), "<mark>口令</mark>") {
		t.Errorf("title highlight %q lacks <mark>口令</mark>", hits[0].Highlights)
	}
	if !strings.Contains(strings.Join(hits[1].Highlights["body"], ""), "<mark>口令</mark>") {
		t.Errorf("body highlight %q lacks <mark>口令</mark>", hits[1].Highlights)
	}
	// 驱动 is inside 安装驱动程序 in a sentence, with no spaces around it.
	if hits := find(t, k, Query{Text: "驱动程序"}); len(hits) != 1 || hits[0].ID != body.ID {
		t.Errorf("驱动程序: hits %v, want [%s]", ids(hits), body.ID)
	}
	if hits := find(t, k, Query{Text: "提醒"}); len(hits) != 1 || hits[0].Title != "证书更新流程" {
		t.Errorf("提醒: hits %v", hits)
	}
	if hits := find(t, k, Query{Text: "天气"}); len(hits) != 0 {
		t.Errorf("天气: hits %v, want none", ids(hits))
	}
}

func TestEnglishStemmingFiltersAndLevels(t *testing.T) {
	e := newEnv(t)
	k := e.open(t)
	revoke := mustCreate(t, k, ArticleInput{Lang: LangEN, Category: "cert_management", Level: LevelPublic,
		Title: "Revoking a certificate", Body: "An administrator submits a revocation request; the CRL is updated in real time."})
	ocsp := mustCreate(t, k, ArticleInput{Lang: LangEN, Category: "systems/ocsp", Level: LevelEngineer,
		Title: "OCSP responder not responding", Body: "Check that the responder certificate was not revoked and the signer is healthy.", Tags: []string{"OCSP"}})
	zh := mustCreate(t, k, ArticleInput{Lang: LangZH, Category: "systems/ldap", Level: LevelAgent,
		Title: "LDAP 查询不到证书", Body: "确认证书已发布到目录，检查 LDAP 同步状态。", Translation: ""})

	// revoked, revocation → the stem of "revoking".
	if hits := find(t, k, Query{Text: "revoked certificates"}); len(hits) != 2 || hits[0].ID != revoke.ID {
		t.Errorf("revoked certificates: %v, want %s first of two", ids(hits), revoke.ID)
	}
	if hits := find(t, k, Query{Text: "revoke", Levels: []string{LevelPublic}}); len(hits) != 1 || hits[0].ID != revoke.ID {
		t.Errorf("public revoke: %v, want only %s", ids(hits), revoke.ID)
	}
	if hits := find(t, k, Query{Text: "responding", Category: "systems"}); len(hits) != 1 || hits[0].ID != ocsp.ID {
		t.Errorf("category systems: %v, want %s", ids(hits), ocsp.ID)
	}
	if hits := find(t, k, Query{Text: "responding", Category: "cert_management"}); len(hits) != 0 {
		t.Errorf("category cert_management: %v, want none", ids(hits))
	}
	// An English word inside Chinese text, searched in Chinese only.
	if hits := find(t, k, Query{Text: "LDAP", Lang: LangZH}); len(hits) != 1 || hits[0].ID != zh.ID {
		t.Errorf("LDAP in zh: %v, want %s", ids(hits), zh.ID)
	}
	if hits := find(t, k, Query{Text: "LDAP", Levels: []string{LevelPublic}}); len(hits) != 0 {
		t.Errorf("public sees agent article: %v", ids(hits))
	}
	if hits := find(t, k, Query{Text: "LDAP", Level: LevelAgent, Levels: []string{LevelPublic}}); len(hits) != 0 {
		t.Errorf("public asking for level agent: %v", ids(hits))
	}
	if hits := find(t, k, Query{Text: "ocsp", Level: LevelEngineer}); len(hits) != 1 {
		t.Errorf("tag ocsp: %v", ids(hits))
	}
	// Search is the desk's shape.
	if hits, err := k.Search(context.Background(), "证书", "zh", 5); err != nil || len(hits) != 1 || hits[0].ID != zh.ID {
		t.Errorf("Search 证书 zh: %v %v", hits, err)
	}
}

func TestUpdateRetireAndAudit(t *testing.T) {
	e := newEnv(t)
	k := e.open(t)
	ctx := context.Background()
	a := mustCreate(t, k, ArticleInput{Lang: LangEN, Category: "online_platform", Level: LevelPublic, Title: "Login page", Body: "Use the portal."})
	in := ArticleInput{Lang: LangEN, Category: "online_platform", Level: LevelPublic, Title: "Portal sign-in", Body: "Use a browser with the middleware installed."}
	u, err := k.Update(ctx, "staff:ed", a.ID, &in)
	if err != nil || u.Version != 2 {
		t.Fatalf("update: %v %+v", err, u)
	}
	if hits := find(t, k, Query{Text: "login"}); len(hits) != 0 {
		t.Errorf("old title still found: %v", ids(hits))
	}
	if hits := find(t, k, Query{Text: "browser"}); len(hits) != 1 {
		t.Errorf("new body not found: %v", ids(hits))
	}
	if _, err := k.Retire(ctx, "staff:ed", a.ID, "obsolete"); err != nil {
		t.Fatal(err)
	}
	if hits := find(t, k, Query{Text: "browser"}); len(hits) != 0 {
		t.Errorf("retired article found: %v", ids(hits))
	}
	var se *StateError
	if _, err := k.Retire(ctx, "staff:ed", a.ID, "again"); !errors.As(err, &se) {
		t.Errorf("second retire: %v, want StateError", err)
	}
	if _, err := k.Update(ctx, "staff:ed", a.ID, &in); !errors.As(err, &se) {
		t.Errorf("update of retired: %v, want StateError", err)
	}
	if _, err := k.Article(ctx, a.ID, []string{LevelPublic}); !errors.Is(err, ErrNotFound) {
		t.Errorf("public read of retired: %v", err)
	}
	var actions []string
	if err := e.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachAudit(func(en *store.AuditEntry) error {
			actions = append(actions, en.Action+" "+en.Object)
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	want := "kb.create kb/" + a.ID + ",kb.update kb/" + a.ID + ",kb.retire kb/" + a.ID
	if strings.Join(actions, ",") != want {
		t.Errorf("audit %v, want %s", actions, want)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	e := newEnv(t)
	k := e.open(t)
	ctx := context.Background()
	ok := ArticleInput{Lang: LangZH, Category: "cert_use", Level: LevelPublic, Title: "标题", Body: "正文"}
	for name, mod := range map[string]func(*ArticleInput){
		"fail/category":    func(a *ArticleInput) { a.Category = "weather" },
		"fail/level":       func(a *ArticleInput) { a.Level = "secret" },
		"fail/lang":        func(a *ArticleInput) { a.Lang = "fr" },
		"fail/empty title": func(a *ArticleInput) { a.Title = "  " },
		"fail/empty body":  func(a *ArticleInput) { a.Body = "" },
		"fail/oversized":   func(a *ArticleInput) { a.Body = strings.Repeat("证", DefaultMaxBodyBytes) },
		"fail/control":     func(a *ArticleInput) { a.Title = "a\x00b" },
		"fail/translation": func(a *ArticleInput) { a.Translation = "kb-999999" },
	} {
		in := ok
		mod(&in)
		_, err := k.Create(ctx, "staff:x", &in)
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: %v, want InputError", name, err)
		}
	}
	n := 0
	e.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachKBArticle(func(*store.KBArticle) error { n++; return nil })
	})
	if n != 0 {
		t.Errorf("%d articles stored after bad input", n)
	}
	for _, q := range []Query{{Text: ""}, {Text: strings.Repeat("x", MaxQueryBytes+1)}, {Text: "a", Lang: "de"},
		{Text: "a", Category: "nope"}, {Text: "a", Level: "nope"}, {Text: "a", Limit: 51}, {Text: "a", Offset: -1}, {Text: "\xff"}} {
		var ie *InputError
		if _, err := k.Find(ctx, q); !errors.As(err, &ie) {
			t.Errorf("query %+v: %v, want InputError", q, err)
		}
	}
}

// Deleting the index directory: the next start rebuilds it from the store.
func TestRebuildAfterIndexDeleted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k, err := Open(ctx, Options{Store: e.st, IndexPath: filepath.Join(e.dir, "kb.bleve")})
	if err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, k, ArticleInput{Lang: LangZH, Category: "middleware", Level: LevelAgent, Title: "签名中间件集成", Body: "服务器组件需要配置服务器证书。"})
	retired := mustCreate(t, k, ArticleInput{Lang: LangZH, Category: "middleware", Level: LevelAgent, Title: "旧版中间件", Body: "已停止支持的签名组件。"})
	if _, err := k.Retire(ctx, "staff:x", retired.ID, "old"); err != nil {
		t.Fatal(err)
	}
	k.Close()
	if err := os.RemoveAll(filepath.Join(e.dir, "kb.bleve")); err != nil {
		t.Fatal(err)
	}
	k = e.open(t)
	if hits := find(t, k, Query{Text: "签名"}); len(hits) != 1 || hits[0].ID != a.ID {
		t.Errorf("after rebuild 签名: %v, want [%s]", ids(hits), a.ID)
	}
	st, _ := k.Stats()
	if st.Docs != 1 || st.DiskBytes == 0 {
		t.Errorf("stats %+v", st)
	}
}

// A kill -9 between the store's commit and the index update: the article
// is in the store with its dirty mark and not in the index. The next start
// indexes it, and only it.
func TestCatchUpAfterCrashBetweenStoreAndIndex(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k := e.open(t)
	for i := range 5 {
		mustCreate(t, k, ArticleInput{Lang: LangEN, Category: "cert_use", Level: LevelPublic, Title: "Indexed " + string(rune('a'+i)), Body: "Already searchable."})
	}
	k.Close()
	// What Create does up to its commit, without the index.
	lost := &store.KBArticle{ID: "kb-000900", Lang: LangZH, Title: "崩溃后的文章", Body: "提交之后、索引之前进程被杀死。", Category: "cert_use", Level: LevelPublic, Version: 1}
	if err := e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutKBArticle(lost) }); err != nil {
		t.Fatal(err)
	}
	k, err := Open(ctx, Options{Store: e.st, IndexPath: filepath.Join(e.dir, "kb.bleve")})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if hits := find(t, k, Query{Text: "索引"}); len(hits) != 1 || hits[0].ID != lost.ID {
		t.Errorf("after restart 索引: %v, want [%s]", ids(hits), lost.ID)
	}
	if n, err := k.CatchUp(ctx); err != nil || n != 0 {
		t.Errorf("second catch-up indexed %d (%v), want 0: the marks were cleared", n, err)
	}
	if st, _ := k.Stats(); st.Docs != 6 {
		t.Errorf("%d documents, want 6", st.Docs)
	}
}

// An index written with another mapping is rebuilt, not trusted.
func TestSchemaChangeRebuilds(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	k := e.open(t)
	mustCreate(t, k, ArticleInput{Lang: LangEN, Category: "cert_use", Level: LevelPublic, Title: "Schema", Body: "text"})
	if err := k.idx.SetInternal(schemaKey, []byte("kb-0")); err != nil {
		t.Fatal(err)
	}
	k.Close()
	k2, err := Open(ctx, Options{Store: e.st, IndexPath: filepath.Join(e.dir, "kb.bleve")})
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	v, _ := k2.idx.GetInternal(schemaKey)
	if string(v) != schemaVersion || len(find(t, k2, Query{Text: "schema"})) != 1 {
		t.Errorf("schema %q after reopen", v)
	}
}

// BenchmarkFind: one Chinese word among 1 000 articles (bench/kb measures
// 5 000 with percentiles and memory).
func BenchmarkFind(b *testing.B) {
	e := newEnv(b)
	words := []string{"证书", "申请", "下载", "介质", "口令", "解锁", "更新", "吊销", "签名", "中间件", "浏览器", "驱动"}
	if err := e.st.Update(context.Background(), func(tx *store.Tx) error {
		for i := range 1000 {
			var body strings.Builder
			for j := range 60 {
				body.WriteString(words[(i*7+j*3)%len(words)])
				body.WriteString("的")
			}
			a := &store.KBArticle{ID: fmt.Sprintf("kb-%06d", i+1), Lang: LangZH, Title: words[i%len(words)] + words[(i/12)%len(words)],
				Body: body.String(), Category: DefaultCategories[i%len(DefaultCategories)], Level: Levels[i%3], Version: 1}
			if err := tx.PutKBArticle(a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	k := e.open(b)
	q := Query{Text: "口令", Limit: 10}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Find(context.Background(), q); err != nil {
			b.Fatal(err)
		}
	}
}

// Updates of one article racing each other: the index ends with the
// store's last version, whatever order their indexing ran in.
func TestConcurrentUpdatesIndexTheNewest(t *testing.T) {
	e := newEnv(t)
	k := e.open(t)
	ctx := context.Background()
	a := mustCreate(t, k, ArticleInput{Lang: LangEN, Category: "cert_use", Level: LevelPublic, Title: "start", Body: "body"})
	words := []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}
	done := make(chan error)
	for _, w := range words {
		go func() {
			_, err := k.Update(ctx, "staff:x", a.ID, &ArticleInput{Lang: LangEN, Category: "cert_use", Level: LevelPublic, Title: w, Body: "body"})
			done <- err
		}()
	}
	for range words {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	last, err := k.Article(ctx, a.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if last.Version != uint64(len(words)+1) {
		t.Errorf("version %d, want %d", last.Version, len(words)+1)
	}
	for _, w := range words {
		hits := find(t, k, Query{Text: w})
		if want := w == last.Title; (len(hits) == 1) != want {
			t.Errorf("%s: %d hits; the store's title is %q", w, len(hits), last.Title)
		}
	}
	var marks int
	e.st.View(ctx, func(tx *store.Tx) error {
		return tx.EachKBDirty(func(string, uint64) error { marks++; return nil })
	})
	if marks != 0 {
		t.Errorf("%d dirty marks left", marks)
	}
}
