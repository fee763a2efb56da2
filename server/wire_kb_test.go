package server

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/internal/httpapi"
)

// The knowledge base in the whole server: an article written through the
// API is found by an agent and by curl on the public search without a
// client certificate, and is still found after the index directory was
// deleted (rebuilt from the store at start).
func TestKnowledgeBaseWired(t *testing.T) {
	cfg := testConfig(t)
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api")
	admin := adminClient(t, cfg.DataDir)
	if code, out := post(t, admin, api+"/api/v1/kb/articles", `{"lang":"zh","title":"忘记口令怎么办","body":"携带有效证件到受理点办理介质解锁。","category":"token_use","level":"public"}`); code != 201 {
		t.Fatalf("create: %d %s", code, out)
	}
	search := "/api/v1/kb/search?q=" + url.QueryEscape("解锁")
	agent := staffClient(t, s, cfg.DataDir, "agent1", httpapi.RoleServiceAgent)
	if code, out := get(t, agent, api+search); code != 200 || !strings.Contains(out, `\u003cmark\u003e解锁\u003c/mark\u003e`) || strings.Contains(out, `"title":[`) {
		t.Fatalf("agent search: %d %s", code, out)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is needed:", err)
	}
	out, err := exec.Command("curl", "-sS", "--fail-with-body", "--cacert", filepath.Join(cfg.DataDir, bootstrap.CACert),
		api+"/api/v1/kb/public/search?q="+url.QueryEscape("口令")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "忘记口令怎么办") {
		t.Fatalf("curl public search: %v %s", err, out)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(cfg.DataDir, kbIndexDir)); err != nil {
		t.Fatal(err)
	}
	s = startTest(t, cfg)
	api = "https://" + s.Addr("api")
	if code, out := get(t, adminClient(t, cfg.DataDir), api+search); code != 200 || !strings.Contains(out, "忘记口令怎么办") {
		t.Fatalf("after the index was deleted: %d %s", code, out)
	}
}
