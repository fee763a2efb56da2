package directory

import (
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/certcenter/certcenter/config"
)

// pagedSearch walks a paged search with go-ldap and returns the entries of
// every page and the last page's error.
func pagedSearch(t *testing.T, c *ldap.Conn, filter string, pageSize uint32, sizeLimit int) (int, error) {
	t.Helper()
	var cookie []byte
	n := 0
	for page := 0; page < 1000; page++ {
		pc := ldap.NewControlPaging(pageSize)
		pc.SetCookie(cookie)
		r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, sizeLimit, 0, false, filter, []string{"1.1"}, []ldap.Control{pc}))
		if r != nil {
			n += len(r.Entries)
		}
		if err != nil {
			return n, err
		}
		rc, ok := ldap.FindControl(r.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok {
			t.Fatal("no paged results control in the response")
		}
		if len(rc.Cookie) == 0 {
			return n, nil
		}
		cookie = rc.Cookie
	}
	t.Fatal("paged search did not end")
	return 0, nil
}

// firstCookie runs the first page of a paged search and returns its cookie.
func firstCookie(t *testing.T, c *ldap.Conn, filter string, pageSize uint32) []byte {
	t.Helper()
	r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, filter, []string{"1.1"}, []ldap.Control{ldap.NewControlPaging(pageSize)}))
	if err != nil {
		t.Fatal(err)
	}
	rc := ldap.FindControl(r.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
	if len(rc.Cookie) == 0 {
		t.Fatal("first page has no cookie")
	}
	return rc.Cookie
}

func nextPage(c *ldap.Conn, filter string, cookie []byte) error {
	pc := ldap.NewControlPaging(10)
	pc.SetCookie(cookie)
	_, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, filter, []string{"1.1"}, []ldap.Control{pc}))
	return err
}

// TestPagedSizeLimit: a client's size limit bounds the whole paged search,
// not each page (RFC 4511 4.5.1.4 with RFC 2696), as slapd does.
func TestPagedSizeLimit(t *testing.T) {
	e := newEnv(t, 60, nil)
	c := e.dial(t)
	const all = "(objectClass=pkiUser)"
	tests := []struct {
		name      string
		pageSize  uint32
		sizeLimit int
		want      int
		code      uint16 // 0: success
	}{
		{"ok/no client limit", 10, 0, 60, 0},
		{"ok/limit above the matches", 10, 100, 60, 0},
		{"ok/limit equal to the matches", 10, 60, 60, 0},
		{"fail/limit across pages", 10, 25, 25, ldap.LDAPResultSizeLimitExceeded},
		{"fail/limit on a page boundary", 10, 30, 30, ldap.LDAPResultSizeLimitExceeded},
		{"fail/limit below one page", 10, 5, 5, ldap.LDAPResultSizeLimitExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := pagedSearch(t, c, all, tc.pageSize, tc.sizeLimit)
			if tc.code == 0 && err != nil || tc.code != 0 && !ldap.IsErrorWithCode(err, tc.code) {
				t.Fatalf("err = %v, want code %d", err, tc.code)
			}
			if n != tc.want {
				t.Errorf("%d entries, want %d", n, tc.want)
			}
		})
	}
	out, code := e.ldapsearch(t, "-H", "ldap://"+e.ldap, "-b", suffix, "-E", "pr=10/noprompt", "-z", "25", all, "1.1")
	if code != 4 || len(dns(out)) != 25 {
		t.Errorf("ldapsearch -E pr=10 -z 25: exit %d with %d entries, want 4 with 25: %s", code, len(dns(out)), out)
	}
}

// TestPagingCookieBound: a cookie is valid only for the search that made
// it, on the identity that made it, in this process; slapd answers a cookie
// it cannot decode with protocolError and one that is not current with
// unwillingToPerform, and so does the directory.
func TestPagingCookieBound(t *testing.T) {
	account := withAccount(t, true)
	e := newEnv(t, 30, func(l *config.LDAP) { account(l); l.AnonymousRead = true })
	other := newEnv(t, 30, nil) // another process: another key
	const f = "(objectClass=pkiUser)"
	anon := e.dial(t)
	bound := e.dial(t)
	if err := bound.Bind(svcDN, svcPW); err != nil {
		t.Fatal(err)
	}
	good := firstCookie(t, anon, f, 10)
	if err := nextPage(anon, f, good); err != nil {
		t.Fatalf("the genuine cookie was refused: %v", err)
	}
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 1
	// a cookie naming the last subscriber: what a forger would write to
	// jump ahead under the old plain-text scheme
	forged := []byte("useed-0000020")
	tests := []struct {
		name   string
		c      *ldap.Conn
		filter string
		cookie []byte
		code   uint16
	}{
		{"fail/flipped bit", anon, f, flipped, ldap.LDAPResultUnwillingToPerform},
		{"fail/plain-text position", anon, f, forged, ldap.LDAPResultProtocolError},
		{"fail/garbage", anon, f, []byte("x"), ldap.LDAPResultProtocolError},
		{"fail/other filter", anon, "(objectClass=inetOrgPerson)", good, ldap.LDAPResultUnwillingToPerform},
		{"fail/other identity", bound, f, good, ldap.LDAPResultUnwillingToPerform},
		{"fail/other process", other.dial(t), f, good, ldap.LDAPResultUnwillingToPerform},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := nextPage(tc.c, tc.filter, tc.cookie); !ldap.IsErrorWithCode(err, tc.code) {
				t.Errorf("err = %v, want code %d", err, tc.code)
			}
		})
	}
	// the bound identity's own cookie works
	if err := nextPage(bound, f, firstCookie(t, bound, f, 10)); err != nil {
		t.Errorf("bound identity's own cookie refused: %v", err)
	}
}
