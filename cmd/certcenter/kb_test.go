package main

import (
	"regexp"
	"strings"
	"testing"
)

// certcenter kb add, search, show and retire against a served data
// directory; an article reported saved survives kill -9 of the server.
func TestKBCommands(t *testing.T) {
	data := t.TempDir() + "/data"
	s := serve(t, data)
	step := func(want string, args ...string) string {
		t.Helper()
		out, err := s.client(t, args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("certcenter %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := step("saved", "kb", "add", "--lang", "zh", "--title", "证书无法下载", "--category", "cert_use", "--level", "public",
		"--tag", "download", "--body", "用户在受理点领取介质后，在浏览器中下载证书时提示失败。请先安装签名中间件。")
	id := regexp.MustCompile(`article (kb-\d+) saved`).FindStringSubmatch(out)[1]
	step("Revoking", "kb", "add", "--lang", "en", "--title", "Revoking a lost token's certificate", "--category", "cert_management",
		"--level", "agent", "--body", "The administrator submits a revocation; the CRL is updated at once.")

	out = step(id, "kb", "search", "中间件")
	if !strings.Contains(out, "[中间]") && !strings.Contains(out, "[中间件]") {
		t.Errorf("no highlighted match in:\n%s", out)
	}
	step("1 found", "kb", "search", "revoked", "--lang", "en")
	step("签名中间件", "kb", "show", id)

	t.Run("fail/unknown category changes nothing", func(t *testing.T) {
		out, err := s.client(t, "kb", "add", "--lang", "en", "--title", "t", "--category", "weather", "--level", "public", "--body", "b")
		if err == nil || !strings.Contains(out, "unknown category") {
			t.Errorf("%v\n%s", err, out)
		}
		step("0 found", "kb", "search", "weather")
	})

	// kill -9, then serve the same data directory again.
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s = serve(t, data)
	step(id, "kb", "search", "下载")
	step("retired", "kb", "retire", id, "--reason", "superseded")
	step("0 found", "kb", "search", "下载")
}
