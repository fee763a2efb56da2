package server

import (
	"log/slog"
	"net"
	"net/url"
	"strings"

	"github.com/certcenter/certcenter/config"
)

// warnUnreachableURLs warns when the URLs put into every certificate
// (ca.public_url for OCSP, caIssuers and CRLs; ca.ldap_url for the ldap
// CRL distribution points) do not name the listener this server bound:
// relying parties would follow them to nothing, and nobody would notice
// until a certificate fails to validate. A reverse proxy in front may
// make such a URL right; the warning says so.
func warnUnreachableURLs(cfg *config.Config, log *slog.Logger, addr func(name string) string) {
	check := func(key, raw, listener, bound string, defaultPort string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		if bound == "" {
			log.Warn(key+" names a listener this server does not run: certificates will carry URLs nobody answers",
				"key", key, "url", raw, "listener", listener)
			return
		}
		if why := mismatch(u, bound, defaultPort); why != "" {
			log.Warn(key+" does not reach this server's "+listener+" listener: certificates issued now carry it; set "+key+" to the address relying parties use (ignore if a proxy forwards it)",
				"key", key, "url", raw, "listener", listener, "bound", bound, "reason", why)
		}
	}
	check("ca.public_url", cfg.CA.PublicURL, "http", addr("http"), "80")
	check("ca.ldap_url", cfg.CA.LDAPURL, "ldap", addr("ldap"), "389")
}

// mismatch explains why url u cannot reach a listener bound at bound, or
// returns "".
func mismatch(u *url.URL, bound, defaultPort string) string {
	bhost, bport, err := net.SplitHostPort(bound)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
		if u.Scheme == "https" {
			port = "443"
		}
	}
	if port != bport {
		return "port " + port + " in the URL, " + bport + " bound"
	}
	bip := net.ParseIP(bhost)
	if bip == nil || bip.IsUnspecified() {
		return "" // every interface: any name of this host reaches it
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		if !bip.IsLoopback() {
			return "the URL names localhost, the listener binds " + bhost
		}
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && !ip.Equal(bip) {
		return "the URL names " + host + ", the listener binds " + bhost
	}
	return ""
}
