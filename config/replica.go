package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"time"
)

// NATS configures the NATS JetStream connection the primary publishes the
// change log to and replicas follow (package replica). Unused by the
// all-in-one server (replica.role "").
type NATS struct {
	// Embedded starts a NATS server with JetStream inside this process;
	// with Routes the embedded servers of several certcenter machines form
	// one cluster, so three machines need nothing else. Default false.
	Embedded bool `yaml:"embedded"`
	// URL is the external cluster to connect to (comma-separated
	// nats:// or tls:// URLs), used when Embedded is false. Default "".
	URL string `yaml:"url"`
	// ServerName names the embedded server in the cluster; unique per
	// machine. Default "": the host name.
	ServerName string `yaml:"server_name"`
	// Listen is the embedded server's client address. Default "127.0.0.1:4222".
	Listen string `yaml:"listen"`
	// ClusterName is the embedded cluster's name, the same on every
	// machine. Default "certcenter".
	ClusterName string `yaml:"cluster_name"`
	// ClusterListen is the embedded server's route address; "" for a
	// single embedded server without a cluster. Default "".
	ClusterListen string `yaml:"cluster_listen"`
	// Routes are the other embedded servers' route URLs
	// (nats-route://host:6222). Default none.
	Routes []string `yaml:"routes"`
	// StoreDir holds the embedded server's JetStream files. Default
	// "<data_dir>/nats".
	StoreDir string `yaml:"store_dir"`
	// CredsFile is a NATS credentials file (JWT and NKey seed) for the
	// client connection. Default "": none.
	CredsFile string `yaml:"creds_file"`
	// User and PasswordEnv authenticate the client with a user and a
	// password from that environment variable. Default "": none.
	User        string `yaml:"user"`
	PasswordEnv string `yaml:"password_env"`
	// TLS secures the client connection and, when embedded, the client
	// and route listeners. Default off.
	TLS NATSTLS `yaml:"tls"`
	// ConnectTimeout bounds one connection attempt. Default 5s.
	ConnectTimeout Duration `yaml:"connect_timeout"`
}

// NATSTLS is the TLS of NATS connections: PEM files.
type NATSTLS struct {
	// CAFile verifies the server (and, embedded, the routes' and clients').
	// Default "": TLS off unless CertFile is set.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are this process's certificate and key (the
	// client certificate, and the embedded server's). Default "".
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Enabled says whether TLS is configured.
func (t NATSTLS) Enabled() bool { return t.CAFile != "" || t.CertFile != "" }

// Replica configures the read-replica role (package replica).
type Replica struct {
	// Role is "" (the all-in-one server), "primary" (RA, CA, API, signer,
	// change log, and publishes the log to NATS) or "replica" (serves
	// OCSP, CRLs, CA certificates and LDAP read-only from the stream, no
	// CA key). serve --role overrides it. Default "".
	Role string `yaml:"role"`
	// Name identifies this replica: its durable consumer is
	// "replica-<name>". Default "": the host name.
	Name string `yaml:"name"`
	// Stream is the JetStream stream of the change log, Subject its
	// subject, Bucket the object store of snapshots. Defaults
	// "CERTCENTER_LOG", "certcenter.log", "certcenter-snapshots".
	Stream  string `yaml:"stream"`
	Subject string `yaml:"subject"`
	Bucket  string `yaml:"bucket"`
	// Replicas is the stream's and bucket's replication factor (Raft):
	// 3 in production, 1 for a single NATS server. Default 3.
	Replicas int `yaml:"replicas"`
	// MaxAge and MaxMsgs bound the stream's retention; a replica further
	// behind re-bootstraps from the snapshot. Defaults 168h and 10000000.
	MaxAge  Duration `yaml:"max_age"`
	MaxMsgs int64    `yaml:"max_msgs"`
	// SnapshotInterval is how often the primary stores a snapshot (the
	// store's backup stream) in the bucket. Default 6h.
	SnapshotInterval Duration `yaml:"snapshot_interval"`
	// MaxLag: a replica whose oldest unapplied change is older than this,
	// or that has not heard from the stream for that long, reports not
	// ready in /readyz. Default 10s.
	MaxLag Duration `yaml:"max_lag"`
	// BatchSize is how many entries the publisher reads and a replica
	// applies per transaction. Default 256.
	BatchSize int `yaml:"batch_size"`
}

func defaultNATS() NATS {
	return NATS{Listen: "127.0.0.1:4222", ClusterName: "certcenter", ConnectTimeout: Duration(5 * time.Second)}
}

func defaultReplica() Replica {
	return Replica{
		Stream: "CERTCENTER_LOG", Subject: "certcenter.log", Bucket: "certcenter-snapshots",
		Replicas: 3, MaxAge: Duration(168 * time.Hour), MaxMsgs: 10_000_000,
		SnapshotInterval: Duration(6 * time.Hour), MaxLag: Duration(10 * time.Second), BatchSize: 256,
	}
}

var (
	natsName   = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	natsStream = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	natsSubj   = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)
)

func (c *Config) validateReplica(bad func(key, format string, a ...any)) {
	r, n := c.Replica, c.NATS
	switch r.Role {
	case "", "primary", "replica":
	default:
		bad("replica.role", "%q is not one of \"\", primary, replica", r.Role)
	}
	if r.Name != "" && !natsName.MatchString(r.Name) {
		bad("replica.name", "%q must be 1-64 letters, digits, - or _", r.Name)
	}
	if !natsStream.MatchString(r.Stream) {
		bad("replica.stream", "%q must be 1-64 letters, digits, - or _", r.Stream)
	}
	if !natsSubj.MatchString(r.Subject) {
		bad("replica.subject", "%q is not a NATS subject without wildcards", r.Subject)
	}
	if !natsStream.MatchString(r.Bucket) {
		bad("replica.bucket", "%q must be 1-64 letters, digits, - or _", r.Bucket)
	}
	if r.Replicas < 1 || r.Replicas > 5 {
		bad("replica.replicas", "must be between 1 and 5")
	}
	if r.MaxAge.D() < time.Minute {
		bad("replica.max_age", "must be at least 1m")
	}
	if r.MaxMsgs < 1 {
		bad("replica.max_msgs", "must be positive")
	}
	if r.SnapshotInterval.D() < time.Second {
		bad("replica.snapshot_interval", "must be at least 1s")
	}
	if r.MaxLag.D() <= 0 {
		bad("replica.max_lag", "must be positive")
	}
	if r.BatchSize < 1 || r.BatchSize > 10000 {
		bad("replica.batch_size", "must be between 1 and 10000")
	}
	if n.ConnectTimeout.D() <= 0 {
		bad("nats.connect_timeout", "must be positive")
	}
	if n.ServerName != "" && !natsName.MatchString(n.ServerName) {
		bad("nats.server_name", "%q must be 1-64 letters, digits, - or _", n.ServerName)
	}
	if n.Embedded {
		if _, _, err := net.SplitHostPort(n.Listen); err != nil {
			bad("nats.listen", "%q is not host:port", n.Listen)
		}
		if n.ClusterListen != "" {
			if _, _, err := net.SplitHostPort(n.ClusterListen); err != nil {
				bad("nats.cluster_listen", "%q is not host:port", n.ClusterListen)
			}
			if !natsName.MatchString(n.ClusterName) {
				bad("nats.cluster_name", "%q must be 1-64 letters, digits, - or _", n.ClusterName)
			}
		}
		for i, u := range n.Routes {
			pu, err := url.Parse(u)
			if err != nil || (pu.Scheme != "nats-route" && pu.Scheme != "nats" && pu.Scheme != "tls") || pu.Host == "" {
				bad(fmt.Sprintf("nats.routes[%d]", i), "%q is not a nats-route://host:port URL", u)
			}
		}
		if len(n.Routes) > 0 && n.ClusterListen == "" {
			bad("nats.cluster_listen", "required with nats.routes")
		}
	} else if r.Role != "" && n.URL == "" {
		bad("nats.url", "required for replica.role %s unless nats.embedded is true", r.Role)
	}
	if (n.TLS.CertFile == "") != (n.TLS.KeyFile == "") {
		bad("nats.tls.key_file", "nats.tls.cert_file and nats.tls.key_file go together")
	}
	if n.User != "" && n.PasswordEnv == "" {
		bad("nats.password_env", "required with nats.user")
	}
	if n.User != "" && n.CredsFile != "" {
		bad("nats.creds_file", "use either nats.creds_file or nats.user, not both")
	}
}
