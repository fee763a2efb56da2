package directory

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certcenter/certcenter/store"
)

// Listener serves LDAP (with StartTLS) or LDAPS on one address. It owns the
// accept loop and the connections: limits, idle timeout, framing and the
// operations are here, on one protocol stack: no request leaves the
// process, so a connection costs one file descriptor.
type Listener struct {
	d           *Directory
	name        string
	ln          net.Listener
	implicitTLS bool
	// tls is opts.TLS requesting a client certificate (serverTLS).
	tls *tls.Config

	mu      sync.Mutex
	conns   map[*conn]struct{}
	closing bool
	wg      sync.WaitGroup
	open    atomic.Int64
	done    chan struct{}
}

// Listen starts serving on addr; implicitTLS makes it an LDAPS listener.
func (d *Directory) Listen(name, addr string, implicitTLS bool) (*Listener, error) {
	if implicitTLS && d.opts.TLS == nil {
		return nil, errors.New("ldaps needs a TLS certificate")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	l := &Listener{d: d, name: name, ln: ln, implicitTLS: implicitTLS, tls: serverTLS(d.opts.TLS), conns: map[*conn]struct{}{}, done: make(chan struct{})}
	d.metrics.conns.WithLabelValues(name).Set(0)
	go l.accept()
	return l, nil
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func (l *Listener) accept() {
	defer close(l.done)
	max := int64(l.d.opts.Config.MaxConnections)
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			l.d.log.Warn("ldap accept failed", "listener", l.name, "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if l.open.Load() >= max {
			// Counted before the client can see the close, so whoever
			// watches the metric after the refusal finds it.
			l.d.metrics.closed.WithLabelValues("connection_limit").Inc()
			// tell the client why before closing (plain LDAP only: on LDAPS
			// the handshake has not happened)
			if !l.implicitTLS {
				_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = nc.Write(appendNotice(nil, resultBusy, "too many connections"))
			}
			nc.Close()
			continue
		}
		c := l.newConn(nc)
		l.mu.Lock()
		if l.closing {
			l.mu.Unlock()
			nc.Close()
			continue
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		l.open.Add(1)
		l.d.metrics.conns.WithLabelValues(l.name).Inc()
		go c.serve()
	}
}

// Close stops accepting, tells every connection to finish the requests it
// has in flight and waits for them (or ctx).
func (l *Listener) Close(ctx context.Context) error {
	l.mu.Lock()
	l.closing = true
	err := l.ln.Close()
	for c := range l.conns {
		c.shutdown()
	}
	l.mu.Unlock()
	<-l.done
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		l.mu.Lock()
		for c := range l.conns {
			c.raw.Close() // also unblocks a write or a handshake on the TLS layer
		}
		l.mu.Unlock()
		return ctx.Err()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// conn is one client connection.
type conn struct {
	l   *Listener
	d   *Directory
	br  *bufio.Reader
	sem chan struct{}

	ctx    context.Context
	cancel context.CancelFunc

	wmu sync.Mutex // serializes writes and guards nc
	nc  net.Conn
	// raw is the accepted TCP connection, never replaced: deadlines set on
	// it and closing it reach a TLS connection on top without taking wmu,
	// which a blocked write or a handshake holds.
	raw net.Conn
	// held is the layer under the TLS connection once TLS is up (nil in
	// clear): it lets a search's messages go out as one TLS record each
	// but in one system call.
	held *heldConn

	closing atomic.Bool
	isTLS   atomic.Bool
	// inflight counts the spawned operations (search, compare, bind).
	inflight sync.WaitGroup
	// binding is closed when the password bind in progress has its
	// result; the reader waits for it before the next request, so every
	// request after a bind runs with the bind's outcome (RFC 4511 4.2.1).
	// Only the reader goroutine touches it.
	binding chan struct{}
	// peerCerts is the chain the client sent in the TLS handshake, for
	// SASL EXTERNAL; set and read by the reader goroutine.
	peerCerts []*x509.Certificate

	mu      sync.Mutex
	bound   bool   // bound as a service account
	boundDN string // that account's DN as configured (WhoAmI)
	boundID string // and normalized (paging cookies)
	grant   *grant // what it may read; anonymous until a bind succeeds
	ops     map[int64]context.CancelFunc
}

func (l *Listener) newConn(nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{
		l: l, d: l.d, nc: nc, raw: nc, ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, l.d.opts.Config.MaxPending),
		ops: map[int64]context.CancelFunc{},
	}
}

// shutdown makes the reader stop at its next read, or fail the TLS
// handshake it is in. The reader rechecks closing after every deadline it
// sets, so this deadline cannot be overwritten unseen.
func (c *conn) shutdown() {
	c.closing.Store(true)
	_ = c.raw.SetReadDeadline(time.Now())
}

func (c *conn) mayRead(anonymousRead bool) bool {
	if anonymousRead {
		return true
	}
	c.access() // a directory account revoked since its bind is bound no more
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bound
}

// access is what the connection may read now. A directory account's
// grant is checked first (Directory.current: an atomic load and a time
// comparison); when an account changed since it was made, or it expired,
// it is made again from the store, and an account that is revoked,
// expired or gone leaves the connection anonymous from this operation on.
func (c *conn) access() *grant {
	c.mu.Lock()
	g := c.grant
	c.mu.Unlock()
	if g == nil {
		return c.d.anonymous
	}
	if g.dirAccount == "" || c.d.current(g) {
		return g
	}
	ng, err := c.d.refreshGrant(c.ctx, g)
	if err != nil {
		// the store could not say: keep the grant for this operation
		// only if it has not expired, and ask again at the next one
		c.d.log.Error("ldap: re-reading a bound directory account", "account", g.dirAccount, "err", err)
		if c.d.now().Before(g.expires) {
			return g
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.grant != g { // a bind meanwhile decides
		if c.grant == nil {
			return c.d.anonymous
		}
		return c.grant
	}
	if ng == nil {
		c.d.log.Info("ldap: bound directory account revoked or expired: the connection is anonymous now", "account", g.dirAccount)
		c.d.metrics.binds.WithLabelValues(g.account, "withdrawn").Inc()
		c.bound, c.boundDN, c.boundID = false, "", ""
		c.setGrantLocked(nil)
		return c.d.anonymous
	}
	c.setGrantLocked(ng)
	return ng
}

func (c *conn) identity() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boundID
}

var errUnbind = errors.New("unbind")

func (c *conn) serve() {
	l := c.l
	defer func() {
		c.cancel()
		c.inflight.Wait()
		c.setAccount(nil) // releases a client certificate it was bound with
		c.wmu.Lock()
		c.nc.Close()
		c.wmu.Unlock()
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		l.open.Add(-1)
		l.d.metrics.conns.WithLabelValues(l.name).Dec()
		l.wg.Done()
	}()
	if l.implicitTLS {
		if !c.startTLS() {
			return
		}
	}
	c.br = bufio.NewReaderSize(c.nc, 8192)
	cfg := c.d.opts.Config
	for {
		if c.closing.Load() {
			c.notice(resultUnavailable, "server shutting down")
			return
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(cfg.IdleTimeout.D()))
		if c.closing.Load() { // shutdown's deadline may just have been replaced
			c.notice(resultUnavailable, "server shutting down")
			return
		}
		// wait for the first byte of a message under the idle timeout, then
		// give the rest of it the write timeout, so a client that stalls
		// mid-message cannot hold the connection forever.
		if _, err := c.br.Peek(1); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if c.closing.Load() {
					c.notice(resultUnavailable, "server shutting down")
					return
				}
				if c.busy() {
					continue
				}
				c.d.metrics.closed.WithLabelValues("idle").Inc()
				c.notice(resultUnavailable, "idle timeout")
			}
			return
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(cfg.WriteTimeout.D()))
		pdu, err := readPDU(c.br, nil, cfg.MaxPDUBytes)
		if err != nil {
			switch {
			case errors.Is(err, errTooLarge):
				c.d.metrics.closed.WithLabelValues("pdu_too_large").Inc()
				c.notice(resultProtocolError, err.Error())
			case errors.Is(err, errMalformed):
				c.d.metrics.closed.WithLabelValues("malformed").Inc()
				c.notice(resultProtocolError, err.Error())
			}
			return
		}
		m, err := parseMessage(pdu)
		if err != nil {
			c.d.metrics.closed.WithLabelValues("malformed").Inc()
			c.notice(resultProtocolError, err.Error())
			return
		}
		if c.binding != nil {
			<-c.binding // bounded: bindSem admits it within a few bcrypt times
			c.binding = nil
		}
		if err := c.dispatch(m); err != nil {
			if !errors.Is(err, errUnbind) {
				c.d.metrics.closed.WithLabelValues("protocol").Inc()
				c.notice(resultProtocolError, err.Error())
			}
			return
		}
	}
}

func (c *conn) busy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ops) > 0
}

// write sends bytes to the client; a failed write closes the connection.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.d.opts.Config.WriteTimeout.D()))
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
		return err
	}
	return nil
}

// writeMsgs sends several LDAP messages; ends are their end offsets in b.
// In clear they go out in one write. Over TLS each message is a TLS record
// of its own, as slapd sends them: libldap-based clients such as curl read
// one message from a record, then wait on the socket for the next, and hang
// when it is already decrypted in their buffer. The records are gathered
// under the TLS layer and written together.
func (c *conn) writeMsgs(b []byte, ends []int) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.d.opts.Config.WriteTimeout.D()))
	var err error
	if c.held == nil || len(ends) < 2 {
		_, err = c.nc.Write(b)
	} else {
		c.held.hold()
		start := 0
		for _, end := range ends {
			if _, err = c.nc.Write(b[start:end]); err != nil {
				break
			}
			start = end
		}
		if ferr := c.held.flush(); err == nil {
			err = ferr
		}
	}
	if err != nil {
		c.nc.Close()
	}
	return err
}

// heldConn is the TCP connection under a TLS one. While held, what the TLS
// layer writes is gathered; flush sends it in one write. The TLS layer may
// also write on its own (an alert from the reading side), hence the mutex.
type heldConn struct {
	net.Conn
	mu     sync.Mutex
	isHeld bool
	buf    []byte
}

func (h *heldConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.isHeld {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

func (h *heldConn) hold() {
	h.mu.Lock()
	h.isHeld = true
	h.mu.Unlock()
}

func (h *heldConn) flush() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.isHeld = false
	if len(h.buf) == 0 {
		return nil
	}
	_, err := h.Conn.Write(h.buf)
	if cap(h.buf) > flushAt*2 {
		h.buf = nil // a large search's buffer is not kept for the connection's life
	} else {
		h.buf = h.buf[:0]
	}
	return err
}

func (c *conn) notice(code resultCode, diag string) {
	_ = c.write(appendNotice(nil, code, diag))
}

func (c *conn) respond(id int64, tag byte, op string, start time.Time, r result, extra []byte) {
	_ = c.write(appendResult(nil, id, tag, r.code, r.matched, r.diag, extra, nil))
	c.observe(op, r.code, start)
}

func (c *conn) observe(op string, code resultCode, start time.Time) {
	c.d.metrics.ops.WithLabelValues(op, resultName(code)).Inc()
	c.d.metrics.latency.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

// dispatch handles one request. A returned error closes the connection.
func (c *conn) dispatch(m *message) error {
	start := time.Now()
	switch m.op.tag {
	case opUnbindRequest:
		c.observe("unbind", resultSuccess, start)
		return errUnbind
	case opAbandonRequest:
		if id, err := parseInt(m.op.body); err == nil {
			c.mu.Lock()
			if cancel := c.ops[id]; cancel != nil {
				cancel()
			}
			c.mu.Unlock()
		}
		c.observe("abandon", resultSuccess, start)
		return nil
	case opBindRequest:
		return c.bind(m, start)
	case opSearchRequest:
		req, err := parseSearch(m.op.body)
		if err != nil {
			c.respond(m.id, opSearchDone, "search", start, result{code: resultProtocolError, diag: err.Error()}, nil)
			return nil
		}
		for _, ctl := range m.controls {
			switch ctl.oid {
			case oidPagedResults:
				size, cookie, err := parsePaging(ctl.value)
				if err != nil {
					c.respond(m.id, opSearchDone, "search", start, result{code: resultProtocolError, diag: err.Error()}, nil)
					return nil
				}
				req.paged, req.pageSize, req.cookie = true, size, cookie
			case oidManageDsaIT:
			default:
				if ctl.critical {
					c.respond(m.id, opSearchDone, "search", start, result{code: resultUnavailableCritical, diag: "unsupported critical control " + ctl.oid}, nil)
					return nil
				}
			}
		}
		if c.searchInline(m.id, req, start) {
			return nil
		}
		c.spawn(m.id, func(ctx context.Context) { c.handleSearch(ctx, m.id, req, start) })
		return nil
	case opCompareRequest:
		c.spawn(m.id, func(ctx context.Context) { c.handleCompare(ctx, m, start) })
		return nil
	case opModDNRequest:
		c.respond(m.id, opModDNResponse, "modifyDN", start, readOnly, nil)
		return nil
	case opAddRequest:
		c.respond(m.id, opAddResponse, "add", start, readOnly, nil)
		return nil
	case opModifyRequest:
		c.respond(m.id, opModifyResponse, "modify", start, readOnly, nil)
		return nil
	case opDelRequest:
		c.respond(m.id, opDelResponse, "delete", start, readOnly, nil)
		return nil
	case opExtendedRequest:
		name, _, err := readElem(m.op.body)
		if err != nil || name.tag != 0x80 {
			c.respond(m.id, opExtendedResponse, "extended", start, result{code: resultProtocolError, diag: "extended request without a name"}, nil)
			return nil
		}
		switch oid := string(name.body); oid {
		case oidStartTLS:
			return c.handleStartTLS(m, start)
		case oidWhoAmI:
			c.whoAmI(m, start)
			return nil
		default:
			// RFC 4511 4.12: an unrecognized requestName is a protocolError
			c.respond(m.id, opExtendedResponse, "extended", start, result{code: resultProtocolError, diag: "unsupported extended operation " + oid}, nil)
			return nil
		}
	}
	return fmt.Errorf("unknown protocol operation %#x", m.op.tag)
}

// spawn runs an operation on its own goroutine, at most MaxPending per
// connection: when that many are in flight, reading the next request waits.
func (c *conn) spawn(id int64, fn func(ctx context.Context)) {
	c.sem <- struct{}{}
	ctx, cancel := context.WithCancel(c.ctx)
	c.mu.Lock()
	c.ops[id] = cancel
	c.mu.Unlock()
	c.inflight.Add(1)
	go func() {
		defer func() {
			c.mu.Lock()
			delete(c.ops, id)
			c.mu.Unlock()
			cancel()
			<-c.sem
			c.inflight.Done()
		}()
		fn(ctx)
	}()
}

// respWriter batches a search's messages and writes them in as few system
// calls as possible: one for a typical search. Over TLS it also notes where
// each message ends, so each can be a TLS record of its own (writeMsgs).
type respWriter struct {
	c    *conn
	id   int64
	bp   *[]byte // the pooled buffer buf came from
	buf  []byte
	n    int
	tls  bool
	ends []int
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const flushAt = 64 << 10

func (w *respWriter) entry(e *Entry, sel *selection) error {
	w.buf = e.appendSearchEntry(w.buf, w.id, sel)
	w.n++
	if w.tls {
		w.ends = append(w.ends, len(w.buf))
	}
	if len(w.buf) >= flushAt {
		if err := w.c.writeMsgs(w.buf, w.ends); err != nil {
			return err
		}
		w.buf, w.ends = w.buf[:0], w.ends[:0]
	}
	return nil
}

func (c *conn) newRespWriter(id int64) *respWriter {
	bp := bufPool.Get().(*[]byte)
	// StartTLS waits for the searches in flight, so this cannot change
	// during the search.
	return &respWriter{c: c, id: id, bp: bp, buf: (*bp)[:0], tls: c.isTLS.Load()}
}

func (w *respWriter) release() {
	if cap(w.buf) <= 1<<20 {
		*w.bp = w.buf[:0]
		bufPool.Put(w.bp)
	}
}

func (c *conn) handleSearch(ctx context.Context, id int64, req *searchRequest, start time.Time) {
	w := c.newRespWriter(id)
	defer w.release()
	out := c.d.search(ctx, c, req, w)
	if ctx.Err() != nil && !c.closing.Load() {
		// abandoned: RFC 4511 4.11, no response
		c.observe("search", resultOther, start)
		return
	}
	c.finishSearch(w, out, start)
}

// searchInline answers a search on the reader goroutine if it can be
// answered at once, without the store or a wait (Directory.searchNow): a
// base read of a cached entry then costs no goroutine and no hand-over
// between threads. It reports whether it answered; if not, the search is
// spawned as any other.
func (c *conn) searchInline(id int64, req *searchRequest, start time.Time) bool {
	// it is one of the max_pending requests in flight while it runs
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	default:
		return false
	}
	w := c.newRespWriter(id)
	defer w.release()
	out, ok := c.d.searchNow(c, req, w)
	if ok {
		c.finishSearch(w, out, start)
	}
	return ok
}

// finishSearch appends SearchResultDone and sends what is buffered.
func (c *conn) finishSearch(w *respWriter, out searchOutcome, start time.Time) {
	var ctrls []byte
	if out.paged {
		ctrls = appendPagingControl(nil, out.cookie)
	}
	w.buf = appendResult(w.buf, w.id, opSearchDone, out.code, out.matched, out.diag, nil, ctrls)
	if w.tls {
		w.ends = append(w.ends, len(w.buf))
	}
	_ = c.writeMsgs(w.buf, w.ends)
	c.observe("search", out.code, start)
	c.mu.Lock()
	g := c.grant // as the search found it: access() checked it when it began
	c.mu.Unlock()
	if g == nil {
		g = c.d.anonymous
	}
	if g.searches != nil {
		g.searches.Inc()
	}
}

func (c *conn) handleCompare(ctx context.Context, m *message, start time.Time) {
	r := c.compare(ctx, m.op.body)
	c.respond(m.id, opCompareResponse, "compare", start, r, nil)
}

func (c *conn) compare(ctx context.Context, body []byte) result {
	dnE, rest, err := readElem(body)
	if err != nil || dnE.tag != 0x04 {
		return result{code: resultProtocolError, diag: "bad compare request"}
	}
	avaE, rest, err := readElem(rest)
	if err != nil || avaE.tag != 0x30 || len(rest) != 0 {
		return result{code: resultProtocolError, diag: "bad compare request"}
	}
	f, err := compileFilter(elem{tag: fEquality, body: avaE.body}, 0)
	if err != nil {
		return result{code: resultProtocolError, diag: "bad compare assertion"}
	}
	if f.at == nil {
		return result{code: resultUndefinedAttributeType, diag: "unknown attribute " + f.desc}
	}
	if f.at.match == matchNone {
		return result{code: resultInappropriateMatching, diag: f.at.name + " has no equality matching rule"}
	}
	norm, ok := normDN(string(dnE.body))
	if !ok {
		return result{code: resultInvalidDNSyntax, diag: "invalid DN"}
	}
	c.d.awaitChanges(ctx)
	st := c.d.static.Load()
	var e *Entry
	switch norm {
	case "":
		e = st.rootDSE
	case st.subschema.norm:
		e = st.subschema
	default:
		if !c.mayRead(c.d.opts.Config.AnonymousRead) {
			return result{code: resultInsufficientAccess, diag: "anonymous read is disabled: bind as a service account"}
		}
		// The cache generation is read before the transaction opens, as a
		// search reads it (search.go): an entry built from a snapshot older
		// than a change is then never cached.
		gen := c.d.gen.Load()
		if err := c.d.st.View(ctx, func(tx *store.Tx) error {
			var err error
			e, err = c.d.lookupDNAt(tx, st, norm, gen)
			return err
		}); err != nil {
			return result{code: resultOther, diag: "internal error"}
		}
	}
	g := c.access()
	if e != nil {
		e = c.d.view(g, e) // out of the client's access is as absent
	}
	if e == nil {
		return result{code: resultNoSuchObject, matched: c.d.matchedDN(st, g, norm)}
	}
	switch f.eval(e) {
	case triTrue:
		return result{code: resultCompareTrue}
	case triFalse:
		if e.attr(f.at) == nil {
			return result{code: resultNoSuchAttribute, diag: "no such attribute"}
		}
		return result{code: resultCompareFalse}
	}
	return result{code: resultInappropriateMatching, diag: "the assertion is undefined for " + f.at.name}
}

// handleStartTLS upgrades the connection (RFC 4511 4.14). It runs on the
// reader goroutine. The client must not have requests outstanding (RFC
// 4513 3.1.1): a bind before it has been answered (the reader waits for
// binds), and spawned searches and compares are waited for, because one
// that has answered may still be finishing (and they end within the time
// limit), so nothing is written in clear after the StartTLS response.
func (c *conn) handleStartTLS(m *message, start time.Time) error {
	ext := appendString(nil, 0x8a, oidStartTLS)
	switch {
	case c.d.opts.TLS == nil:
		c.respond(m.id, opExtendedResponse, "starttls", start, result{code: resultProtocolError, diag: "StartTLS is not configured"}, ext)
		return nil
	case c.isTLS.Load():
		c.respond(m.id, opExtendedResponse, "starttls", start, result{code: resultOperationsError, diag: "TLS is already established"}, ext)
		return nil
	}
	c.inflight.Wait()
	if c.br.Buffered() > 0 {
		c.respond(m.id, opExtendedResponse, "starttls", start, result{code: resultOperationsError, diag: "requests sent after StartTLS"}, ext)
		return nil
	}
	c.respond(m.id, opExtendedResponse, "starttls", start, result{code: resultSuccess}, ext)
	if !c.startTLS() {
		return errUnbind // the handshake failed: close quietly
	}
	c.br = bufio.NewReaderSize(c.nc, 8192)
	return nil
}

// startTLS runs the server side of a TLS handshake on the connection.
func (c *conn) startTLS() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	held := &heldConn{Conn: c.nc}
	tc := tls.Server(held, c.l.tls)
	_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
	if c.closing.Load() { // shutdown's deadline may just have been replaced
		return false
	}
	if err := tc.Handshake(); err != nil {
		if !errors.Is(err, io.EOF) {
			c.d.log.Debug("ldap TLS handshake failed", "remote", c.nc.RemoteAddr().String(), "err", err)
		}
		c.d.metrics.closed.WithLabelValues("tls_handshake").Inc()
		return false
	}
	_ = tc.SetDeadline(time.Time{})
	c.peerCerts = tc.ConnectionState().PeerCertificates
	c.nc = tc
	c.held = held
	c.isTLS.Store(true)
	return true
}
