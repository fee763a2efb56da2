package server

import (
	"bytes"
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start warns when ca.public_url or ca.ldap_url does not reach the bound
// public or LDAP listener, and is quiet when they do.
func TestWarnsWhenPublicURLMissesListener(t *testing.T) {
	for _, tc := range []struct {
		name       string
		publicPort bool // public_url names the bound port
		ldapPort   bool
		want       []string
		notWant    []string
	}{
		{"warn/defaults with other ports", false, false, []string{`key=ca.public_url`, `key=ca.ldap_url`}, nil},
		{"ok/urls match the listeners", true, true, nil, []string{"ca.public_url", "ca.ldap_url"}},
		{"warn/ldap only", true, false, []string{`key=ca.ldap_url`}, []string{"key=ca.public_url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			addrs := freeAddrs(t, 2)
			cfg.HTTP.Addr, cfg.LDAP.Addr = addrs[0], addrs[1]
			if tc.publicPort {
				cfg.CA.PublicURL = "http://" + cfg.HTTP.Addr
			}
			if tc.ldapPort {
				cfg.CA.LDAPURL = "ldap://" + cfg.LDAP.Addr
			}
			var buf syncBuf
			s, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(&buf, nil)))
			if err != nil {
				t.Fatal(err)
			}
			s.Stop(context.Background())
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) || !strings.Contains(out, "level=WARN") {
					t.Errorf("log lacks a warning with %s:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("log warns about %s:\n%s", w, out)
				}
			}
		})
	}
}

func TestURLMismatch(t *testing.T) {
	for _, tc := range []struct {
		url, bound string
		bad        bool
	}{
		{"http://localhost:8080", "[::]:8080", false},
		{"http://localhost:8080", "0.0.0.0:9090", true},
		{"http://ca.example.org", "0.0.0.0:80", false},
		{"http://ca.example.org", "0.0.0.0:8080", true},
		{"http://localhost:8080", "10.0.0.5:8080", true},
		{"http://127.0.0.1:8080", "127.0.0.1:8080", false},
		{"http://10.0.0.6:8080", "10.0.0.5:8080", true},
		{"ldap://localhost", "127.0.0.1:389", false},
	} {
		u, _ := url.Parse(tc.url)
		def := "80"
		if u.Scheme == "ldap" {
			def = "389"
		}
		if got := mismatch(u, tc.bound, def) != ""; got != tc.bad {
			t.Errorf("mismatch(%s, %s) = %v, want %v", tc.url, tc.bound, got, tc.bad)
		}
	}
}
