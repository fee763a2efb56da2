package server

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkConnWrite compares what a response write costs on a loopback
// TCP connection: bare, through deadlineConn (deadline armed lazily), and
// with a SetWriteDeadline before every write (what http.Server.WriteTimeout
// does per request, which the public listener avoids).
func BenchmarkConnWrite(b *testing.B) {
	resp := make([]byte, 1600) // about one OCSP GET answer with its headers
	l := newPublicListener(nil, 1, 30*time.Second, newConnMetrics(prometheus.NewRegistry(), "bench"))
	for _, bc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
		each bool
	}{
		{"bare", func(c net.Conn) net.Conn { return c }, false},
		{"lazy-deadline", func(c net.Conn) net.Conn { return &deadlineConn{Conn: c, l: l} }, false},
		{"deadline-per-write", func(c net.Conn) net.Conn { return c }, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(io.Discard, c)
			}()
			raw, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			c := bc.wrap(raw)
			b.ReportAllocs()
			b.SetBytes(int64(len(resp)))
			for b.Loop() {
				if bc.each {
					_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
				}
				if _, err := c.Write(resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDeadlineConnKeepsArmedAcrossClears: net/http clears the write deadline
// after every request; the lazily armed one stays, so the next response
// does not re-arm it, and a handler's own deadline still replaces it.
func TestDeadlineConnKeepsArmedAcrossClears(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	l := newPublicListener(nil, 1, 30*time.Second, newConnMetrics(prometheus.NewRegistry(), "test"))
	c := &deadlineConn{Conn: a, l: l}
	if _, err := c.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	armed := c.armed.Load()
	if armed == 0 {
		t.Fatal("no deadline armed by the first write")
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil { // what net/http does after a request
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("second")); err != nil {
		t.Fatal(err)
	}
	if got := c.armed.Load(); got != armed {
		t.Fatalf("deadline re-armed after a clear: %d, was %d", got, armed)
	}
	own := time.Now().Add(time.Hour)
	if err := c.SetWriteDeadline(own); err != nil {
		t.Fatal(err)
	}
	if got := c.armed.Load(); got != own.UnixNano() {
		t.Fatalf("a handler's deadline was not kept: %d, want %d", got, own.UnixNano())
	}
}
