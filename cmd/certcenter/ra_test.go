package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNotificationsWithoutChannel: a server started without mail or webhook
// (the default) says so at start, and the outbox is readable with
// `certcenter ra notifications`.
func TestNotificationsWithoutChannel(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"))
	out, err := s.client(t, "ra", "notifications", "--status", "held")
	if err != nil || !strings.Contains(out, "ID") || !strings.Contains(out, "STATUS") {
		t.Fatalf("ra notifications: %v\n%s", err, out)
	}
	if out, err := s.client(t, "ra", "notifications", "--status", "lost"); err == nil || !strings.Contains(out, "not one of") {
		t.Errorf("ra notifications --status lost: %v\n%s", err, out)
	}
	// The log is read once the process is gone (its writer is another goroutine).
	s.cmd.Process.Kill()
	s.cmd.Wait()
	if !strings.Contains(s.log.String(), "no notification channel") {
		t.Errorf("serve did not warn that no notification channel is configured:\n%s", s.log)
	}
}
