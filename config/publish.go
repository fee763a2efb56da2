package config

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Publish configures pushing CA certificates, CRLs and subscriber
// certificates to outside LDAP directories (package publish). Each target
// follows the store's change log with its own cursor.
type Publish struct {
	// Targets are the directories to publish to. Default none.
	Targets []PublishTarget `yaml:"targets"`
	// LagWarning: a target whose oldest undelivered change is older than
	// this is named in /readyz detail (readiness does not fail). Default 5m.
	LagWarning Duration `yaml:"lag_warning"`
	// BatchSize is how many change-log entries a target reads and delivers
	// per round (coalesced by record first). Default 500.
	BatchSize int `yaml:"batch_size"`
	// MaxBackoff caps the wait between retries of a failing target
	// (exponential from 1s, with jitter). Default 5m.
	MaxBackoff Duration `yaml:"max_backoff"`
}

// PublishTarget is one outside directory.
type PublishTarget struct {
	// Name identifies the target in metrics, logs, diagnostics and its
	// change-log cursor ("publish/<name>"). Required; letters, digits, - and _.
	Name string `yaml:"name"`
	// URLs are tried in order on every (re)connect: ldap:// or ldaps://.
	// Required.
	URLs []string `yaml:"urls"`
	// StartTLS upgrades ldap:// connections before binding. Default false.
	StartTLS bool `yaml:"start_tls"`
	// CAFile is the PEM bundle that verifies the target's TLS certificate.
	// Default "": the system roots.
	CAFile string `yaml:"ca_file"`
	// BindDN and its password (from PasswordEnv or PasswordFile; one of
	// them is required when BindDN is set). Default "": anonymous.
	BindDN       string `yaml:"bind_dn"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// BaseDN is where certcenter's entries go; it must exist on the target.
	// Required.
	BaseDN string `yaml:"base_dn"`
	// SubscriberDN maps a certificate to its entry below BaseDN: "by_cn"
	// (cn=<CN>), "by_org" (cn=<CN>,o=<O>), or a template of RDNs with
	// {cn}, {o}, {ou}, {c}, {serial_number} ("cn={cn},ou={ou},o={o}").
	// Missing parents are created. Default "by_org".
	SubscriberDN string `yaml:"subscriber_dn"`
	// CADN is the RDN of a CA's entry below BaseDN, with {cn} the CA
	// certificate's CN and {name} the CA's name. Default "cn={cn}".
	CADN string `yaml:"ca_dn"`
	// ObjectClasses are given to entries certcenter creates.
	ObjectClasses PublishObjectClasses `yaml:"object_classes"`
	// Publish says what is pushed.
	Publish PublishWhat `yaml:"publish"`
	// RemoveRevoked takes a revoked certificate out of userCertificate.
	// Default true.
	RemoveRevoked bool `yaml:"remove_revoked"`
	// ConnectTimeout bounds one connection attempt. Default 10s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
	// Timeout bounds one operation (bind, search, add, modify). Default 30s.
	Timeout Duration `yaml:"timeout"`
}

// PublishObjectClasses are the object classes of created entries.
type PublishObjectClasses struct {
	// Subscriber default [inetOrgPerson, pkiUser].
	Subscriber []string `yaml:"subscriber"`
	// CA default [cRLDistributionPoint, pkiCA, deltaCRL].
	CA []string `yaml:"ca"`
}

// PublishWhat selects what a target receives.
type PublishWhat struct {
	// CACerts: cACertificate;binary of each CA entry. Default true.
	CACerts bool `yaml:"ca_certs"`
	// CRLs: certificateRevocationList;binary (the complete CRL). Default true.
	CRLs bool `yaml:"crls"`
	// DeltaCRLs: deltaRevocationList;binary. Default true.
	DeltaCRLs bool `yaml:"delta_crls"`
	// ARLs: authorityRevocationList;binary. Default false.
	ARLs bool `yaml:"arls"`
	// SubscriberCerts: userCertificate;binary of subscriber entries.
	// Default true.
	SubscriberCerts bool `yaml:"subscriber_certs"`
	// Profiles limits subscriber certificates to these profiles. Default
	// [personal-signing, personal-encryption, organization].
	Profiles []string `yaml:"profiles"`
	// Organisations limits subscriber certificates to these subject O
	// values. Default [] (all).
	Organisations []string `yaml:"organisations"`
}

// DefaultPublishTarget is a target with every default set.
func DefaultPublishTarget() PublishTarget {
	return PublishTarget{
		SubscriberDN: "by_org",
		CADN:         "cn={cn}",
		ObjectClasses: PublishObjectClasses{
			Subscriber: []string{"inetOrgPerson", "pkiUser"},
			CA:         []string{"cRLDistributionPoint", "pkiCA", "deltaCRL"},
		},
		Publish: PublishWhat{CACerts: true, CRLs: true, DeltaCRLs: true, SubscriberCerts: true,
			Profiles: []string{"personal-signing", "personal-encryption", "organization"}},
		RemoveRevoked:  true,
		ConnectTimeout: Duration(10 * time.Second),
		Timeout:        Duration(30 * time.Second),
	}
}

func defaultPublish() Publish {
	return Publish{LagWarning: Duration(5 * time.Minute), BatchSize: 500, MaxBackoff: Duration(5 * time.Minute)}
}

// UnmarshalYAML decodes a target over DefaultPublishTarget, so keys left
// out keep their defaults. (Unknown keys are caught by checkKeys.)
func (t *PublishTarget) UnmarshalYAML(n *yaml.Node) error {
	*t = DefaultPublishTarget()
	type plain PublishTarget
	return n.Decode((*plain)(t))
}

// Password reads the bind password from PasswordFile or PasswordEnv.
func (t PublishTarget) Password() (string, error) {
	if t.PasswordFile != "" {
		b, err := os.ReadFile(t.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("publish.targets[%s].password_file: %w", t.Name, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if t.PasswordEnv == "" {
		return "", nil
	}
	v, ok := os.LookupEnv(t.PasswordEnv)
	if !ok || v == "" {
		return "", fmt.Errorf("publish.targets[%s].password_env: environment variable %s is not set", t.Name, t.PasswordEnv)
	}
	return v, nil
}

var (
	targetName  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	placeholder = regexp.MustCompile(`\{[a-z_]*\}`)
)

// SubscriberDNPlaceholders are what a subscriber_dn template may use.
var SubscriberDNPlaceholders = []string{"{cn}", "{o}", "{ou}", "{c}", "{serial_number}"}

func (p *Publish) validate(bad func(key, format string, a ...any)) {
	if p.LagWarning <= 0 {
		bad("publish.lag_warning", "must be positive")
	}
	if p.BatchSize < 1 || p.BatchSize > 10000 {
		bad("publish.batch_size", "must be between 1 and 10000")
	}
	if p.MaxBackoff.D() < time.Second {
		bad("publish.max_backoff", "must be at least 1s")
	}
	seen := map[string]bool{}
	for i, t := range p.Targets {
		k := fmt.Sprintf("publish.targets[%d]", i)
		if !targetName.MatchString(t.Name) {
			bad(k+".name", "%q must be 1-64 letters, digits, - or _", t.Name)
		} else if seen[t.Name] {
			bad(k+".name", "%q is used by an earlier target", t.Name)
		}
		seen[t.Name] = true
		if len(t.URLs) == 0 {
			bad(k+".urls", "at least one ldap:// or ldaps:// URL is required")
		}
		for j, u := range t.URLs {
			pu, err := url.Parse(u)
			switch {
			case err != nil:
				bad(fmt.Sprintf("%s.urls[%d]", k, j), "%q: %v", u, err)
			case pu.Scheme != "ldap" && pu.Scheme != "ldaps":
				bad(fmt.Sprintf("%s.urls[%d]", k, j), "%q is not an ldap:// or ldaps:// URL", u)
			case pu.Host == "":
				bad(fmt.Sprintf("%s.urls[%d]", k, j), "%q has no host", u)
			case t.StartTLS && pu.Scheme == "ldaps":
				bad(fmt.Sprintf("%s.urls[%d]", k, j), "%q is ldaps:// and start_tls is set: choose one", u)
			}
		}
		if t.CAFile != "" {
			if _, err := os.Stat(t.CAFile); err != nil {
				bad(k+".ca_file", "%v", err)
			}
		}
		if t.PasswordEnv != "" && t.PasswordFile != "" {
			bad(k+".password_file", "set password_env or password_file, not both")
		}
		if t.BindDN != "" && t.PasswordEnv == "" && t.PasswordFile == "" {
			bad(k+".bind_dn", "needs password_env or password_file")
		}
		if t.BaseDN == "" || !strings.Contains(t.BaseDN, "=") {
			bad(k+".base_dn", "%q is not a DN", t.BaseDN)
		}
		switch t.SubscriberDN {
		case "by_cn", "by_org":
		default:
			checkTemplate(bad, k+".subscriber_dn", t.SubscriberDN, SubscriberDNPlaceholders)
		}
		checkTemplate(bad, k+".ca_dn", t.CADN, []string{"{cn}", "{name}"})
		if len(t.ObjectClasses.Subscriber) == 0 {
			bad(k+".object_classes.subscriber", "must not be empty")
		}
		if len(t.ObjectClasses.CA) == 0 {
			bad(k+".object_classes.ca", "must not be empty")
		}
		for _, pr := range t.Publish.Profiles {
			if !slices.Contains([]string{"personal-signing", "personal-encryption", "organization", "server-tls", "cert-admin", "ocsp-signing"}, pr) {
				bad(k+".publish.profiles", "%q is not a certificate profile", pr)
			}
		}
		if t.ConnectTimeout <= 0 {
			bad(k+".connect_timeout", "must be positive")
		}
		if t.Timeout <= 0 {
			bad(k+".timeout", "must be positive")
		}
	}
}

func checkTemplate(bad func(key, format string, a ...any), key, tmpl string, allowed []string) {
	if !strings.Contains(tmpl, "=") || !strings.Contains(tmpl, "{") {
		bad(key, "%q is not a DN template with placeholders", tmpl)
		return
	}
	for _, ph := range placeholder.FindAllString(tmpl, -1) {
		if !slices.Contains(allowed, ph) {
			bad(key, "%q uses %s; allowed: %s", tmpl, ph, strings.Join(allowed, ", "))
		}
	}
	if !strings.Contains(tmpl, "{cn}") {
		bad(key, "%q must contain {cn}", tmpl)
	}
}
