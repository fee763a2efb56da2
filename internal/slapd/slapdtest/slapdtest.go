// Package slapdtest starts a throwaway slapd (package slapd) for a test:
// its directory is a t.TempDir, its listener a free loopback port, and it
// is stopped at cleanup. A missing slapd fails the test naming the Debian
// package: CI installs it (scripts/test.sh), so these tests never skip.
package slapdtest

import (
	"context"
	"testing"

	"github.com/certcenter/certcenter/internal/slapd"
)

// Options are what a test chooses; the rest of slapd.Config is filled in.
type Options struct {
	Suffix, RootDN, RootPW string
	// Entries are added once slapd runs (parents first), e.g. the suffix.
	Entries []slapd.Entry
	// TLS adds an ldaps:// listener and StartTLS.
	TLS *slapd.TLS
	// NoSync, Indexes, Schemas: as in slapd.Config.
	NoSync  bool
	Indexes []string
	Schemas []string
}

// Start starts slapd on 127.0.0.1 with opts and stops it at cleanup.
func Start(t testing.TB, opts Options) *slapd.Server {
	t.Helper()
	if err := slapd.Installed(); err != nil {
		t.Fatal(err)
	}
	cfg := slapd.Config{Dir: t.TempDir(), Suffix: opts.Suffix, RootDN: opts.RootDN, RootPW: opts.RootPW,
		NoSync: opts.NoSync, Indexes: opts.Indexes, Schemas: opts.Schemas, TLS: opts.TLS}
	cfg.URLs = []string{"ldap://" + freeAddr(t) + "/"}
	if opts.TLS != nil {
		cfg.URLs = append(cfg.URLs, "ldaps://"+freeAddr(t)+"/")
	}
	s, err := slapd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	if err := s.AddEntries(opts.Entries...); err != nil {
		t.Fatal(err)
	}
	return s
}

func freeAddr(t testing.TB) string {
	t.Helper()
	a, err := slapd.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}
