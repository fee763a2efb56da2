package bootstrap

import (
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/certcenter/certcenter/config"
)

// ServerCertHosts are the names the default server certificate (API,
// ldaps:// and StartTLS) carries: api.hosts, the loopback names, the
// machine's host name and the hosts of ca.public_url and ca.ldap_url.
// OpenLDAP's client checks the name even for ldaps://localhost, and may
// check the machine's own name there (what the loopback address resolves
// to), so those are always in. api.hosts[0] stays first: it is the CN.
func ServerCertHosts(cfg *config.Config) []string {
	hosts := append([]string(nil), cfg.API.Hosts...)
	add := func(h string) {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if h == "" {
			return
		}
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String()
		} else if !isDNSName(h) {
			return
		}
		for _, o := range hosts {
			if strings.EqualFold(o, h) || net.ParseIP(o) != nil && net.ParseIP(o).Equal(net.ParseIP(h)) {
				return
			}
		}
		hosts = append(hosts, h)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		add(h)
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
	}
	for _, u := range []string{cfg.CA.PublicURL, cfg.CA.LDAPURL} {
		if pu, err := url.Parse(u); err == nil {
			add(pu.Hostname())
		}
	}
	return hosts
}

// isDNSName reports whether h can be a dNSName in a certificate: labels of
// letters, digits and hyphens (a host name like "my_box" cannot).
func isDNSName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
