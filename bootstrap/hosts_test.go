package bootstrap

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/config"
)

func TestServerCertHosts(t *testing.T) {
	cfg := config.Default()
	cfg.API.Hosts = []string{"api.example.test", "::1"}
	cfg.CA.PublicURL = "http://[0:0:0:0:0:0:0:1]:8080"
	cfg.CA.LDAPURL = "ldap://LDAP.Example.Test.:1389"
	got := ServerCertHosts(cfg)
	host, _ := os.Hostname()
	want := []string{"api.example.test", "::1", "localhost", "127.0.0.1"}
	if isDNSName(strings.ToLower(host)) && strings.ToLower(host) != "localhost" {
		want = append(want, strings.ToLower(host))
	}
	want = append(want, "ldap.example.test")
	if !slices.Equal(got, want) {
		t.Errorf("ServerCertHosts = %q, want %q", got, want)
	}
	for name, ok := range map[string]bool{"vm": true, "a-b.example": true, "my_box": false, "-a": false, "a..b": false, "": false} {
		if isDNSName(name) != ok {
			t.Errorf("isDNSName(%q) = %v", name, !ok)
		}
	}
}
