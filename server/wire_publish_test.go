package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/store"
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

// Pause, resume and resync of a target are ca_operator routes, audited in
// the store's audit log; an unknown target is a 404.
func TestPublishTargetOperations(t *testing.T) {
	cfg := testConfig(t)
	tg := config.DefaultPublishTarget()
	tg.Name, tg.URLs, tg.BaseDN = "his", []string{"ldap://192.0.2.1:389"}, "ou=pki,o=test"
	tg.ConnectTimeout = config.Duration(time.Second)
	cfg.Publish.Targets = []config.PublishTarget{tg}
	s := startTest(t, cfg)
	api := "https://" + s.Addr("api") + "/api/v1/diagnostics/targets/"
	op := staffClient(t, s, cfg.DataDir, "olga", "ca_operator")
	agent := staffClient(t, s, cfg.DataDir, "sam", "service_agent")

	if code, body := post(t, agent, api+"his/pause", ""); code != http.StatusForbidden {
		t.Errorf("pause by a service agent = %d %s", code, body)
	}
	if code, body := post(t, op, api+"nope/pause", ""); code != http.StatusNotFound || !strings.Contains(body, "no such publishing target") {
		t.Errorf("pause of an unknown target = %d %s", code, body)
	}
	for _, c := range []struct{ op, want string }{
		{"pause", `"paused":true`}, {"resume", `"paused":false`}, {"resync", `"name":"his"`},
	} {
		code, body := post(t, op, api+"his/"+c.op, "")
		if code != 200 || !strings.Contains(body, c.want) {
			t.Errorf("%s = %d %s", c.op, code, body)
		}
	}
	got := map[string]string{}
	if err := s.c.core.store.View(context.Background(), func(tx *store.Tx) error {
		return tx.EachAudit(func(e *store.AuditEntry) error {
			if strings.HasPrefix(e.Action, "publish.") {
				got[e.Action] = e.Actor + " " + e.Object
			}
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"publish.pause", "publish.resume", "publish.resync"} {
		if got[a] != "staff:olga target/his" {
			t.Errorf("audit %s = %q (all: %v)", a, got[a], got)
		}
	}
}
