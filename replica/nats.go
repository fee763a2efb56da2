package replica

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/certcenter/certcenter/config"
)

// maxPayload is the embedded server's largest message: a full CRL of a
// large CA travels in one message. External clusters need max_payload of
// at least the largest CRL.
const maxPayload = 8 << 20

// Embedded is a NATS server with JetStream running in this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts the embedded NATS server of cfg (nats.embedded) and
// waits until it accepts clients. With routes it joins the cluster; the
// JetStream meta group forms once a majority of the routes is up, which
// the publisher and followers wait for by retrying.
func StartEmbedded(cfg config.NATS, dataDir string, log *slog.Logger) (*Embedded, error) {
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats.listen: %w", err)
	}
	name := cfg.ServerName
	if name == "" {
		name, _ = os.Hostname()
	}
	dir := cfg.StoreDir
	if dir == "" {
		dir = filepath.Join(dataDir, "nats")
	}
	opts := &server.Options{
		ServerName: name, Host: host, Port: port,
		JetStream: true, StoreDir: dir, MaxPayload: maxPayload,
		NoSigs: true,
	}
	if cfg.ClusterListen != "" {
		h, p, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("nats.cluster_listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: h, Port: p, ConnectRetries: 1 << 30}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats.routes: %w", err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.TLS.Enabled() {
		tc, err := tlsConfig(cfg.TLS, true)
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.TLS, opts.TLSTimeout = tc, true, 5
		if cfg.ClusterListen != "" {
			opts.Cluster.TLSConfig, opts.Cluster.TLSTimeout = tc.Clone(), 5
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.SetLoggerV2(natsLogger{log.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS server did not accept connections within 30s")
	}
	return &Embedded{srv: srv}, nil
}

// ClientURL is where the embedded server accepts clients.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Shutdown stops the embedded server.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func splitHostPort(a string) (string, int, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return h, n, nil
}

// tlsConfig builds the TLS of NATS connections from PEM files; server
// configs also verify client certificates when a CA file is given.
func tlsConfig(c config.NATSTLS, forServer bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls: loading %s: %w", c.CertFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("nats.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("nats.tls.ca_file: %s holds no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
		if forServer {
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return tc, nil
}

// Connect opens the client connection: to the embedded server when there
// is one (the client learns the cluster's other servers and fails over to
// them), else to nats.url. It reconnects for ever.
func Connect(cfg config.NATS, embedded *Embedded, name string, log *slog.Logger) (*nats.Conn, error) {
	u := cfg.URL
	if embedded != nil {
		u = embedded.ClientURL()
	}
	opts := []nats.Option{
		nats.Name(name), nats.Timeout(cfg.ConnectTimeout.D()),
		nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS connection lost", "component", "replica", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("NATS reconnected", "component", "replica", "server", c.ConnectedUrlRedacted())
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, os.Getenv(cfg.PasswordEnv)))
	}
	if cfg.TLS.Enabled() {
		tc, err := tlsConfig(cfg.TLS, false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(u, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", u, err)
	}
	return nc, nil
}

// Stream names the stream, its subject and the snapshot bucket.
type Stream struct {
	Name, Subject, Bucket string
	// Replicas is the replication factor of stream and bucket.
	Replicas int
	MaxAge   time.Duration
	MaxMsgs  int64
}

// StreamOf reads the replica section of the config.
func StreamOf(c config.Replica) Stream {
	return Stream{Name: c.Stream, Subject: c.Subject, Bucket: c.Bucket, Replicas: c.Replicas, MaxAge: c.MaxAge.D(), MaxMsgs: c.MaxMsgs}
}

// largeBucket holds message bodies too large for one NATS message.
func (s Stream) largeBucket() string { return s.Bucket + "-large" }

// ensure creates or updates the stream and the buckets (the primary does).
func (s Stream) ensure(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, jetstream.ObjectStore, jetstream.ObjectStore, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: s.Name, Subjects: []string{s.Subject}, Replicas: s.Replicas,
		Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardOld,
		MaxAge: s.MaxAge, MaxMsgs: s.MaxMsgs, Duplicates: 2 * time.Minute,
		Description: "certcenter change log (package replica)",
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating stream %s: %w", s.Name, err)
	}
	snaps, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: s.Bucket, Replicas: s.Replicas, Storage: jetstream.FileStorage,
		Description: "certcenter store snapshots (package replica)",
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating object store %s: %w", s.Bucket, err)
	}
	large, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: s.largeBucket(), Replicas: s.Replicas, Storage: jetstream.FileStorage, TTL: s.MaxAge,
		Description: "certcenter change-log messages too large for one NATS message (package replica)",
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("creating object store %s: %w", s.largeBucket(), err)
	}
	return st, snaps, large, nil
}

type natsLogger struct{ l *slog.Logger }

func (n natsLogger) Noticef(f string, a ...any) { n.l.Debug(fmt.Sprintf(f, a...)) }
func (n natsLogger) Warnf(f string, a ...any)   { n.l.Warn(fmt.Sprintf(f, a...)) }
func (n natsLogger) Fatalf(f string, a ...any)  { n.l.Error(fmt.Sprintf(f, a...)) }
func (n natsLogger) Errorf(f string, a ...any)  { n.l.Error(fmt.Sprintf(f, a...)) }
func (n natsLogger) Debugf(f string, a ...any)  {}
func (n natsLogger) Tracef(f string, a ...any)  {}
