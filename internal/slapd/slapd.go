// Package slapd runs a throwaway OpenLDAP slapd for tests and benchmarks:
// its own slapd.conf and back-mdb database in a directory, loopback
// listeners (ldap://, ldaps://, StartTLS), bulk loads with slapadd, start
// in its own process group, stop with SIGTERM then SIGKILL.
//
// It owns nothing of certcenter's: publish's tests and bench/publish use it
// as a publishing target, bench/ldap as the server certcenter's directory is
// compared with. It does not import testing, so commands can use it;
// slapdtest wraps it for tests.
package slapd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The binaries of the Debian package slapd.
const (
	SlapdPath   = "/usr/sbin/slapd"
	SlapaddPath = "/usr/sbin/slapadd"
)

// ErrNotInstalled is returned (wrapped, with the missing path) when the
// slapd binaries are absent.
var ErrNotInstalled = errors.New("OpenLDAP slapd is not installed: install the Debian package slapd (apt-get install slapd ldap-utils)")

// Installed reports whether slapd and slapadd are present.
func Installed() error {
	for _, p := range []string{SlapdPath, SlapaddPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s missing: %w", p, ErrNotInstalled)
		}
	}
	return nil
}

// TLS is the server side of ldaps:// and StartTLS.
type TLS struct {
	CertFile, KeyFile string // PEM
}

// Config describes one slapd. Only Dir, URLs and Suffix are required.
type Config struct {
	// Dir holds slapd.conf, the pid and args files and the database
	// (Dir/db); it is created if missing.
	Dir string
	// URLs are slapd's listeners (-h), e.g. "ldap://127.0.0.1:38901/" and
	// "ldaps://127.0.0.1:38902/". The first ldap:// one is used to check
	// that slapd accepts and by Dial.
	URLs []string
	// Suffix of the one back-mdb database, e.g. "o=test".
	Suffix string
	// RootDN and RootPW: the database's administrator ("" for none: the
	// database is then read-only over LDAP, loaded with slapadd).
	RootDN, RootPW string
	// Indexes are "attrs type" lines, e.g. "cn,uid eq"; default
	// ["objectClass eq", "cn eq"].
	Indexes []string
	// NoSync sets back-mdb's dbnosync: no fsync per write, so a
	// measurement shows the client rather than the disk.
	NoSync bool
	// MaxSize is back-mdb's map size in bytes; default 1 GiB.
	MaxSize int64
	// SizeLimit is the server's sizelimit; 0 leaves slapd's default (500).
	SizeLimit int
	// Schemas are schema files included after core, cosine and
	// inetorgperson (core.schema already carries RFC 4523's pkiUser,
	// pkiCA, cRLDistributionPoint and deltaCRL and their attributes).
	Schemas []string
	// TLS enables ldaps:// listeners and StartTLS; nil for plain LDAP only.
	TLS *TLS
}

// ConfPath is where WriteConf writes slapd.conf.
func (c *Config) ConfPath() string { return filepath.Join(c.Dir, "slapd.conf") }

// WriteConf creates Dir and Dir/db and writes slapd.conf.
func (c *Config) WriteConf() error {
	if c.Dir == "" || c.Suffix == "" || len(c.URLs) == 0 {
		return errors.New("slapd config: Dir, Suffix and URLs are required")
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "db"), 0o700); err != nil {
		return fmt.Errorf("slapd config: %w", err)
	}
	var b strings.Builder
	if c.TLS != nil {
		// global directives: they must come before the database section
		fmt.Fprintf(&b, "TLSCertificateFile %s\nTLSCertificateKeyFile %s\n", c.TLS.CertFile, c.TLS.KeyFile)
	}
	for _, s := range append([]string{"/etc/ldap/schema/core.schema", "/etc/ldap/schema/cosine.schema", "/etc/ldap/schema/inetorgperson.schema"}, c.Schemas...) {
		fmt.Fprintf(&b, "include %s\n", s)
	}
	fmt.Fprintf(&b, "pidfile %[1]s/slapd.pid\nargsfile %[1]s/slapd.args\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\nloglevel 0\n", c.Dir)
	if c.SizeLimit > 0 {
		fmt.Fprintf(&b, "sizelimit %d\n", c.SizeLimit)
	}
	fmt.Fprintf(&b, "database mdb\nsuffix %q\n", c.Suffix)
	if c.RootDN != "" {
		fmt.Fprintf(&b, "rootdn %q\nrootpw %s\n", c.RootDN, c.RootPW)
	}
	maxSize := c.MaxSize
	if maxSize == 0 {
		maxSize = 1 << 30
	}
	fmt.Fprintf(&b, "directory %s/db\nmaxsize %d\n", c.Dir, maxSize)
	if c.NoSync {
		b.WriteString("dbnosync\n")
	}
	idx := c.Indexes
	if idx == nil {
		idx = []string{"objectClass eq", "cn eq"}
	}
	for _, i := range idx {
		fmt.Fprintf(&b, "index %s\n", i)
	}
	if err := os.WriteFile(c.ConfPath(), []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("slapd config: %w", err)
	}
	return nil
}

// Slapadd loads an LDIF file into the (stopped) database with slapadd -q;
// schemaCheck false adds -s (entries as another server serves them, with
// attributes its classes do not allow). WriteConf must have run.
func (c *Config) Slapadd(ldif string, schemaCheck bool) error {
	if err := Installed(); err != nil {
		return err
	}
	args := []string{"-q", "-f", c.ConfPath(), "-l", ldif}
	if !schemaCheck {
		args = append(args, "-s")
	}
	if out, err := exec.Command(SlapaddPath, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("slapadd %s: %w: %s", ldif, err, bytes.TrimSpace(out))
	}
	return nil
}

// Server is a running (or stopped) slapd.
type Server struct {
	cfg Config
	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when cmd was reaped; err is its exit status.
	exited chan struct{}
	err    error
	out    *lockedBuffer
}

// Start writes the config and starts slapd; see Server.Start.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := Installed(); err != nil {
		return nil, err
	}
	if err := cfg.WriteConf(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg}
	if err := s.Start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// New is a Server for cfg whose slapd.conf (and database) exist already,
// for example after Config.Slapadd; call Start.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// Config is the server's configuration.
func (s *Server) Config() Config { return s.cfg }

// URL is the first ldap:// listener ("" if none).
func (s *Server) URL() string {
	for _, u := range s.cfg.URLs {
		if strings.HasPrefix(u, "ldap://") {
			return strings.TrimSuffix(u, "/")
		}
	}
	return ""
}

// Addr is host:port of the first listener with the given scheme ("ldap",
// "ldaps"), "" if none.
func (s *Server) Addr(scheme string) string {
	for _, raw := range s.cfg.URLs {
		if u, err := url.Parse(raw); err == nil && u.Scheme == scheme {
			return u.Host
		}
	}
	return ""
}

// Pid is slapd's process id, 0 when stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start runs `slapd -d 0 -h URLs -f slapd.conf` (foreground, in its own
// process group, so a signal to the caller's group does not reach it and
// Stop ends all of it) and waits until it accepts LDAP on its first ldap://
// URL, or ctx ends, or slapd exits (the error then carries its output).
// It may be called again after Stop: the database persists.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("slapd already running")
	}
	if err := Installed(); err != nil {
		return err
	}
	cmd := exec.Command(SlapdPath, "-d", "0", "-h", strings.Join(s.cfg.URLs, " "), "-f", s.cfg.ConfPath())
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig: a killed test or bench does not leave slapd behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting slapd: %w", err)
	}
	s.cmd, s.out, s.exited = cmd, out, make(chan struct{})
	go func(exited chan struct{}) { s.err = cmd.Wait(); close(exited) }(s.exited)

	u := s.URL()
	if u == "" {
		return nil // no plain listener to check (only ldaps://)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	for {
		if c, err := ldap.DialURL(u); err == nil {
			_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-s.exited:
			s.cmd = nil
			// slapd -d 0 says nothing; its config test mode says why
			why, _ := exec.Command(SlapdPath, "-Tt", "-f", s.cfg.ConfPath()).CombinedOutput()
			return fmt.Errorf("slapd exited at start (%v): %s", s.err, bytes.TrimSpace(append(out.Bytes(), why...)))
		case <-ctx.Done():
			s.stopLocked()
			return fmt.Errorf("slapd on %s did not answer: %w: %s", u, ctx.Err(), bytes.TrimSpace(out.Bytes()))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends slapd: SIGTERM to its process group (back-mdb closes cleanly),
// SIGKILL after 10 s, and reaps it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

func (s *Server) stopLocked() {
	if s.cmd == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.exited
	}
	s.cmd = nil
}

// Output is what slapd wrote to stdout and stderr since its last start.
func (s *Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return string(s.out.Bytes())
}

// Dial connects to the first ldap:// URL and binds as the root DN (if any).
func (s *Server) Dial() (*ldap.Conn, error) {
	c, err := ldap.DialURL(s.URL())
	if err != nil {
		return nil, fmt.Errorf("dialling slapd: %w", err)
	}
	if s.cfg.RootDN != "" {
		if err := c.Bind(s.cfg.RootDN, s.cfg.RootPW); err != nil {
			c.Close()
			return nil, fmt.Errorf("binding to slapd as %s: %w", s.cfg.RootDN, err)
		}
	}
	return c, nil
}

// Entry is one entry for AddEntries.
type Entry struct {
	DN    string
	Attrs map[string][]string
}

// AddEntries adds entries in order over LDAP as the root DN (parents
// first), e.g. the suffix and a base below it.
func (s *Server) AddEntries(entries ...Entry) error {
	c, err := s.Dial()
	if err != nil {
		return err
	}
	defer c.Close()
	for _, e := range entries {
		a := ldap.NewAddRequest(e.DN, nil)
		for k, v := range e.Attrs {
			a.Attribute(k, v)
		}
		if err := c.Add(a); err != nil {
			return fmt.Errorf("adding %s: %w", e.DN, err)
		}
	}
	return nil
}

// FreeAddr is a loopback host:port that was free a moment ago (the
// listener is closed again, so slapd can bind it; a later stop and start
// reuses it).
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// lockedBuffer collects slapd's output while Start reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
