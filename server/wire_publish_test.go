package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
)

// A target that cannot be reached (a black-holed address: the connect
// hangs until its timeout) delays neither start-up nor readiness; its lag
// shows in /readyz detail as a warning, not a failure.
func TestUnreachablePublishTargetDoesNotDelayStart(t *testing.T) {
	cfg := testConfig(t)
	tg := config.DefaultPublishTarget()
	tg.Name, tg.URLs, tg.BaseDN = "his", []string{"ldap://192.0.2.1:389"}, "ou=pki,o=test"
	tg.ConnectTimeout = config.Duration(time.Minute)
	cfg.Publish.Targets = []config.PublishTarget{tg}
	cfg.Publish.LagWarning = config.Duration(time.Nanosecond)
	s := startTest(t, cfg)
	public := "http://" + s.Addr("http")
	waitReady(t, public)
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := get(t, http.DefaultClient, public+"/readyz")
		if code != 200 {
			t.Fatalf("/readyz = %d %q", code, body)
		}
		if strings.Contains(body, "warning: publish: publish target his:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lag warning in /readyz: %q", body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The diagnostics show the target and where a certificate stands on it.
	api := "https://" + s.Addr("api")
	adm := adminClient(t, cfg.DataDir)
	code, body := get(t, adm, api+"/api/v1/diagnostics/targets")
	if code != 200 || !strings.Contains(body, `"name":"his"`) || !strings.Contains(body, `"connected":false`) {
		t.Fatalf("diagnostics/targets = %d %s", code, body)
	}
	c := diagIssue(t, s, "hosp-1", "dora")
	d := diagnose(t, adm, api, c.SerialHex())
	if len(d.Targets) != 1 || d.Targets[0].Target != "his" || d.Targets[0].State == "published" {
		t.Fatalf("targets of a certificate an unreachable target never got: %+v", d.Targets)
	}
}
