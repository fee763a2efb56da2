package directory

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/config"
)

// These tests cover the front end's connection handling: StartTLS after a
// bind, shutdown, the connection limit, the idle timeout and
// the bound on requests in flight per connection.

const (
	svcDN = "cn=his,ou=services," + suffix
	svcPW = "s3cret"
)

// withAccount turns anonymous read off and adds the service account svcDN.
func withAccount(t *testing.T, cleartext bool) func(*config.LDAP) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(svcPW), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return func(l *config.LDAP) {
		l.AnonymousRead = false
		l.AllowCleartextBind = cleartext
		l.Accounts = []config.LDAPAccount{{DN: svcDN, PasswordHash: string(hash)}}
	}
}

// clientTLS trusts the test server certificate.
func (e *env) clientTLS(t *testing.T) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// dialGuarded connects go-ldap with a deadline on the whole connection: its
// StartTLS has no timeout of its own, so a server that never answers fails
// the test instead of hanging it.
func dialGuarded(t *testing.T, addr string) *ldap.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	c := ldap.NewConn(nc, false)
	c.Start()
	c.SetTimeout(30 * time.Second)
	t.Cleanup(func() { c.Close() })
	return c
}

func anonymousBind(c *ldap.Conn) error {
	_, err := c.SimpleBind(&ldap.SimpleBindRequest{AllowEmptyPassword: true})
	return err
}

// searchOne finds seed-0000001, which needs the service account when
// anonymous read is off.
func searchOne(c *ldap.Conn) error {
	r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=seed-0000001)", []string{"1.1"}, nil))
	if err != nil {
		return err
	}
	if len(r.Entries) != 1 || r.Entries[0].DN != sub(1) {
		return errors.New("seed-0000001 not found")
	}
	return nil
}

func TestStartTLSAfterBind(t *testing.T) {
	// cleartext binds allowed so a password bind can precede StartTLS, as
	// JNDI and other clients configured that way do
	account := withAccount(t, true)
	// slowDN's bcrypt cost makes its bind take tens of milliseconds, so a
	// StartTLS sent right behind it arrives while the bind is running
	slowHash, err := bcrypt.GenerateFromPassword([]byte(svcPW), 10)
	if err != nil {
		t.Fatal(err)
	}
	const slowDN = "cn=slow,ou=services," + suffix
	e := newEnv(t, 3, func(l *config.LDAP) {
		account(l)
		l.Accounts = append(l.Accounts, config.LDAPAccount{DN: slowDN, PasswordHash: string(slowHash)})
	})
	tests := []struct {
		name   string
		before func(*ldap.Conn) error // in clear
		after  func(*ldap.Conn) error // over TLS, before the search
	}{
		{"ok/simple bind", func(c *ldap.Conn) error { return c.Bind(svcDN, svcPW) }, nil},
		{"ok/anonymous bind", anonymousBind, func(c *ldap.Conn) error { return c.Bind(svcDN, svcPW) }},
		{"ok/wrong password", func(c *ldap.Conn) error {
			if err := c.Bind(svcDN, "nope"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				return errors.New("wrong password accepted")
			}
			return nil
		}, func(c *ldap.Conn) error { return c.Bind(svcDN, svcPW) }},
		{"ok/modify", func(c *ldap.Conn) error {
			err := c.Modify(&ldap.ModifyRequest{DN: sub(1), Changes: []ldap.Change{{Operation: ldap.ReplaceAttribute, Modification: ldap.PartialAttribute{Type: "mail", Vals: []string{"a@b"}}}}})
			if !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
				return err
			}
			return c.Bind(svcDN, svcPW)
		}, nil},
		{"ok/extended operation", func(c *ldap.Conn) error {
			_, err := c.Extended(ldap.NewExtendedRequest("1.2.3.4", nil))
			if !ldap.IsErrorWithCode(err, ldap.LDAPResultProtocolError) {
				return err
			}
			return nil
		}, func(c *ldap.Conn) error { return c.Bind(svcDN, svcPW) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dialGuarded(t, e.ldap)
			if err := tc.before(c); err != nil {
				t.Fatalf("before StartTLS: %v", err)
			}
			if err := c.StartTLS(e.clientTLS(t)); err != nil {
				t.Fatalf("StartTLS: %v", err)
			}
			if tc.after != nil {
				if err := tc.after(c); err != nil {
					t.Fatalf("after StartTLS: %v", err)
				}
			}
			if err := searchOne(c); err != nil {
				t.Fatalf("search over TLS: %v", err)
			}
			// binding again over TLS works
			if err := c.Bind(svcDN, svcPW); err != nil {
				t.Fatalf("second bind over TLS: %v", err)
			}
		})
	}

	// OpenLDAP's clients send StartTLS before they bind.
	for _, tc := range []struct {
		name string
		args []string
		code int
		n    int
	}{
		{"ok/ldapsearch -ZZ service account", []string{"-D", svcDN, "-w", svcPW, "-b", suffix, "(uid=seed-0000001)", "1.1"}, 0, 1},
		{"ok/ldapsearch -ZZ anonymous rootDSE", []string{"-b", "", "-s", "base", "namingContexts"}, 0, 1},
		{"fail/ldapsearch -ZZ anonymous read off", []string{"-b", suffix, "(uid=seed-0000001)", "1.1"}, 50, 0},
		{"fail/ldapsearch -ZZ wrong password", []string{"-D", svcDN, "-w", "nope", "-b", suffix, "(uid=seed-0000001)", "1.1"}, 49, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := e.ldapsearch(t, append([]string{"-ZZ", "-H", "ldap://" + e.ldap}, tc.args...)...)
			if code != tc.code || len(dns(out)) != tc.n {
				t.Errorf("exit %d with %d entries, want %d with %d: %s", code, len(dns(out)), tc.code, tc.n, out)
			}
		})
	}

	t.Run("ok/StartTLS pipelined behind a bind runs after it", func(t *testing.T) {
		// RFC 4511 4.2.1: requests after a bind are answered after it
		r := dialMsg(t, e.ldap)
		r.send(t, append(bindPDU(1, slowDN, svcPW), startTLSPDU(2)...))
		if m := r.next(t); m.id != 1 || m.code != resultSuccess {
			t.Fatalf("bind: id %d code %v %q", m.id, m.code, m.diag)
		}
		if m := r.next(t); m.id != 2 || m.code != resultSuccess {
			t.Fatalf("StartTLS behind the bind: id %d code %v %q", m.id, m.code, m.diag)
		}
		r.upgrade(t, e.clientTLS(t))
		r.send(t, baseSearchPDU(4, sub(1))) // needs the bind: anonymous read is off
		if m := r.next(t); m.id != 4 || m.tag != opSearchEntry {
			t.Fatalf("search over TLS as slowDN: id %d tag %#x code %d %q", m.id, m.tag, m.code, m.diag)
		}
	})

	t.Run("fail/StartTLS twice", func(t *testing.T) {
		// go-ldap refuses a second StartTLS itself: send it raw
		r := dialMsg(t, e.ldap)
		r.send(t, bindPDU(1, "", ""))
		if m := r.next(t); m.id != 1 || m.code != resultSuccess {
			t.Fatalf("anonymous bind: id %d code %d", m.id, m.code)
		}
		r.send(t, startTLSPDU(2))
		if m := r.next(t); m.id != 2 || m.code != resultSuccess {
			t.Fatalf("StartTLS: id %d code %d", m.id, m.code)
		}
		r.upgrade(t, e.clientTLS(t))
		r.send(t, startTLSPDU(3))
		if m := r.next(t); m.id != 3 || m.code != resultOperationsError {
			t.Fatalf("second StartTLS: id %d code %d, want operationsError", m.id, m.code)
		}
	})
}

// TestStartTLSJNDI runs the JDK's LDAP client the way applications use it
// with StartTLS: the context binds anonymously when it connects, then
// StartTLS, then the service account binds and searches.
func TestStartTLSJNDI(t *testing.T) {
	requireTool(t, "java", "default-jdk-headless")
	e := newEnv(t, 3, withAccount(t, false))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "java", "testdata/StartTLS.java", e.ldap, e.caFile, svcDN, svcPW, suffix, "(uid=seed-0000001)")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("java StartTLS client: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); !strings.EqualFold(got, sub(1)) {
		t.Fatalf("JNDI found %q, want %q", got, sub(1))
	}
}

func TestShutdownAfterStartTLS(t *testing.T) {
	e := newEnv(t, 3, withAccount(t, true))
	l, err := e.d.Listen("shutdown", "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()

	// bound, upgraded and searched
	tlsConn := dialGuarded(t, addr)
	if err := tlsConn.Bind(svcDN, svcPW); err != nil {
		t.Fatal(err)
	}
	if err := tlsConn.StartTLS(e.clientTLS(t)); err != nil {
		t.Fatal(err)
	}
	if err := searchOne(tlsConn); err != nil {
		t.Fatal(err)
	}
	// anonymously bound, idle
	bound := dialMsg(t, addr)
	bound.send(t, bindPDU(1, "", ""))
	if m := bound.next(t); m.code != resultSuccess {
		t.Fatalf("anonymous bind: %d", m.code)
	}
	// bound, StartTLS answered, the handshake never started
	stalled := dialMsg(t, addr)
	stalled.send(t, bindPDU(1, "", ""))
	if m := stalled.next(t); m.code != resultSuccess {
		t.Fatalf("anonymous bind: %d", m.code)
	}
	stalled.send(t, startTLSPDU(2))
	if m := stalled.next(t); m.id != 2 || m.code != resultSuccess {
		t.Fatalf("StartTLS: id %d code %d", m.id, m.code)
	}

	// Every connection is idle or waiting for its client: Close must not
	// need to force any of them, so it returns nil well within a budget
	// that is far above what it takes (milliseconds) and below the
	// server's TLS handshake timeout (10 s), which a stalled handshake
	// would otherwise wait out.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Close(ctx); err != nil {
		t.Fatalf("Listener.Close: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Listener.Close used its whole budget")
	}
	// the idle client was told, then closed; the others were closed
	if m := bound.next(t); m.id != 0 || m.code != resultUnavailable {
		t.Errorf("idle connection at shutdown: id %d code %d %q, want a Notice of Disconnection", m.id, m.code, m.diag)
	}
	if _, err := bound.read(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection open after Close: %v", err)
	}
	if _, err := stalled.read(); !errors.Is(err, io.EOF) {
		t.Errorf("connection in StartTLS open after Close: %v", err)
	}
	if err := searchRoot(tlsConn); err == nil {
		t.Error("TLS connection still answers after Close")
	}
}

func TestConnectionLimit(t *testing.T) {
	e := newEnv(t, 3, func(l *config.LDAP) { l.MaxConnections = 2 })
	limited := func() float64 { return counter(t, e.d.metrics.closed.WithLabelValues("connection_limit")) }

	t.Run("fail/ldap: the extra connection gets busy", func(t *testing.T) {
		a, b := dialMsg(t, e.ldap), dialMsg(t, e.ldap)
		a.searchRoot(t, 1)
		b.searchRoot(t, 1)
		before := limited()
		extra := dialMsg(t, e.ldap)
		m := extra.next(t)
		if m.id != 0 || m.tag != opExtendedResponse || m.code != resultBusy {
			t.Fatalf("extra connection: id %d tag %#x code %d, want a busy Notice of Disconnection", m.id, m.tag, m.code)
		}
		if _, err := extra.read(); !errors.Is(err, io.EOF) {
			t.Fatalf("extra connection still open after the notice: %v", err)
		}
		if got := limited() - before; got != 1 {
			t.Errorf("connection_limit closes: %v, want 1", got)
		}
		// the others are unaffected
		a.searchRoot(t, 2)
		b.searchRoot(t, 2)
		// and a slot freed is a slot usable again
		a.send(t, appendTLV(nil, 0x30, append(appendInt(nil, 0x02, 3), appendTLV(nil, opUnbindRequest, nil)...)))
		if _, err := a.read(); !errors.Is(err, io.EOF) {
			t.Fatalf("unbind did not close: %v", err)
		}
		eventually(t, func() bool {
			c := dialMsg(t, e.ldap)
			c.send(t, rootSearchPDU(1))
			m, err := c.read()
			c.c.Close()
			return err == nil && m.id == 1
		})
		b.searchRoot(t, 3)
	})

	t.Run("fail/ldaps: the extra connection is refused", func(t *testing.T) {
		cfg := e.clientTLS(t)
		var open []*ldap.Conn
		for i := 0; i < 2; i++ {
			c, err := ldap.DialURL("ldaps://"+e.ldaps, ldap.DialWithTLSConfig(cfg))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.SetTimeout(30 * time.Second)
			if err := searchRoot(c); err != nil {
				t.Fatal(err)
			}
			open = append(open, c)
		}
		before := limited()
		nc, err := net.Dial("tcp", e.ldaps)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tls.Client(nc, cfg).Handshake(); err == nil {
			t.Fatal("TLS handshake on the extra LDAPS connection succeeded")
		}
		if got := limited() - before; got != 1 {
			t.Errorf("connection_limit closes: %v, want 1", got)
		}
		for _, c := range open {
			if err := searchRoot(c); err != nil {
				t.Errorf("search on an admitted connection: %v", err)
			}
		}
	})
}

// counter reads a counter's value.
func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func searchRoot(c *ldap.Conn) error {
	_, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
	return err
}

// eventually polls cond: the server frees a connection slot after the
// client sees the close, on its own goroutine.
func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}

// listen starts a listener on a free loopback port and closes it when the
// test ends.
func listen(t testing.TB, d *Directory, name string, tls bool) *Listener {
	t.Helper()
	l, err := d.Listen(name, "127.0.0.1:0", tls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := l.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return l
}

// onlyConn is the listener's one connection, or nil.
func onlyConn(l *Listener) *conn {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.conns {
		return c
	}
	return nil
}

// blockSubscribers holds the subscriber cache's lock, so every search that
// reads a subscriber entry stays in flight until the returned func runs.
// It is also registered as a cleanup, to run before the listeners close.
func blockSubscribers(t *testing.T, e *env) func() {
	t.Helper()
	e.d.cacheMu.Lock()
	release := sync.OnceFunc(e.d.cacheMu.Unlock)
	t.Cleanup(release)
	return release
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, 3, func(l *config.LDAP) { l.IdleTimeout = config.Duration(300 * time.Millisecond) })
	idle := func() float64 { return counter(t, e.d.metrics.closed.WithLabelValues("idle")) }
	l := listen(t, e.d, "test", false)
	release := blockSubscribers(t, e)

	// busy's search is in flight before quiet connects, so busy's idle
	// deadline passes first: were it closed for being idle, it would be
	// before quiet is.
	busy := dialMsg(t, l.Addr().String())
	busy.send(t, baseSearchPDU(7, sub(1)))
	eventually(t, func() bool { c := onlyConn(l); return c != nil && len(c.sem) == 1 })
	quiet := dialMsg(t, l.Addr().String())
	m := quiet.next(t)
	if m.id != 0 || m.tag != opExtendedResponse || m.code != resultUnavailable || !strings.Contains(m.diag, "idle") {
		t.Fatalf("idle connection: id %d tag %#x code %d %q, want an idle-timeout Notice of Disconnection", m.id, m.tag, m.code, m.diag)
	}
	if _, err := quiet.read(); !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection still open after the notice: %v", err)
	}
	if got := idle(); got != 1 {
		t.Fatalf("idle closes: %v, want 1 (only the idle connection)", got)
	}
	release()
	if m := busy.next(t); m.id != 7 || m.tag != opSearchEntry {
		t.Fatalf("busy connection: id %d tag %#x code %d %q, want its search entry", m.id, m.tag, m.code, m.diag)
	}
	if m := busy.next(t); m.id != 7 || m.tag != opSearchDone || m.code != resultSuccess {
		t.Fatalf("busy connection: id %d tag %#x code %d %q, want its search done", m.id, m.tag, m.code, m.diag)
	}
}

func TestMaxPending(t *testing.T) {
	e := newEnv(t, 3, func(l *config.LDAP) { l.MaxPending = 2 })
	l := listen(t, e.d, "test", false)
	release := blockSubscribers(t, e)

	r := dialMsg(t, l.Addr().String())
	// two searches that wait for the cache, then one of the rootDSE, which
	// does not: unbounded, it would be answered first.
	r.send(t, append(append(baseSearchPDU(1, sub(1)), baseSearchPDU(2, sub(2))...), rootSearchPDU(3)...))
	var c *conn
	eventually(t, func() bool { c = onlyConn(l); return c != nil && len(c.sem) == cap(c.sem) })
	if cap(c.sem) != 2 {
		t.Fatalf("in-flight bound %d, want max_pending 2", cap(c.sem))
	}
	// give an unbounded server the time to answer the rootDSE search; a
	// bounded one cannot whatever the wait
	time.Sleep(100 * time.Millisecond)
	release()
	var order []int64
	for len(order) < 3 {
		m := r.next(t)
		if m.tag == opSearchDone {
			if m.code != resultSuccess {
				t.Fatalf("search %d: code %d %q", m.id, m.code, m.diag)
			}
			order = append(order, m.id)
		}
	}
	if order[0] == 3 {
		t.Fatalf("the third request was answered while two were in flight: order %v", order)
	}
}

// msgConn is a raw LDAP client that reads whole messages.
type msgConn struct {
	c  net.Conn
	br *bufio.Reader
}

type msgResult struct {
	id   int64
	tag  byte
	code resultCode
	diag string
}

func dialMsg(t *testing.T, addr string) *msgConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &msgConn{c: c, br: bufio.NewReader(c)}
}

func (r *msgConn) send(t *testing.T, b []byte) {
	t.Helper()
	if _, err := r.c.Write(b); err != nil {
		t.Fatal(err)
	}
}

func (r *msgConn) read() (msgResult, error) {
	pdu, err := readPDU(r.br, nil, 1<<20)
	if err != nil {
		return msgResult{}, err
	}
	m, err := parseMessage(pdu)
	if err != nil {
		return msgResult{}, err
	}
	out := msgResult{id: m.id, tag: m.op.tag}
	if m.op.tag == opSearchEntry {
		return out, nil
	}
	res, rest, _ := readElem(m.op.body)
	code, _ := parseInt(res.body)
	out.code = resultCode(code)
	_, rest, _ = readElem(rest) // matchedDN
	diag, _, _ := readElem(rest)
	out.diag = string(diag.body)
	return out, nil
}

func (r *msgConn) next(t *testing.T) msgResult {
	t.Helper()
	m, err := r.read()
	if err != nil {
		t.Fatalf("reading a response: %v", err)
	}
	return m
}

// upgrade runs the client side of the TLS handshake after StartTLS.
func (r *msgConn) upgrade(t *testing.T, cfg *tls.Config) {
	t.Helper()
	tc := tls.Client(r.c, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	r.c, r.br = tc, bufio.NewReader(tc)
}

// searchRoot reads the rootDSE and expects its entry and success.
func (r *msgConn) searchRoot(t *testing.T, id int64) {
	t.Helper()
	r.send(t, rootSearchPDU(id))
	if m := r.next(t); m.id != id || m.tag != opSearchEntry {
		t.Fatalf("rootDSE search: id %d tag %#x code %d", m.id, m.tag, m.code)
	}
	if m := r.next(t); m.id != id || m.tag != opSearchDone || m.code != resultSuccess {
		t.Fatalf("rootDSE search: id %d tag %#x code %d", m.id, m.tag, m.code)
	}
}

func ldapMessage(id int64, op []byte) []byte {
	return appendTLV(nil, 0x30, append(appendInt(nil, 0x02, id), op...))
}

func baseSearchPDU(id int64, base string) []byte {
	p, _ := ldap.CompileFilter("(objectClass=*)")
	body := appendString(nil, 0x04, base)
	body = appendInt(body, 0x0a, scopeBase)
	body = appendInt(body, 0x0a, 0)
	body = appendInt(body, 0x02, 0)
	body = appendInt(body, 0x02, 0)
	body = appendTLV(body, 0x01, []byte{0})
	body = append(body, p.Bytes()...)
	body = appendTLV(body, 0x30, appendString(nil, 0x04, "1.1"))
	return ldapMessage(id, appendTLV(nil, opSearchRequest, body))
}

func rootSearchPDU(id int64) []byte { return baseSearchPDU(id, "") }

func bindPDU(id int64, name, password string) []byte {
	body := appendInt(nil, 0x02, 3)
	body = appendString(body, 0x04, name)
	body = appendString(body, 0x80, password)
	return ldapMessage(id, appendTLV(nil, opBindRequest, body))
}

func startTLSPDU(id int64) []byte {
	return ldapMessage(id, appendTLV(nil, opExtendedRequest, appendString(nil, 0x80, oidStartTLS)))
}
