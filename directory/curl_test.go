package directory

import (
	"context"
	"errors"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// TestCurl reads entries with the curl binary, whose LDAP client (OpenLDAP's
// libldap over curl's own TLS) stalls when a search's entries and its
// SearchResultDone arrive in one TLS record. The process has a deadline, so
// a hang fails the test instead of wedging it.
func TestCurl(t *testing.T) {
	requireTool(t, "curl", "curl")
	e := newEnv(t, 100, nil) // 100 entries with certificates pass the 64 KiB flush threshold
	tests := []struct {
		name string
		url  string
		want int // entries
	}{
		{"ok/ldap one entry", "ldap://" + e.ldap + "/" + suffix + "?cn?sub?(uid=seed-0000001)", 1},
		{"ok/ldaps one entry", "ldaps://" + e.ldaps + "/" + suffix + "?cn?sub?(uid=seed-0000001)", 1},
		{"ok/ldaps many entries", "ldaps://" + e.ldaps + "/" + suffix + "?cn,userCertificate;binary?sub?(objectClass=pkiUser)", 100},
		{"ok/ldaps rootDSE", "ldaps://" + e.ldaps + "/?namingContexts?base?(objectClass=*)", 1},
		{"ok/ldaps no entry", "ldaps://" + e.ldaps + "/" + suffix + "?cn?sub?(uid=nobody)", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "curl", "-sS", "--max-time", "10", "--cacert", e.caFile, tc.url)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("curl hung: %s", out)
			}
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatalf("curl %s: %v: %s", tc.url, err, out)
			}
			if n := len(regexp.MustCompile(`(?m)^DN:`).FindAll(out, -1)); n != tc.want {
				t.Errorf("curl returned %d entries, want %d: %s", n, tc.want, out)
			}
		})
	}
}
