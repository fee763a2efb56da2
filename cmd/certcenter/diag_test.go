package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// diag prints where a certificate stands, as text and as the API's JSON,
// and the (empty) target list; an unknown organisation is an error.
func TestDiag(t *testing.T) {
	s := serve(t, filepath.Join(t.TempDir(), "data"))
	out, err := s.client(t, "cert", "list")
	if err != nil {
		t.Fatalf("cert list: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`(?m)^([0-9a-f]+)\s+valid\s+server-tls`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no server certificate in:\n%s", out)
	}
	serial := m[1]
	out, err = s.client(t, "diag", "cert", serial)
	if err != nil {
		t.Fatalf("diag cert: %v\n%s", err, out)
	}
	for _, want := range []string{"certificate " + serial, "served from ", ": good", "demo.crl", "does not list it", "no problems", "targets\n  (none"} {
		if !strings.Contains(out, want) {
			t.Errorf("diag cert output lacks %q:\n%s", want, out)
		}
	}
	out, err = s.client(t, "diag", "cert", serial, "--json")
	var d struct {
		Certificate struct{ Serial string }
		OCSP        struct{ Status string }
		Problems    []any
	}
	if err != nil || json.Unmarshal([]byte(out), &d) != nil || d.Certificate.Serial != serial || d.OCSP.Status != "good" || d.Problems == nil || len(d.Problems) != 0 {
		t.Errorf("diag cert --json: %v\n%s", err, out)
	}
	out, err = s.client(t, "diag", "targets")
	if err != nil || !strings.Contains(out, "no targets") {
		t.Errorf("diag targets: %v\n%s", err, out)
	}
	out, err = s.client(t, "publish", "pause", "his")
	if err == nil || !strings.Contains(out, "no such publishing target") {
		t.Errorf("publish pause with no targets: %v\n%s", err, out)
	}
	out, err = s.client(t, "diag", "org", "no-such-org")
	if err == nil || !strings.Contains(out, "no such organisation") {
		t.Errorf("diag org no-such-org: %v\n%s", err, out)
	}
	out, err = s.client(t, "diag", "cert", "10135g")
	if err == nil || !strings.Contains(out, "not hex") {
		t.Errorf("diag cert 10135g: %v\n%s", err, out)
	}
}
