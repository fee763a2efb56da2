// Package benchproc is what the whole-server benches (bench/...) and the
// throwaway slapd do with the processes they start: read their resident
// memory, find free loopback ports, wait until they answer, stop them.
// Benches report memory beside every throughput figure, so all of them read
// it the same way.
package benchproc

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Mem is a process's resident memory from /proc/PID/status, in KiB:
// anonymous (heap, stacks) and file-backed (the mapped binary, mmapped
// database files — page cache the kernel may drop).
type Mem struct{ AnonKB, FileKB int64 }

// MemOf reads pid's resident memory; zero when it cannot (not Linux, gone).
func MemOf(pid int) Mem {
	var m Mem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "RssAnon":
			m.AnonKB = n
		case "RssFile":
			m.FileKB = n
		}
	}
	return m
}

func (m Mem) String() string {
	return fmt.Sprintf("RssAnon %d MB, RssFile %d MB", m.AnonKB>>10, m.FileKB>>10)
}

// FreePorts returns n loopback addresses that were free a moment ago.
func FreePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

// noKeepAlive polls on a new connection each time: a kept-alive one would
// count against a server's connection cap during a bench.
var noKeepAlive = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// WaitHTTP polls u until it answers 200, ctx ends or timeout passes.
func WaitHTTP(ctx context.Context, u string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		res, err := noKeepAlive.Do(req)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", res.StatusCode)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop interrupts cmd's process (a graceful drain) and kills it if it has
// not exited within 20 s.
func Stop(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
