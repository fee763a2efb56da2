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
}
