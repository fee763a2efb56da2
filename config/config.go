// Package config is certcenter's YAML configuration: the types with their
// defaults, strict loading (an unknown key is an error naming it), secrets
// read from environment variables or files, and validation whose messages name
// the offending key. It does not start anything.
package config

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole configuration. Every field has a default (see Default).
type Config struct {
	// DataDir holds the database, file keys and bootstrap credentials. Default "./data".
	DataDir string `yaml:"data_dir"`
	Log     Log    `yaml:"log"`
	Store   Store  `yaml:"store"`
	HTTP    HTTP   `yaml:"http"`
	LDAP    LDAP   `yaml:"ldap"`
	API     API    `yaml:"api"`
	CA      CA     `yaml:"ca"`
	Signer  Signer `yaml:"signer"`
	OCSP    OCSP   `yaml:"ocsp"`
	CRL     CRL    `yaml:"crl"`
	RA      RA     `yaml:"ra"`
	// Publish pushes certificates and CRLs to outside LDAP directories.
	Publish Publish `yaml:"publish"`
	// Desk is the service desk's tickets and SLA clocks.
	Desk Desk `yaml:"desk"`
	// Tokens is the USBKey inventory and unlocking.
	Tokens Tokens `yaml:"tokens"`
	// KB is the service desk's knowledge base.
	KB KB `yaml:"kb"`

	// Metrics: who may scrape /metrics, and where.
	Metrics Metrics `yaml:"metrics"`

	// Server configures the process as a whole.
	Server Server `yaml:"server"`

	// NATS and Replica configure read replicas over NATS JetStream.
	NATS    NATS    `yaml:"nats"`
	Replica Replica `yaml:"replica"`
}

// Server configures the process as a whole.
type Server struct {
	// MemoryLimit is the Go runtime's soft memory limit (runtime/debug
	// SetMemoryLimit, like GOMEMLIMIT): near it the collector runs more
	// often instead of letting the heap double. A size: "0" (off), or a
	// number with B, KiB, MiB, GiB (or KB, MB, GB). Default "0": off, and a
	// GOMEMLIMIT in the environment then still applies.
	MemoryLimit ByteSize `yaml:"memory_limit"`
}

// Metrics configures where Prometheus scrapes. /metrics on the API listener
// always needs a client certificate of a staff member (role metrics or any
// staff role).
type Metrics struct {
	// Addr, when set, also serves /metrics without authentication on its
	// own plain HTTP listener, for scrapers on a trusted network. Default
	// "" (off).
	Addr string `yaml:"addr"`
	// Pprof also serves net/http/pprof under /debug/pprof/ on Addr's
	// listener (which then needs to be set), to find where memory and CPU
	// go under load. Default false.
	Pprof bool `yaml:"pprof"`
}

// Log configures operational logs.
type Log struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
	// Format is text or json. Default "text".
	Format string `yaml:"format"`
}

// Store configures the embedded database.
type Store struct {
	// SyncWrites fsyncs each commit so it survives power loss. Default true.
	SyncWrites bool `yaml:"sync_writes"`
	// MinFreeMB is the free space, in MiB, the data directory's file system
	// must keep: below it the store refuses writes (API 507, /readyz 503)
	// while OCSP, CRLs and LDAP go on reading, and a start opens the
	// database read-only. Badger's memtables and value-log files are sized
	// to a quarter of it (at most 64 MiB), so what Badger writes on its own
	// fits in the floor. Default 256.
	MinFreeMB int64 `yaml:"min_free_mb"`
	// CacheMB is Badger's cache memory, in MiB: its block cache (3/4) and
	// index cache (1/4). Its memtables (2, each a quarter of min_free_mb,
	// at most 32 MiB) come on top. Default 48.
	CacheMB int64 `yaml:"cache_mb"`
}

// HTTP configures the public listener (OCSP, CRLs, CA certificates, health).
type HTTP struct {
	// Addr is the listen address. Default ":8080".
	Addr string `yaml:"addr"`
	// ReadHeaderTimeout default 5s, ReadTimeout 10s, WriteTimeout 30s, IdleTimeout 120s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	ReadTimeout       Duration `yaml:"read_timeout"`
	WriteTimeout      Duration `yaml:"write_timeout"`
	IdleTimeout       Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes default 16384.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ShutdownTimeout bounds the drain of requests in flight at shutdown. Default 20s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// MaxConnections bounds open connections on the public listener; those
	// over it are closed at once (and counted). Default 4096.
	MaxConnections int `yaml:"max_connections"`
}

// LDAP configures the directory listeners.
type LDAP struct {
	// Addr serves ldap:// and StartTLS. Default ":1389". Empty disables it.
	Addr string `yaml:"addr"`
	// LDAPSAddr serves ldaps://. Default ":1636". Empty disables it.
	LDAPSAddr string `yaml:"ldaps_addr"`
	// Suffix is the directory's naming context. Default: derived from the CA subject.
	Suffix string `yaml:"suffix"`
	// AnonymousRead lets unauthenticated clients search. Default true.
	AnonymousRead bool `yaml:"anonymous_read"`
	// AllowCleartextBind accepts a simple bind with a password on a connection
	// without TLS. Default false: such a bind gets confidentialityRequired.
	AllowCleartextBind bool `yaml:"allow_cleartext_bind"`
	// Accounts are the service accounts that may simple-bind.
	Accounts []LDAPAccount `yaml:"accounts"`
	// IncludeRevoked and IncludeExpired put revoked or expired certificates in
	// userCertificate. Default false: only valid certificates are published.
	IncludeRevoked bool `yaml:"include_revoked"`
	IncludeExpired bool `yaml:"include_expired"`
	// MaxConnections bounds open connections per listener. Default 4096.
	MaxConnections int `yaml:"max_connections"`
	// IdleTimeout closes a connection with no request in flight after this
	// long without a request. Default 15m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// WriteTimeout bounds writing one response to a slow client. Default 30s.
	WriteTimeout Duration `yaml:"write_timeout"`
	// MaxPending bounds the requests in flight on one connection. Default 32.
	MaxPending int `yaml:"max_pending"`
	// MaxPDUBytes bounds one request message. Default 262144.
	MaxPDUBytes int `yaml:"max_pdu_bytes"`
	// SizeLimit is the most entries one search (or one page) returns. Default 1000.
	SizeLimit int `yaml:"size_limit"`
	// TimeLimit bounds one search. Default 60s.
	TimeLimit Duration `yaml:"time_limit"`
	// HiddenAttributes are subscriber attributes left out of the directory
	// (not returned, not matched by filters or compare). One of serialNumber
	// (the RA's id_number, a national ID document number), mail, o, ou.
	// Default ["serialNumber"]: the directory is public.
	HiddenAttributes []string `yaml:"hidden_attributes"`
	// AnonymousPeople is what anonymous clients (and accounts outside their
	// approved organisations) see of people's entries: all, none, or
	// profiles (only certificates of AnonymousProfiles). CA entries and
	// CRLs are always public. Default all (the demo); production: none.
	AnonymousPeople string `yaml:"anonymous_people"`
	// AnonymousProfiles are the certificate profiles anonymous clients see
	// with anonymous_people: profiles. Default [].
	AnonymousProfiles []string `yaml:"anonymous_profiles"`
	// PublicAttributes are the subscriber attributes returned to anyone but
	// a service account or a directory account allowed all attributes.
	// Default objectClass, cn, sn, uid, mail, o, ou, userCertificate.
	PublicAttributes []string `yaml:"public_attributes"`
	// BindFailuresBurst is how many failed password binds one source
	// address may make in a row; then its binds are refused (busy, with
	// the wait) until BindFailureRefill has passed per further attempt.
	// Defaults 5 and 10s.
	BindFailuresBurst int      `yaml:"bind_failures_burst"`
	BindFailureRefill Duration `yaml:"bind_failure_refill"`
	// ClientCAFile is a PEM file of extra root certificates that client
	// certificates for SASL EXTERNAL binds may chain to, besides this
	// server's CA certificates (which are always trusted). Certificates
	// of these roots are checked for expiry only: their revocation is
	// not known here. Default "": none.
	ClientCAFile string `yaml:"client_ca_file"`
	// CacheMB bounds the directory's cache of built subscriber entries, in
	// MiB (an entry with one 1 KB certificate is about 2.4 KB: each value
	// is kept once, encoded for answers). Entries not cached are built
	// from the store when read. Default 32.
	CacheMB int `yaml:"cache_mb"`
}

// Values of ldap.anonymous_people.
const (
	AnonymousPeopleAll      = "all"
	AnonymousPeopleNone     = "none"
	AnonymousPeopleProfiles = "profiles"
)

// PublishableLDAPAttributes are the subscriber attributes
// ldap.public_attributes may list.
var PublishableLDAPAttributes = []string{"objectClass", "cn", "sn", "uid", "mail", "o", "ou", "serialNumber", "userCertificate"}

// HideableLDAPAttributes are the subscriber attributes ldap.hidden_attributes
// may name: not the RDN's (cn, uid), not what person requires (sn) and not
// the certificate the directory is for.
var HideableLDAPAttributes = []string{"serialNumber", "mail", "o", "ou"}

// LDAPAccount is a directory service account. PasswordHash is a bcrypt hash
// ("$2a$...", e.g. from `htpasswd -nbBC 10 "" PASSWORD | cut -d: -f2`).
type LDAPAccount struct {
	DN           string `yaml:"dn"`
	PasswordHash string `yaml:"password_hash"`
}

// API configures the HTTPS listener for the RA and admin API.
type API struct {
	// Addr default ":8443".
	Addr string `yaml:"addr"`
	// Hosts are the DNS names and IPs in the API's TLS certificate.
	// Default ["localhost", "127.0.0.1", "::1"].
	Hosts []string `yaml:"hosts"`
	// MaxBodyBytes limits request bodies. Default 1 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Seed mounts POST /api/v1/seed (CA operators), which adds synthetic
	// subscribers with real certificates to a running server, for demos
	// and benchmarks. Never in production. Default false.
	Seed bool `yaml:"seed"`
}

// CA configures the issuing authority created by init.
type CA struct {
	// Name is the CA's short name in URLs (/crl/{name}.crl). Default "demo".
	Name string `yaml:"name"`
	// CommonName default "certcenter Demo Root CA"; Organization default
	// "certcenter"; Country default "CN".
	CommonName   string `yaml:"common_name"`
	Organization string `yaml:"organization"`
	Country      string `yaml:"country"`
	// KeyAlgorithm is ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072 or rsa-4096. Default "ecdsa-p256".
	KeyAlgorithm string `yaml:"key_algorithm"`
	// Validity of the root certificate. Default 20y.
	Validity Duration `yaml:"validity"`
	// PublicURL is the base of the http URLs put in certificates (AIA, CRL DP).
	// Default "http://localhost:8080".
	PublicURL string `yaml:"public_url"`
	// LDAPURL is the base of the ldap URLs put in CRL distribution points.
	// Default "ldap://localhost:1389".
	LDAPURL string `yaml:"ldap_url"`
}

// Signer selects where CA keys live.
type Signer struct {
	// Provider is "file" (PEM files in DATA/keys, the demo default) or "pkcs11".
	Provider string `yaml:"provider"`
	PKCS11   PKCS11 `yaml:"pkcs11"`
}

// PKCS11 configures an HSM. The PIN is never in the file: it comes from the
// environment variable PINEnv or the file PINFile.
type PKCS11 struct {
	Module     string `yaml:"module"`
	TokenLabel string `yaml:"token_label"`
	// Slot selects the token by slot ID when TokenLabel is empty.
	Slot *uint `yaml:"slot"`
	// PINEnv names the environment variable holding the user PIN. Default "CERTCENTER_PKCS11_PIN".
	PINEnv  string `yaml:"pin_env"`
	PINFile string `yaml:"pin_file"`
	// PoolSize is the number of sessions signing in parallel. Default 8.
	PoolSize int `yaml:"pool_size"`
	// ModuleInstances loads that many private copies of the module, each
	// with its own locks, and splits the pool between them. Default 1: right
	// for hardware HSMs. For SoftHSM2, which serialises on process-wide
	// locks, twice the number of cores, with PoolSize the same (see
	// signer/pkcs11/PERFORMANCE.md).
	ModuleInstances int `yaml:"module_instances"`
}

// PIN reads the PKCS#11 PIN from PINFile or the PINEnv variable.
func (p PKCS11) PIN() (string, error) {
	if p.PINFile != "" {
		b, err := os.ReadFile(p.PINFile)
		if err != nil {
			return "", fmt.Errorf("signer.pkcs11.pin_file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	v, ok := os.LookupEnv(p.PINEnv)
	if !ok || v == "" {
		return "", fmt.Errorf("signer.pkcs11.pin_env: environment variable %s is not set", p.PINEnv)
	}
	return v, nil
}

// OCSP configures the responder.
type OCSP struct {
	// Validity of each response (nextUpdate - thisUpdate). Default 72h; must be within 8h..240h.
	Validity Duration `yaml:"validity"`
	// Backdate moves thisUpdate into the past to absorb clock skew. Default 1h.
	Backdate Duration `yaml:"backdate"`
	// CacheEntries bounds the in-memory response cache. Default 100000.
	CacheEntries int `yaml:"cache_entries"`
	// CacheMB bounds the same cache in MiB (responses, their headers and
	// the cache's own bookkeeping); whichever bound is reached first
	// evicts. 0 disables the cache. Default 32.
	CacheMB int `yaml:"cache_mb"`
	// ResponderID is "name" or "key". Default "key".
	ResponderID string `yaml:"responder_id"`
	// Nonce is "ignore" (RFC 5019) or "sign" (echo it in a live-signed response). Default "ignore".
	Nonce string `yaml:"nonce"`
	// MaxRequestBytes limits a request. Default 8192.
	MaxRequestBytes int `yaml:"max_request_bytes"`
}

// CRL configures revocation lists.
type CRL struct {
	// Interval between full CRLs. Default 24h.
	Interval Duration `yaml:"interval"`
	// Validity of a full CRL (nextUpdate - thisUpdate). Default 168h.
	Validity Duration `yaml:"validity"`
	// DeltaDelay coalesces revocations before the delta and full CRLs are rebuilt. Default 2s.
	DeltaDelay Duration `yaml:"delta_delay"`
	// Shards partitions the CRL; 0 or 1 means one CRL per issuer. Default 1.
	// It reaches the CA only (ca.Options.CRLShards); the CRL builder reads
	// it from the CA, so certificates and CRLs cannot disagree.
	Shards int `yaml:"shards"`
	// DeltaValidity of a delta CRL (nextUpdate - thisUpdate); a delta is also
	// rebuilt when half of it has passed without a revocation. Default 1h.
	DeltaValidity Duration `yaml:"delta_validity"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	return &Config{
		DataDir: "./data",
		Log:     Log{Level: "info", Format: "text"},
		Store:   Store{SyncWrites: true, MinFreeMB: 256, CacheMB: 48},
		HTTP: HTTP{
			Addr:              ":8080",
			ReadHeaderTimeout: Duration(5 * time.Second),
			ReadTimeout:       Duration(10 * time.Second),
			WriteTimeout:      Duration(30 * time.Second),
			IdleTimeout:       Duration(120 * time.Second),
			MaxHeaderBytes:    16 << 10,
			ShutdownTimeout:   Duration(20 * time.Second),
			MaxConnections:    4096,
		},
		LDAP: LDAP{
			Addr: ":1389", LDAPSAddr: ":1636", AnonymousRead: true,
			MaxConnections: 4096, IdleTimeout: Duration(15 * time.Minute), WriteTimeout: Duration(30 * time.Second),
			MaxPending: 32, MaxPDUBytes: 256 << 10, SizeLimit: 1000, TimeLimit: Duration(60 * time.Second),
			HiddenAttributes: []string{"serialNumber"},
			AnonymousPeople:  AnonymousPeopleAll, AnonymousProfiles: []string{},
			BindFailuresBurst: 5, BindFailureRefill: Duration(10 * time.Second),
			PublicAttributes: []string{"objectClass", "cn", "sn", "uid", "mail", "o", "ou", "userCertificate"},
			CacheMB:          32,
		},
		API: API{Addr: ":8443", Hosts: []string{"localhost", "127.0.0.1", "::1"}, MaxBodyBytes: 1 << 20},
		CA: CA{
			Name:         "demo",
			CommonName:   "certcenter Demo Root CA",
			Organization: "certcenter",
			Country:      "CN",
			KeyAlgorithm: "ecdsa-p256",
			Validity:     Duration(20 * 365 * 24 * time.Hour),
			PublicURL:    "http://localhost:8080",
			LDAPURL:      "ldap://localhost:1389",
		},
		Signer: Signer{Provider: "file", PKCS11: PKCS11{PINEnv: "CERTCENTER_PKCS11_PIN", PoolSize: 8, ModuleInstances: 1}},
		OCSP: OCSP{
			Validity:        Duration(72 * time.Hour),
			Backdate:        Duration(time.Hour),
			CacheEntries:    100000,
			CacheMB:         32,
			ResponderID:     "key",
			Nonce:           "ignore",
			MaxRequestBytes: 8192,
		},
		CRL: CRL{
			Interval:      Duration(24 * time.Hour),
			Validity:      Duration(7 * 24 * time.Hour),
			DeltaDelay:    Duration(2 * time.Second),
			DeltaValidity: Duration(time.Hour),
			Shards:        1,
		},
		RA:      defaultRA(),
		Publish: defaultPublish(),
		Desk:    defaultDesk(),
		Tokens:  defaultTokens(),
		KB:      defaultKB(),
		NATS:    defaultNATS(),
		Replica: defaultReplica(),
	}
}

// Load reads a YAML file over the defaults. An unknown key is an error that
// names its full path; the result is validated.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes YAML over the defaults and validates the result.
func Parse(b []byte) (*Config, error) {
	cfg := Default()
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("parsing YAML: %w", err)
	}
	if len(root.Content) > 0 {
		if err := checkKeys(root.Content[0], reflect.TypeOf(*cfg), ""); err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(cfg); err != nil {
			return nil, fmt.Errorf("decoding: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// checkKeys walks the YAML tree beside the Go type so an unknown key is
// reported with its full dotted path and line ("http.adr (line 3)"), which
// yaml.v3's own message does not give.
func checkKeys(n *yaml.Node, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode {
		// Lists of mappings (publish.targets) are checked item by item.
		for i, item := range n.Content {
			if err := checkKeys(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(Duration(0)) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		return fmt.Errorf("%s (line %d): expected a mapping", orRoot(path), n.Line)
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := k.Value
		if path != "" {
			p = path + "." + k.Value
		}
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("unknown key %q (line %d)", p, k.Line)
		}
		if err := checkKeys(v, ft, p); err != nil {
			return err
		}
	}
	return nil
}

func orRoot(p string) string {
	if p == "" {
		return "top level"
	}
	return p
}

// Validate checks every value and names the key of the first bad one.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	checkAddr := func(key, v string, optional bool) {
		if v == "" && optional {
			return
		}
		host, port, err := net.SplitHostPort(v)
		if err != nil {
			bad(key, "%q is not a host:port address", v)
			return
		}
		if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad(key, "%q has a bad port", v)
		}
		if host != "" && net.ParseIP(host) == nil && !validHostname(host) {
			bad(key, "%q has a bad host", v)
		}
	}
	checkAddr("http.addr", c.HTTP.Addr, false)
	checkAddr("ldap.addr", c.LDAP.Addr, true)
	checkAddr("ldap.ldaps_addr", c.LDAP.LDAPSAddr, true)
	checkAddr("api.addr", c.API.Addr, false)
	checkAddr("metrics.addr", c.Metrics.Addr, true)
	if c.Metrics.Pprof && c.Metrics.Addr == "" {
		bad("metrics.pprof", "needs metrics.addr: profiles are served only on that listener")
	}
	for key, d := range map[string]Duration{
		"http.read_header_timeout": c.HTTP.ReadHeaderTimeout,
		"http.read_timeout":        c.HTTP.ReadTimeout,
		"http.write_timeout":       c.HTTP.WriteTimeout,
		"http.idle_timeout":        c.HTTP.IdleTimeout,
		"http.shutdown_timeout":    c.HTTP.ShutdownTimeout,
		"ca.validity":              c.CA.Validity,
		"crl.interval":             c.CRL.Interval,
		"crl.validity":             c.CRL.Validity,
		"crl.delta_delay":          c.CRL.DeltaDelay,
		"crl.delta_validity":       c.CRL.DeltaValidity,
	} {
		if d <= 0 {
			bad(key, "must be a positive duration")
		}
	}
	if c.Store.MinFreeMB < 8 {
		bad("store.min_free_mb", "must be at least 8 (MiB)")
	}
	if c.HTTP.MaxConnections < 1 {
		bad("http.max_connections", "must be at least 1")
	}
	if c.HTTP.MaxHeaderBytes < 1024 {
		bad("http.max_header_bytes", "must be at least 1024")
	}
	if c.API.MaxBodyBytes < 1024 {
		bad("api.max_body_bytes", "must be at least 1024")
	}
	if len(c.API.Hosts) == 0 {
		bad("api.hosts", "needs at least one name")
	}
	if !validCAName(c.CA.Name) {
		bad("ca.name", "%q must be 1-32 letters, digits or '-', and not end in -arl, -delta or -<digits> (another CA's CRL file names, internal/crlscope)", c.CA.Name)
	}
	if c.CA.CommonName == "" {
		bad("ca.common_name", "must not be empty")
	}
	if c.CA.Country != "" && len(c.CA.Country) != 2 {
		bad("ca.country", "%q must be a two-letter country code", c.CA.Country)
	}
	switch strings.ToLower(c.CA.KeyAlgorithm) {
	case "ecdsa-p256", "ecdsa-p384", "rsa-2048", "rsa-3072", "rsa-4096":
	default:
		bad("ca.key_algorithm", "%q is not one of ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096", c.CA.KeyAlgorithm)
	}
	checkURL := func(key, v, scheme string) {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || !strings.HasPrefix(u.Scheme, scheme) {
			bad(key, "%q is not a %s:// URL", v, scheme)
		}
	}
	checkURL("ca.public_url", c.CA.PublicURL, "http")
	checkURL("ca.ldap_url", c.CA.LDAPURL, "ldap")
	switch c.Signer.Provider {
	case "file":
	case "pkcs11":
		if c.Signer.PKCS11.Module == "" {
			bad("signer.pkcs11.module", "is required with provider pkcs11")
		}
		if c.Signer.PKCS11.TokenLabel == "" && c.Signer.PKCS11.Slot == nil {
			bad("signer.pkcs11.token_label", "or signer.pkcs11.slot is required with provider pkcs11")
		}
		if c.Signer.PKCS11.PINEnv == "" && c.Signer.PKCS11.PINFile == "" {
			bad("signer.pkcs11.pin_env", "or signer.pkcs11.pin_file is required with provider pkcs11")
		}
		if c.Signer.PKCS11.PoolSize < 1 || c.Signer.PKCS11.PoolSize > 256 {
			bad("signer.pkcs11.pool_size", "must be between 1 and 256")
		}
		if c.Signer.PKCS11.ModuleInstances < 1 || c.Signer.PKCS11.ModuleInstances > 64 {
			bad("signer.pkcs11.module_instances", "must be between 1 and 64")
		}
	default:
		bad("signer.provider", "%q is not one of file, pkcs11", c.Signer.Provider)
	}
	if v := c.OCSP.Validity.D(); v < 8*time.Hour || v > 10*24*time.Hour {
		bad("ocsp.validity", "%s is outside the CA/Browser Forum's 8h to 10 days", v)
	}
	if c.OCSP.Backdate < 0 || c.OCSP.Backdate.D() > c.OCSP.Validity.D()/2 {
		bad("ocsp.backdate", "must be between 0 and half of ocsp.validity")
	}
	if c.OCSP.CacheMB < 0 {
		bad("ocsp.cache_mb", "must not be negative")
	}
	if c.LDAP.CacheMB < 1 {
		bad("ldap.cache_mb", "must be at least 1 (MiB)")
	}
	if c.Store.CacheMB < 8 {
		bad("store.cache_mb", "must be at least 8 (MiB)")
	}
	if c.Server.MemoryLimit < 0 || (c.Server.MemoryLimit > 0 && c.Server.MemoryLimit < 64<<20) {
		bad("server.memory_limit", "must be 0 (off) or at least 64MiB, got %d bytes", int64(c.Server.MemoryLimit))
	}
	if c.OCSP.CacheEntries < 0 {
		bad("ocsp.cache_entries", "must not be negative")
	}
	if c.OCSP.ResponderID != "key" && c.OCSP.ResponderID != "name" {
		bad("ocsp.responder_id", "%q is not one of key, name", c.OCSP.ResponderID)
	}
	if c.OCSP.Nonce != "ignore" && c.OCSP.Nonce != "sign" {
		bad("ocsp.nonce", "%q is not one of ignore, sign", c.OCSP.Nonce)
	}
	if c.OCSP.MaxRequestBytes < 256 {
		bad("ocsp.max_request_bytes", "must be at least 256")
	}
	c.validateLDAP(bad)
	if c.CRL.Shards < 0 || c.CRL.Shards > 1024 {
		bad("crl.shards", "must be between 0 and 1024")
	}
	c.RA.validate(bad, checkAddr)
	c.Publish.validate(bad)
	c.Desk.validate(bad)
	c.Tokens.validate(bad)
	c.KB.validate(bad)
	c.validateReplica(bad)
	return errors.Join(errs...)
}

func validCAName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	// CRL files are named <ca>.crl, <ca>-arl.crl, <ca>-delta.crl and
	// <ca>-<k>.crl (internal/crlscope): a CA named like one of another CA's
	// suffixed names would share its files.
	lower := strings.ToLower(s)
	if strings.HasSuffix(lower, "-arl") || strings.HasSuffix(lower, "-delta") {
		return false
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 && i < len(s)-1 && strings.Trim(s[i+1:], "0123456789") == "" {
		return false
	}
	return true
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// Duration is a time.Duration that YAML writes as "90s", "72h", "7d" or "20y"
// (a year is 365 days).
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ParseDuration accepts Go durations plus the d and y suffixes.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "y": 365 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			f, err := strconv.ParseFloat(n, 64)
			if err != nil {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			return Duration(f * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (use e.g. 90s, 72h, 7d, 20y)", s)
	}
	return Duration(d), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ByteSize is a size in bytes, written with a unit in YAML: "512MiB",
// "1.5GiB", "2GB", or a plain number of bytes.
type ByteSize int64

// ParseByteSize reads a size: a number and one of B, KiB, MiB, GiB, TiB
// (powers of 1024) or KB, MB, GB, TB (powers of 1000); no unit is bytes.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	num := strings.TrimRightFunc(s, func(r rune) bool { return r >= 'A' && r <= 'z' })
	unit := strings.TrimSpace(s[len(num):])
	mult := map[string]float64{"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if mult == 0 || err != nil || f < 0 || f*mult > math.MaxInt64 {
		return 0, fmt.Errorf("bad size %q: want a number and a unit (B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	return ByteSize(f * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (b ByteSize) MarshalYAML() (any, error) { return strconv.FormatInt(int64(b), 10), nil }

func (c *Config) validateLDAP(bad func(key, format string, a ...any)) {
	l := c.LDAP
	if l.Suffix != "" && !strings.Contains(l.Suffix, "=") {
		bad("ldap.suffix", "%q is not a DN like o=example,c=CN", l.Suffix)
	}
	if l.MaxConnections < 1 {
		bad("ldap.max_connections", "must be at least 1")
	}
	if l.MaxPending < 1 || l.MaxPending > 1024 {
		bad("ldap.max_pending", "must be between 1 and 1024")
	}
	if l.MaxPDUBytes < 1024 {
		bad("ldap.max_pdu_bytes", "must be at least 1024")
	}
	if l.SizeLimit < 1 {
		bad("ldap.size_limit", "must be at least 1")
	}
	for key, d := range map[string]Duration{"ldap.idle_timeout": l.IdleTimeout, "ldap.write_timeout": l.WriteTimeout, "ldap.time_limit": l.TimeLimit} {
		if d <= 0 {
			bad(key, "must be a positive duration")
		}
	}
	for i, a := range l.HiddenAttributes {
		if !slices.ContainsFunc(HideableLDAPAttributes, func(h string) bool { return strings.EqualFold(h, a) }) {
			bad(fmt.Sprintf("ldap.hidden_attributes[%d]", i), "%q cannot be hidden: one of %s", a, strings.Join(HideableLDAPAttributes, ", "))
		}
	}
	if l.BindFailuresBurst < 1 {
		bad("ldap.bind_failures_burst", "must be at least 1")
	}
	if l.BindFailureRefill <= 0 {
		bad("ldap.bind_failure_refill", "must be a positive duration")
	}
	switch l.AnonymousPeople {
	case AnonymousPeopleAll, AnonymousPeopleNone:
	case AnonymousPeopleProfiles:
		if len(l.AnonymousProfiles) == 0 {
			bad("ldap.anonymous_profiles", "must name at least one profile when ldap.anonymous_people is profiles")
		}
	default:
		bad("ldap.anonymous_people", "%q is not one of all, none, profiles", l.AnonymousPeople)
	}
	for i, p := range l.AnonymousProfiles {
		if strings.TrimSpace(p) == "" {
			bad(fmt.Sprintf("ldap.anonymous_profiles[%d]", i), "is empty")
		}
	}
	for i, a := range l.PublicAttributes {
		if !slices.ContainsFunc(PublishableLDAPAttributes, func(h string) bool { return strings.EqualFold(h, a) }) {
			bad(fmt.Sprintf("ldap.public_attributes[%d]", i), "%q is not a subscriber attribute: one of %s", a, strings.Join(PublishableLDAPAttributes, ", "))
		}
	}
	if l.ClientCAFile != "" {
		if b, err := os.ReadFile(l.ClientCAFile); err != nil {
			bad("ldap.client_ca_file", "%v", err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			bad("ldap.client_ca_file", "%s holds no PEM certificate", l.ClientCAFile)
		}
	}
	seen := map[string]bool{}
	for i, a := range l.Accounts {
		key := fmt.Sprintf("ldap.accounts[%d]", i)
		if !strings.Contains(a.DN, "=") {
			bad(key+".dn", "%q is not a DN", a.DN)
		}
		if seen[strings.ToLower(a.DN)] {
			bad(key+".dn", "%q is listed twice", a.DN)
		}
		seen[strings.ToLower(a.DN)] = true
		if !strings.HasPrefix(a.PasswordHash, "$2a$") && !strings.HasPrefix(a.PasswordHash, "$2b$") && !strings.HasPrefix(a.PasswordHash, "$2y$") || len(a.PasswordHash) != 60 {
			bad(key+".password_hash", "must be a bcrypt hash ($2a$/$2b$/$2y$, 60 characters)")
		}
	}
}
