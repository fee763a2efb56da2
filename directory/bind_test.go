package directory

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/certcenter/certcenter/config"

	"github.com/certcenter/certcenter/store"
)

// These tests cover the operations the front end answers without a second
// LDAP server: binds, writes, WhoAmI and unknown extended operations, and
// what a connection costs.

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

func TestBoundClientCostsOneDescriptor(t *testing.T) {
	e := newEnv(t, 3, withAccount(t, true))
	const n = 64
	before := openFDs(t)
	conns := make([]*ldap.Conn, n)
	for i := range conns {
		c, err := ldap.DialURL("ldap://" + e.ldap)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
		if err := c.Bind(svcDN, svcPW); err != nil {
			t.Fatalf("bind %d: %v", i, err)
		}
		if err := searchOne(c); err != nil {
			t.Fatalf("search %d: %v", i, err)
		}
	}
	after := openFDs(t)
	for _, c := range conns {
		c.Close()
	}
	// client and server run in this process: one descriptor each per
	// connection, and a few to spare for the store and the runtime
	if grew := after - before; grew > 2*n+8 {
		t.Fatalf("%d bound connections opened %d descriptors, want at most %d (one per connection on each side)", n, grew, 2*n+8)
	}
}

func TestBind(t *testing.T) {
	e := newEnv(t, 3, withAccount(t, false))
	tlsConf := e.clientTLS(t)
	dial := func(t *testing.T) *ldap.Conn {
		c, err := ldap.DialURL("ldaps://"+e.ldaps, ldap.DialWithTLSConfig(tlsConf))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	tests := []struct {
		name   string
		bind   func(*ldap.Conn) error
		code   uint16 // 0: success
		whoami string
	}{
		{"ok/service account", func(c *ldap.Conn) error { return c.Bind(svcDN, svcPW) }, 0, "dn:" + svcDN},
		{"ok/service account, DN in another case and spacing", func(c *ldap.Conn) error {
			return c.Bind(strings.ToUpper(strings.ReplaceAll(svcDN, ",", ", ")), svcPW)
		}, 0, "dn:" + svcDN},
		{"ok/anonymous", anonymousBind, 0, ""},
		{"fail/wrong password", func(c *ldap.Conn) error { return c.Bind(svcDN, "nope") }, ldap.LDAPResultInvalidCredentials, ""},
		{"fail/unknown DN", func(c *ldap.Conn) error { return c.Bind("cn=nobody,"+suffix, svcPW) }, ldap.LDAPResultInvalidCredentials, ""},
		{"fail/invalid DN", func(c *ldap.Conn) error { return c.Bind("not a DN", svcPW) }, ldap.LDAPResultInvalidCredentials, ""},
		{"fail/name without password", func(c *ldap.Conn) error {
			_, err := c.SimpleBind(&ldap.SimpleBindRequest{Username: svcDN, AllowEmptyPassword: true})
			return err
		}, ldap.LDAPResultUnwillingToPerform, ""},
		{"fail/SASL EXTERNAL without a client certificate", func(c *ldap.Conn) error { return c.ExternalBind() }, ldap.LDAPResultInappropriateAuthentication, ""},
		{"fail/SASL DIGEST-MD5", func(c *ldap.Conn) error { return c.MD5Bind("127.0.0.1", "u", "p") }, ldap.LDAPResultAuthMethodNotSupported, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t)
			err := tc.bind(c)
			if tc.code == 0 && err != nil || tc.code != 0 && !ldap.IsErrorWithCode(err, tc.code) {
				t.Fatalf("bind: %v, want result %d", err, tc.code)
			}
			who, err := c.WhoAmI(nil)
			if err != nil {
				t.Fatalf("WhoAmI after the bind: %v", err)
			}
			if !strings.EqualFold(who.AuthzID, tc.whoami) {
				t.Errorf("WhoAmI = %q, want %q", who.AuthzID, tc.whoami)
			}
			// a failed bind leaves the connection anonymous: with
			// anonymous read off, reading needs the successful bind
			err = searchOne(c)
			if tc.whoami != "" && err != nil || tc.whoami == "" && !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
				t.Errorf("search after the bind: %v", err)
			}
		})
	}

	t.Run("fail/a failed bind undoes an earlier one", func(t *testing.T) {
		c := dial(t)
		if err := c.Bind(svcDN, svcPW); err != nil {
			t.Fatal(err)
		}
		if err := c.Bind(svcDN, "nope"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		if who, err := c.WhoAmI(nil); err != nil || who.AuthzID != "" {
			t.Fatalf("WhoAmI after the failed bind = %+v, %v; want anonymous", who, err)
		}
	})

	t.Run("ok/concurrent binds on many connections", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := ldap.DialURL("ldaps://"+e.ldaps, ldap.DialWithTLSConfig(tlsConf))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				pw := svcPW
				if i%2 == 1 {
					pw = "nope"
				}
				err = c.Bind(svcDN, pw)
				if i%2 == 0 && err != nil || i%2 == 1 && !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("ok/ldapwhoami -D -w", func(t *testing.T) {
		requireTool(t, "ldapwhoami", "ldap-utils")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "ldapwhoami", "-x", "-H", "ldaps://"+e.ldaps, "-D", svcDN, "-w", svcPW)
		cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+e.caFile, "LDAPRC=/dev/null", "LDAPCONF=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.EqualFold(strings.TrimSpace(string(out)), "dn:"+svcDN) {
			t.Fatalf("ldapwhoami: %v: %s", err, out)
		}
	})
}

func TestWritesAndExtendedOperations(t *testing.T) {
	e := newEnv(t, 3, nil)
	c := e.dial(t)
	writes := map[string]func() error{
		"add": func() error {
			r := ldap.NewAddRequest("cn=new,"+suffix, nil)
			r.Attribute("objectClass", []string{"person"})
			r.Attribute("cn", []string{"new"})
			r.Attribute("sn", []string{"new"})
			return c.Add(r)
		},
		"modify": func() error {
			return c.Modify(&ldap.ModifyRequest{DN: sub(1), Changes: []ldap.Change{{Operation: ldap.ReplaceAttribute, Modification: ldap.PartialAttribute{Type: "mail", Vals: []string{"a@b"}}}}})
		},
		"delete":   func() error { return c.Del(ldap.NewDelRequest(sub(1), nil)) },
		"modifyDN": func() error { return c.ModifyDN(ldap.NewModifyDNRequest(sub(1), "cn=x", true, "")) },
	}
	for name, op := range writes {
		t.Run("fail/"+name, func(t *testing.T) {
			if err := op(); !ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform) {
				t.Errorf("%s: %v, want unwillingToPerform", name, err)
			}
		})
	}
	t.Run("ok/WhoAmI anonymous", func(t *testing.T) {
		who, err := c.WhoAmI(nil)
		if err != nil || who.AuthzID != "" {
			t.Errorf("WhoAmI = %+v, %v; want an empty authzId", who, err)
		}
	})
	t.Run("fail/unknown extended operation", func(t *testing.T) {
		const oid = "1.3.6.1.4.1.4203.1.11.1" // password modify
		_, err := c.Extended(ldap.NewExtendedRequest(oid, nil))
		var le *ldap.Error
		if !errors.As(err, &le) || le.ResultCode != ldap.LDAPResultProtocolError || !strings.Contains(le.Err.Error(), oid) {
			t.Errorf("unknown extended operation: %v, want protocolError naming %s", err, oid)
		}
	})
	// the connection survived all of that
	if err := searchOne(c); err != nil {
		t.Errorf("search after the refused operations: %v", err)
	}
}

// TestCommitDoesNotWaitForTheDirectory holds the lock the directory's
// rebuild of the CA entries takes: a commit that writes a CRL must still
// return, since reading the store and rebuilding are not done on the
// committing goroutine; once the directory can work, the CRL is served.
func TestCommitDoesNotWaitForTheDirectory(t *testing.T) {
	e := newEnv(t, 2, nil)
	ctx := context.Background()
	e.d.contMu.Lock()
	release := sync.OnceFunc(e.d.contMu.Unlock)
	t.Cleanup(release)

	crl := []byte("not parsed by the directory")
	committed := make(chan error, 1)
	go func() {
		committed <- e.st.Update(ctx, func(tx *store.Tx) error { return tx.PutBlob("crl", "demo.crl", crl) })
	}()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		release()
		t.Fatal("the commit waited for the directory to rebuild its entries")
	}
	release()
	c := e.dial(t)
	iss := e.auth.Issuers()[0]
	r, err := c.Search(ldap.NewSearchRequest(iss.Cert.Subject.String(), 0, 0, 0, 0, false, "(objectClass=*)", []string{"certificateRevocationList;binary"}, nil))
	if err != nil || len(r.Entries) != 1 || string(r.Entries[0].GetRawAttributeValue("certificateRevocationList;binary")) != string(crl) {
		t.Fatalf("CRL written before the search is not served: %v", err)
	}
}

// TestNewSubscriberVisibleAtOnce adds a subscriber in a new unit with the
// cn of a cached one: a search sent after the commit returned finds both,
// though the directory reads the new record on its own goroutine.
func TestNewSubscriberVisibleAtOnce(t *testing.T) {
	e := newEnv(t, 2, nil)
	c := e.dial(t)
	byCN := func() []string {
		t.Helper()
		r, err := c.Search(ldap.NewSearchRequest(suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(cn=seed-0000001)", []string{"1.1"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range r.Entries {
			out = append(out, en.DN)
		}
		return out
	}
	if got := byCN(); len(got) != 1 {
		t.Fatalf("before: %v", got)
	}
	s := &store.Subscriber{ID: "new-1", CommonName: "seed-0000001", UID: "new-1", Organization: "certcenter", OrgUnit: "brand-new", CreatedAt: time.Now()}
	if err := e.st.Update(context.Background(), func(tx *store.Tx) error { return tx.PutSubscriber(s) }); err != nil {
		t.Fatal(err)
	}
	newDN := "cn=seed-0000001,ou=brand-new," + suffix
	if got := byCN(); len(got) != 2 {
		t.Fatalf("after adding %s: %v", newDN, got)
	}
	r, err := c.Search(ldap.NewSearchRequest("ou=brand-new,"+suffix, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
	if err != nil || len(r.Entries) != 1 {
		t.Fatalf("new unit not served: %v", err)
	}
}

// TestUnknownNameCostsAWrongPassword: an unknown name's password is
// checked against a hash of the accounts' highest bcrypt cost, so the
// bind takes as long as one with a wrong password and does not tell which
// names exist. Bad accounts are refused with the key named.
func TestUnknownNameCostsAWrongPassword(t *testing.T) {
	low, _ := bcrypt.GenerateFromPassword([]byte("a"), bcrypt.MinCost)
	high, _ := bcrypt.GenerateFromPassword([]byte("b"), bcrypt.MinCost+2)
	accounts, dummy, err := loadAccounts([]config.LDAPAccount{{DN: "cn=a," + suffix, PasswordHash: string(low)}, {DN: "cn=b," + suffix, PasswordHash: string(high)}})
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost(dummy); err != nil || cost != bcrypt.MinCost+2 {
		t.Errorf("dummy hash cost %d (%v), want %d", cost, err, bcrypt.MinCost+2)
	}
	if a, ok := accounts[mustNorm("CN=B, "+suffix)]; !ok || a.dn != "cn=b,"+suffix {
		t.Errorf("account by normalized DN: %+v %v", a, ok)
	}
	if _, dummy, err := loadAccounts(nil); err != nil || dummy != nil {
		t.Errorf("no accounts: dummy %v, %v", dummy, err)
	}
	for _, bad := range []config.LDAPAccount{{DN: "not a DN", PasswordHash: string(low)}, {DN: "cn=c," + suffix, PasswordHash: "plain"}} {
		if _, _, err := loadAccounts([]config.LDAPAccount{bad}); err == nil || !strings.Contains(err.Error(), "ldap.accounts") {
			t.Errorf("account %+v: %v, want an ldap.accounts error", bad, err)
		}
	}
}
