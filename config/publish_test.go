package config

import (
	"strings"
	"testing"
	"time"
)

func TestPublishTargets(t *testing.T) {
	ok := `
publish:
  targets:
    - name: his
      urls: [ldap://127.0.0.1:389]
      base_dn: ou=pki,dc=example
      bind_dn: cn=admin,dc=example
      password_env: X
      publish: {arls: true}
`
	cfg, err := Parse([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	tg := cfg.Publish.Targets[0]
	if tg.SubscriberDN != "by_org" || !tg.RemoveRevoked || tg.Timeout.D() != 30*time.Second || !tg.Publish.CRLs || !tg.Publish.ARLs ||
		len(tg.ObjectClasses.CA) != 3 || len(tg.Publish.Profiles) != 3 {
		t.Errorf("defaults not applied to a target: %+v", tg)
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"fail/unknown key", `publish: {targets: [{name: a, urls: [ldap://h], base_dn: o=x, bogus: 1}]}`, `"publish.targets[0].bogus"`},
		{"fail/no urls", `publish: {targets: [{name: a, base_dn: o=x}]}`, "publish.targets[0].urls"},
		{"fail/bad scheme", `publish: {targets: [{name: a, urls: [http://h], base_dn: o=x}]}`, "publish.targets[0].urls[0]"},
		{"fail/duplicate name", `publish: {targets: [{name: a, urls: [ldap://h], base_dn: o=x}, {name: a, urls: [ldap://h], base_dn: o=x}]}`, "publish.targets[1].name"},
		{"fail/bind without password", `publish: {targets: [{name: a, urls: [ldap://h], base_dn: o=x, bind_dn: cn=x}]}`, "publish.targets[0].bind_dn"},
		{"fail/bad template", `publish: {targets: [{name: a, urls: [ldap://h], base_dn: o=x, subscriber_dn: "cn={mail}"}]}`, "publish.targets[0].subscriber_dn"},
		{"fail/starttls and ldaps", `publish: {targets: [{name: a, urls: [ldaps://h], start_tls: true, base_dn: o=x}]}`, "publish.targets[0].urls[0]"},
		{"fail/batch", `publish: {batch_size: 0}`, "publish.batch_size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
