package kb_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/desk/kb"
	"github.com/certcenter/certcenter/internal/audit"
	"github.com/certcenter/certcenter/internal/httpapi"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// world is the knowledge base's API over mutual TLS on a real store, with a
// credential per desk role and a public (certificate-less) client.
type world struct {
	*testenv.Env
	srv   *httptest.Server
	creds map[string]*testenv.Credential
}

func newWorld(t *testing.T, burst int) *world {
	t.Helper()
	e := testenv.New(t, testenv.Options{})
	k, err := kb.Open(e.Ctx, kb.Options{Store: e.Store, Audit: audit.New(audit.Options{Store: e.Store, Now: e.Clock.Now}),
		IndexPath: filepath.Join(e.Dir, "kb.bleve"), MaxBodyBytes: 4096, Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	mux := http.NewServeMux()
	kb.NewAPI(kb.APIOptions{KB: k, PublicRatePerMinute: 60, PublicBurst: burst, Now: e.Clock.Now}).Register(mux, httpapi.Mount{
		Auth: &httpapi.Authenticator{Store: e.Store, Now: e.Clock.Now}, MaxBodyBytes: 16 << 10})
	w := &world{Env: e, srv: e.TLSServer(mux), creds: map[string]*testenv.Credential{}}
	for _, role := range []string{httpapi.RoleServiceAgent, httpapi.RoleEngineer, httpapi.RoleTechnicalCentre, httpapi.RoleSupervisor, httpapi.RoleRAOfficer} {
		w.creds[role] = e.Staff(role+"1", role)
	}
	return w
}

func (w *world) call(cred *testenv.Credential, method, path, body string, out any) (int, http.Header, string) {
	w.T.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	if err != nil {
		w.T.Fatal(err)
	}
	res, err := w.Client(w.srv, cred).Do(req)
	if err != nil {
		w.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			w.T.Fatalf("%s %s: decoding %s: %v", method, path, raw, err)
		}
	}
	return res.StatusCode, res.Header, string(raw)
}

func (w *world) create(body string) store.KBArticle {
	w.T.Helper()
	var a store.KBArticle
	if st, _, raw := w.call(w.creds[httpapi.RoleSupervisor], "POST", "/api/v1/kb/articles", body, &a); st != http.StatusCreated {
		w.T.Fatalf("create: %d %s", st, raw)
	}
	return a
}

func (w *world) search(cred *testenv.Credential, path, q string) (ids []string) {
	w.T.Helper()
	var res struct {
		Hits []struct {
			ID    string `json:"id"`
			Level string `json:"level"`
		} `json:"hits"`
	}
	if st, _, raw := w.call(cred, "GET", path+"?q="+url.QueryEscape(q), "", &res); st != 200 {
		w.T.Fatalf("search %s %q: %d %s", path, q, st, raw)
	}
	for _, h := range res.Hits {
		ids = append(ids, h.ID)
	}
	return ids
}

func (w *world) count() (articles, audits int) {
	w.T.Helper()
	if err := w.Store.View(w.Ctx, func(tx *store.Tx) error {
		if err := tx.EachKBArticle(func(*store.KBArticle) error { articles++; return nil }); err != nil {
			return err
		}
		return tx.EachAudit(func(*store.AuditEntry) error { audits++; return nil })
	}); err != nil {
		w.T.Fatal(err)
	}
	return articles, audits
}

func TestAPILevelsAndRoles(t *testing.T) {
	w := newWorld(t, 100)
	pub := w.create(`{"lang":"zh","title":"证书下载失败","body":"在浏览器中下载证书时提示失败，请检查签名中间件是否安装。","category":"cert_use","level":"public"}`)
	agent := w.create(`{"lang":"zh","title":"证书同步排查","body":"坐席先在诊断页面查看证书的同步状态。","category":"systems/ldap","level":"agent"}`)
	eng := w.create(`{"lang":"zh","title":"证书发布重试","body":"工程师可以在发布目标上执行重新同步。","category":"systems/ldap","level":"engineer"}`)

	for _, tc := range []struct {
		name string
		cred *testenv.Credential
		path string
		want []string
	}{
		{"public", nil, "/api/v1/kb/public/search", []string{pub.ID}},
		{"service_agent", w.creds[httpapi.RoleServiceAgent], "/api/v1/kb/search", []string{pub.ID, agent.ID}},
		{"engineer", w.creds[httpapi.RoleEngineer], "/api/v1/kb/search", []string{pub.ID, agent.ID, eng.ID}},
	} {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			got := w.search(tc.cred, tc.path, "证书")
			if strings.Join(sorted(got), ",") != strings.Join(tc.want, ",") {
				t.Errorf("证书: %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("fail/public asks for agent level", func(t *testing.T) {
		var res struct{ Hits []any }
		if st, _, raw := w.call(nil, "GET", "/api/v1/kb/public/search?q=%E8%AF%81%E4%B9%A6&level=agent", "", &res); st != 200 || len(res.Hits) != 0 {
			t.Errorf("%d %s, want no hits", st, raw)
		}
	})
	t.Run("fail/public reads agent article", func(t *testing.T) {
		if st, _, raw := w.call(nil, "GET", "/api/v1/kb/public/articles/"+agent.ID, "", nil); st != 404 {
			t.Errorf("%d %s, want 404", st, raw)
		}
	})
	t.Run("ok/public reads public article", func(t *testing.T) {
		var a kb.PublicArticle
		if st, _, raw := w.call(nil, "GET", "/api/v1/kb/public/articles/"+pub.ID, "", &a); st != 200 || a.Title != "证书下载失败" || strings.Contains(raw, "created_by") {
			t.Errorf("%d %s", st, raw)
		}
	})
	t.Run("fail/agent reads engineer article", func(t *testing.T) {
		if st, _, raw := w.call(w.creds[httpapi.RoleServiceAgent], "GET", "/api/v1/kb/articles/"+eng.ID, "", nil); st != 404 {
			t.Errorf("%d %s, want 404", st, raw)
		}
	})
	t.Run("fail/staff search without credential", func(t *testing.T) {
		if st, _, raw := w.call(nil, "GET", "/api/v1/kb/search?q=x", "", nil); st != 401 {
			t.Errorf("%d %s, want 401", st, raw)
		}
	})
	t.Run("fail/ra officer searches", func(t *testing.T) {
		if st, _, raw := w.call(w.creds[httpapi.RoleRAOfficer], "GET", "/api/v1/kb/search?q=x", "", nil); st != 403 {
			t.Errorf("%d %s, want 403", st, raw)
		}
	})
	t.Run("fail/agent writes", func(t *testing.T) {
		if st, _, raw := w.call(w.creds[httpapi.RoleServiceAgent], "POST", "/api/v1/kb/articles", `{"lang":"en","title":"t","body":"b","category":"cert_use","level":"public"}`, nil); st != 403 {
			t.Errorf("%d %s, want 403", st, raw)
		}
	})
	t.Run("ok/update and retire", func(t *testing.T) {
		tc := w.creds[httpapi.RoleTechnicalCentre]
		var a store.KBArticle
		if st, _, raw := w.call(tc, "PUT", "/api/v1/kb/articles/"+pub.ID, `{"lang":"zh","title":"证书下载失败怎么办","body":"请安装签名中间件后重试。","category":"cert_use","level":"public"}`, &a); st != 200 || a.Version != 2 || a.UpdatedBy != "staff:technical_centre1" {
			t.Fatalf("update: %d %s", st, raw)
		}
		if got := w.search(nil, "/api/v1/kb/public/search", "怎么办"); len(got) != 1 {
			t.Errorf("updated title not found: %v", got)
		}
		if st, _, raw := w.call(tc, "POST", "/api/v1/kb/articles/"+pub.ID+"/retire", `{"reason":"replaced by the new download page"}`, &a); st != 200 || !a.Retired {
			t.Fatalf("retire: %d %s", st, raw)
		}
		if got := w.search(nil, "/api/v1/kb/public/search", "怎么办"); len(got) != 0 {
			t.Errorf("retired article found: %v", got)
		}
		if st, _, raw := w.call(tc, "POST", "/api/v1/kb/articles/"+pub.ID+"/retire", `{"reason":"again"}`, nil); st != 409 {
			t.Errorf("second retire: %d %s, want 409", st, raw)
		}
		var staffView store.KBArticle
		if st, _, raw := w.call(w.creds[httpapi.RoleEngineer], "GET", "/api/v1/kb/articles/"+pub.ID, "", &staffView); st != 200 || !staffView.Retired {
			t.Errorf("engineer reads retired article: %d %s", st, raw)
		}
	})
	var actions []string
	w.Store.View(w.Ctx, func(tx *store.Tx) error {
		return tx.EachAudit(func(e *store.AuditEntry) error {
			if strings.HasPrefix(e.Action, "kb.") {
				actions = append(actions, e.Action)
			}
			return nil
		})
	})
	if strings.Join(actions, ",") != "kb.create,kb.create,kb.create,kb.update,kb.retire" {
		t.Errorf("audited %v", actions)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestAPIBadInputChangesNothing(t *testing.T) {
	w := newWorld(t, 100)
	a := w.create(`{"lang":"en","title":"Token PIN locked","body":"Ask for an unlock.","category":"token_use","level":"public"}`)
	articles, audits := w.count()
	sup := w.creds[httpapi.RoleSupervisor]
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		reason                   string
	}{
		{"unknown category", "POST", "/api/v1/kb/articles", `{"lang":"en","title":"t","body":"b","category":"weather","level":"public"}`, 400, "unknown category"},
		{"unknown level", "POST", "/api/v1/kb/articles", `{"lang":"en","title":"t","body":"b","category":"cert_use","level":"vip"}`, 400, "unknown level"},
		{"empty title", "POST", "/api/v1/kb/articles", `{"lang":"en","title":" ","body":"b","category":"cert_use","level":"public"}`, 400, "title is empty"},
		{"oversized body", "POST", "/api/v1/kb/articles", `{"lang":"en","title":"t","body":"` + strings.Repeat("x", 5000) + `","category":"cert_use","level":"public"}`, 400, "at most 4096"},
		{"body over the request limit", "POST", "/api/v1/kb/articles", `{"lang":"en","title":"t","body":"` + strings.Repeat("x", 17<<10) + `"}`, 413, "request body over"},
		{"unknown field", "POST", "/api/v1/kb/articles", `{"lang":"en","title":"t","body":"b","category":"cert_use","level":"public","author":"me"}`, 400, "unknown field"},
		{"not json", "POST", "/api/v1/kb/articles", `title=t`, 400, "invalid article JSON"},
		{"update unknown category", "PUT", "/api/v1/kb/articles/" + a.ID, `{"lang":"en","title":"t","body":"b","category":"weather","level":"public"}`, 400, "unknown category"},
		{"update missing article", "PUT", "/api/v1/kb/articles/kb-999999", `{"lang":"en","title":"t","body":"b","category":"cert_use","level":"public"}`, 404, "no such article"},
		{"retire without reason", "POST", "/api/v1/kb/articles/" + a.ID + "/retire", `{}`, 400, "reason"},
		{"empty query", "GET", "/api/v1/kb/search?q=", "", 400, "empty"},
		{"unknown parameter", "GET", "/api/v1/kb/search?q=pin&categry=token_use", "", 400, "unknown parameter"},
		{"bad limit", "GET", "/api/v1/kb/search?q=pin&limit=x", "", 400, "limit"},
		{"limit too high", "GET", "/api/v1/kb/search?q=pin&limit=500", "", 400, "limit"},
		{"query too long", "GET", "/api/v1/kb/search?q=" + strings.Repeat("a", 300), "", 400, "at most 256"},
		{"invalid utf-8", "GET", "/api/v1/kb/search?q=%ff", "", 400, "UTF-8"},
		{"unknown filter category", "GET", "/api/v1/kb/public/search?q=pin&category=weather", "", 400, "unknown category"},
	} {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			st, _, raw := w.call(sup, tc.method, tc.path, tc.body, nil)
			if st != tc.status || !strings.Contains(raw, tc.reason) {
				t.Errorf("%d %s, want %d with %q", st, raw, tc.status, tc.reason)
			}
		})
	}
	if n, m := w.count(); n != articles || m != audits {
		t.Errorf("after bad input: %d articles, %d audit entries; want %d, %d", n, m, articles, audits)
	}
	var got store.KBArticle
	w.call(sup, "GET", "/api/v1/kb/articles/"+a.ID, "", &got)
	if got.Version != 1 || got.Title != "Token PIN locked" {
		t.Errorf("article changed: %+v", got)
	}
}

func TestPublicRateLimit(t *testing.T) {
	w := newWorld(t, 3)
	w.create(`{"lang":"en","title":"Certificate renewal","body":"Renew thirty days before expiry.","category":"cert_management","level":"public"}`)
	path := "/api/v1/kb/public/search?q=renewal"
	for i := range 3 {
		if st, _, raw := w.call(nil, "GET", path, "", nil); st != 200 {
			t.Fatalf("search %d: %d %s", i, st, raw)
		}
	}
	st, h, raw := w.call(nil, "GET", path, "", nil)
	if st != http.StatusTooManyRequests || h.Get("Retry-After") != "1" || !strings.Contains(raw, "rate_limited") {
		t.Fatalf("4th search: %d Retry-After %q %s, want 429 with Retry-After 1", st, h.Get("Retry-After"), raw)
	}
	// Staff searches are not counted against the address.
	if st, _, raw := w.call(w.creds[httpapi.RoleServiceAgent], "GET", "/api/v1/kb/search?q=renewal", "", nil); st != 200 {
		t.Errorf("staff search while the address is limited: %d %s", st, raw)
	}
	w.Clock.Advance(time.Second)
	if st, _, raw := w.call(nil, "GET", path, "", nil); st != 200 {
		t.Errorf("after Retry-After: %d %s", st, raw)
	}
	if st, _, _ := w.call(nil, "GET", path, "", nil); st != http.StatusTooManyRequests {
		t.Errorf("second search after one second's refill: %d, want 429", st)
	}
}
