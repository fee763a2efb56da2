package server

import (
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// publicListener bounds the public listener's connections and gives every
// write on them a deadline.
//
// Why not http.Server.WriteTimeout: net/http re-arms it with
// SetWriteDeadline on every request, which moves a runtime timer each time
// and cost the OCSP GET hot path several percent. Without any write
// deadline, though, a client that pipelines GETs and never reads parks the
// connection's goroutine in a blocked write for ever, holding its buffers.
// So the deadline is armed lazily by the connection's own Write: only when
// the armed one is less than half the timeout away, i.e. at most about
// twice per timeout per connection, however many responses it carries.
// Every write still gets at least half the timeout to make progress, and a
// peer that stops reading is cut off within one timeout.
type publicListener struct {
	net.Listener
	timeout time.Duration
	max     int64
	open    atomic.Int64
	m       *connMetrics
}

type connMetrics struct {
	open    prometheus.Gauge
	refused prometheus.Counter
}

func newConnMetrics(reg prometheus.Registerer, listener string) *connMetrics {
	m := &connMetrics{
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name:        "certcenter_http_open_connections",
			Help:        "Open connections on an HTTP listener.",
			ConstLabels: prometheus.Labels{"listener": listener},
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "certcenter_http_connections_refused_total",
			Help:        "Connections closed at accept because the listener was at http.max_connections.",
			ConstLabels: prometheus.Labels{"listener": listener},
		}),
	}
	reg.MustRegister(m.open, m.refused)
	return m
}

func newPublicListener(ln net.Listener, max int, writeTimeout time.Duration, m *connMetrics) *publicListener {
	return &publicListener{Listener: ln, timeout: writeTimeout, max: int64(max), m: m}
}

// Accept returns the next connection under the cap. One over it is closed at
// once rather than left waiting in the backlog: an OCSP client then fails
// over or retries now, instead of after its own timeout.
func (l *publicListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.m.refused.Inc()
			// Reset rather than FIN: nothing the client sent will be read.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
			continue
		}
		l.m.open.Inc()
		return &deadlineConn{Conn: c, l: l}, nil
	}
}

// deadlineConn arms its write deadline lazily (see publicListener).
type deadlineConn struct {
	net.Conn
	l *publicListener
	// armed is the write deadline in force, in Unix nanoseconds; 0: none.
	armed  atomic.Int64
	closed atomic.Bool
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	now := time.Now()
	if a := c.armed.Load(); a == 0 || now.UnixNano() > a-int64(c.l.timeout/2) {
		d := now.Add(c.l.timeout)
		if err := c.Conn.SetWriteDeadline(d); err != nil {
			return 0, err
		}
		c.armed.Store(d.UnixNano())
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline passes a handler's own deadline (CRL downloads arm one
// per request) through and remembers it, so Write does not re-arm early.
//
// A clear is not passed on: net/http clears the write deadline after every
// request, which would make the next Write re-arm it, once per request
// instead of about twice per timeout. The deadline left in force is at
// most one timeout away, and Write moves it before it can cut a write
// short, so keeping it changes nothing a client can see.
func (c *deadlineConn) SetWriteDeadline(t time.Time) error {
	if t.IsZero() {
		return nil
	}
	c.armed.Store(t.UnixNano())
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline together.
func (c *deadlineConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *deadlineConn) Close() error {
	err := c.Conn.Close()
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		c.l.m.open.Dec()
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// CloseWrite keeps net/http's graceful close (FIN, then drain) working
// through the wrapper.
func (c *deadlineConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
