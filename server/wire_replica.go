package server

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/certcenter/certcenter/bootstrap"
	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/config"
	"github.com/certcenter/certcenter/crl"
	"github.com/certcenter/certcenter/internal/crlscope"
	"github.com/certcenter/certcenter/ocsp"
	"github.com/certcenter/certcenter/replica"
	"github.com/certcenter/certcenter/signer"
	"github.com/certcenter/certcenter/store"
)

// ocspNamespace is the ocsp package's blob namespace of pre-signed
// responses (ocsp/record.go).
const ocspNamespace = "ocsp"

// replicatedBlobs are the blob namespaces a replica serves from: the
// pre-signed OCSP responses and the CRLs with their metadata.
var replicatedBlobs = []string{ocspNamespace, crlscope.Namespace, crlscope.MetaNamespace}

// natsConn is the NATS side of a primary or a replica: the embedded server
// (if any) and the client connection.
type natsConn struct {
	emb *replica.Embedded
	nc  *nats.Conn
	js  jetstream.JetStream
}

func openNATS(cfg *config.Config, name string, log *slog.Logger) (*natsConn, error) {
	n := &natsConn{}
	if cfg.NATS.Embedded {
		emb, err := replica.StartEmbedded(cfg.NATS, cfg.DataDir, log)
		if err != nil {
			return nil, err
		}
		n.emb = emb
	}
	nc, err := replica.Connect(cfg.NATS, n.emb, name, log)
	if err != nil {
		n.close()
		return nil, err
	}
	n.nc = nc
	if n.js, err = jetstream.New(nc); err != nil {
		n.close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return n, nil
}

func (n *natsConn) close() {
	if n.nc != nil {
		n.nc.Close()
	}
	if n.emb != nil {
		n.emb.Shutdown()
	}
}

func (n *natsConn) service() service {
	return service{name: "nats", start: func(context.Context) error { return nil },
		stop: func(context.Context) error { n.close(); return nil }}
}

func replicaName(cfg *config.Config) string {
	if cfg.Replica.Name != "" {
		return cfg.Replica.Name
	}
	h, _ := os.Hostname()
	return h
}

// wirePrimary publishes the change log to the stream (replica.role
// primary). The store logs every replicated write from the start of Start
// (server.go), so what bootstrap wrote is in the log too.
func wirePrimary(c *components) error {
	if c.cfg.Replica.Role != "primary" {
		return nil
	}
	var n *natsConn
	var pub *replica.Publisher
	jobs := newLoop("replica-publisher", c.log, func(ctx context.Context) error { return pub.Run(ctx) })
	c.addService(service{
		name: "replica-publisher",
		start: func(ctx context.Context) error {
			var err error
			if n, err = openNATS(c.cfg, "certcenter-primary-"+replicaName(c.cfg), c.log); err != nil {
				return err
			}
			pub, err = replica.NewPublisher(replica.PublisherOptions{
				Store: c.core.store, JetStream: n.js, Stream: replica.StreamOf(c.cfg.Replica), Logger: c.log, Registerer: c.reg,
				BatchSize: c.cfg.Replica.BatchSize, SnapshotInterval: c.cfg.Replica.SnapshotInterval.D(),
			})
			if err != nil {
				n.close()
				return err
			}
			c.primary, c.nats = pub, n
			jobs.start(ctx)
			return nil
		},
		stop: func(ctx context.Context) error {
			err := jobs.stop(ctx)
			n.close()
			return err
		},
	})
	return nil
}

// startReplica runs the replica role: its own store fed by the stream, and
// the ocsp, crl and directory packages in their read-only modes over it.
// No signer, no API listener, no RA or admin.
func startReplica(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *Server, err error) {
	begin := time.Now()
	restoreMemoryLimit := applyMemoryLimit(cfg, log)
	if err := prepareDataDir(cfg.DataDir); err != nil {
		restoreMemoryLimit()
		return nil, err
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(cfg.DataDir, dbDir), SyncWrites: cfg.Store.SyncWrites, MinFreeBytes: cfg.Store.MinFreeMB << 20, CacheBytes: cfg.Store.CacheMB << 20, Logger: log})
	if err != nil {
		restoreMemoryLimit()
		return nil, err
	}
	core := &core{store: st, signers: keyless{st}}
	name := replicaName(cfg)
	n, err := openNATS(cfg, "certcenter-replica-"+name, log)
	if err != nil {
		core.Close()
		restoreMemoryLimit()
		return nil, err
	}
	defer func() {
		if err != nil {
			n.close()
			core.Close()
			restoreMemoryLimit()
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var responder *ocsp.Responder
	fol, err := replica.NewFollower(replica.FollowerOptions{
		Store: st, JetStream: n.js, Stream: replica.StreamOf(cfg.Replica), Name: name, Logger: log, Registerer: reg,
		MaxLag: cfg.Replica.MaxLag.D(), BatchSize: cfg.Replica.BatchSize, TempDir: cfg.DataDir,
		OnReload: func(ctx context.Context) {
			if core.ca != nil {
				reloadIssuers(ctx, core.ca, responder, log)
			}
			// Loading a snapshot leaves the heap it needed (decoded
			// batches, watchers' rebuilds) to the scavenger, which took
			// minutes to return it: 1.5 GB RssAnon right after a
			// bootstrap of 100 000 certificates, 0.45 GB once settled.
			debug.FreeOSMemory()
		},
		OnApplied: func(ctx context.Context, recs []store.Record) {
			cas := false
			for _, r := range recs {
				if ns, k, ok := r.Blob(); ok && ns == ocspNamespace && responder != nil {
					if serial, err := hex.DecodeString(k); err == nil {
						responder.Invalidate(serial)
					}
				}
				cas = cas || r.IsCA()
			}
			if cas && core.ca != nil {
				reloadIssuers(ctx, core.ca, responder, log)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	if err := fol.Start(ctx); err != nil {
		return nil, err
	}
	core.ca = ca.New(ca.Options{Store: st, Signers: core.signers, Logger: log,
		PublicURL: cfg.CA.PublicURL, LDAPURL: cfg.CA.LDAPURL, Suffix: cfg.LDAP.Suffix, CRLShards: cfg.CRL.Shards})
	if err := core.ca.Load(ctx); err != nil {
		return nil, fmt.Errorf("loading the CAs of the replicated store: %w", err)
	}
	c := &components{
		cfg: cfg, log: log, audit: log.With("stream", "audit"), core: core, reg: reg,
		public: http.NewServeMux(), api: http.NewServeMux(), tlsCert: replicaTLS(cfg, log),
	}
	s := &Server{c: c, addrs: map[string]string{}, storeJobs: newLoop("store", log, st.Run), restoreMemoryLimit: restoreMemoryLimit}
	c.setAddr = s.setAddr
	c.follower, c.nats = fol, n
	c.addService(n.service())
	s.storeJobs.start(ctx)

	if responder, err = newReadOnlyOCSP(cfg, core, log, reg); err != nil {
		s.Stop(context.Background())
		return nil, err
	}
	c.public.Handle("POST /ocsp", responder)
	c.public.Handle("/ocsp/", responder)
	c.addFront("/ocsp", responder)
	c.addCheck("ocsp", responder.Ready)
	c.runLoop("ocsp", responder.Run) // read-only: marks itself ready and waits
	b, err := crl.New(crl.Options{Store: st, CA: core.ca, Logger: log, Registerer: reg, ServeOnly: true,
		Interval: cfg.CRL.Interval.D(), Validity: cfg.CRL.Validity.D(), DeltaValidity: cfg.CRL.DeltaValidity.D(), DeltaDelay: cfg.CRL.DeltaDelay.D()})
	if err != nil {
		s.Stop(context.Background())
		return nil, fmt.Errorf("crl: %w", err)
	}
	c.public.HandleFunc("GET "+crlscope.HTTPPath+"{file}", b.ServeCRL)
	c.public.HandleFunc("GET /ca/{file}", b.ServeCACert)
	c.addCheck("crl", b.Ready)
	c.addCheck("replica", fol.Ready)
	if err := wireDirectory(c); err != nil {
		s.Stop(context.Background())
		return nil, err
	}
	c.runLoop("replica-follower", fol.Run)
	c.addService(service{name: "crl", start: func(context.Context) error { return nil }, stop: func(context.Context) error { b.Close(); return nil }})
	s.routeBasics()
	c.addService(s.httpService("http", cfg.HTTP.Addr, c.publicHandler, nil))
	for _, svc := range c.services {
		if err := svc.start(ctx); err != nil {
			s.Stop(context.Background())
			return nil, fmt.Errorf("starting %s: %w", svc.name, err)
		}
		s.started = append(s.started, svc)
	}
	s.ready.Store(true)
	log.Info("certcenter replica ready", "version", Version, "replica", name, "applied", fol.Applied(), "startup", time.Since(begin).Round(time.Millisecond),
		"http", s.Addr("http"), "ldap", s.Addr("ldap"), "ldaps", s.Addr("ldaps"))
	return s, nil
}

func newReadOnlyOCSP(cfg *config.Config, core *core, log *slog.Logger, reg prometheus.Registerer) (*ocsp.Responder, error) {
	r, err := ocsp.New(ocsp.Options{
		Store: core.store, Authority: core.ca, Logger: log, Registerer: reg, ReadOnly: true,
		Validity: cfg.OCSP.Validity.D(), Backdate: cfg.OCSP.Backdate.D(),
		CacheEntries: ocspCacheEntries(cfg.OCSP), CacheBytes: int64(cfg.OCSP.CacheMB) << 20,
		ResponderIDByName: cfg.OCSP.ResponderID == "name", MaxRequestBytes: cfg.OCSP.MaxRequestBytes,
		BodyTimeout: cfg.HTTP.ReadTimeout.D(), Path: "/ocsp",
	})
	if err != nil {
		return nil, fmt.Errorf("building the OCSP responder: %w", err)
	}
	return r, nil
}

func reloadIssuers(ctx context.Context, a *ca.Authority, r *ocsp.Responder, log *slog.Logger) {
	if err := a.Load(ctx); err != nil {
		log.Error("reloading replicated CAs", "err", err)
		return
	}
	if r != nil {
		if err := r.ReloadIssuers(); err != nil {
			log.Error("reloading the OCSP responder's CAs", "err", err)
		}
	}
}

// replicaTLS serves LDAPS and StartTLS on a replica with the certificate
// and key the operator placed in <data_dir>/tls/server.{crt,key} (a replica
// issues nothing, so it cannot make its own).
func replicaTLS(cfg *config.Config, log *slog.Logger) listenerCert {
	dir := filepath.Join(cfg.DataDir, bootstrap.TLSDir)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		log.Warn("replica has no TLS certificate: LDAPS and StartTLS refuse handshakes", "dir", dir, "err", err)
		return listenerCert{func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("this replica has no TLS certificate (" + dir + ")")
		}}
	}
	return listenerCert{func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }}
}

// keyless is a replica's signer.Provider: it knows the CA and OCSP
// responder public keys from the replicated CA records and has no private
// key, so ca.Authority loads the CAs and nothing can sign.
type keyless struct{ st *store.Store }

var errNoKey = errors.New("a read replica holds no CA private key")

func (k keyless) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	var pub crypto.PublicKey
	err := k.st.View(ctx, func(tx *store.Tx) error {
		cas, err := tx.CAs()
		if err != nil {
			return err
		}
		for _, rec := range cas {
			der := rec.CertDER
			if rec.OCSPKeyRef == name && rec.KeyRef != name {
				der = rec.OCSPCertDER
			} else if rec.KeyRef != name {
				continue
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				return err
			}
			pub = cert.PublicKey
			return nil
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if pub == nil {
		return nil, fmt.Errorf("key %s: %w", name, signer.ErrKeyNotFound)
	}
	return publicOnly{pub}, nil
}

func (keyless) Generate(context.Context, string, signer.Algorithm) (crypto.Signer, error) {
	return nil, errNoKey
}
func (keyless) Healthy(context.Context) error { return nil }
func (keyless) Close() error                  { return nil }

type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }
func (publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errNoKey
}
