package slapd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// A database loaded with slapadd is served, survives a stop and start on
// the same port, and Stop leaves no process behind.
func TestSlapaddStartStopStart(t *testing.T) {
	if err := Installed(); err != nil {
		t.Fatal(err)
	}
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Dir: t.TempDir(), URLs: []string{"ldap://" + addr + "/"}, Suffix: "o=t", RootDN: "cn=admin,o=t", RootPW: "pw", NoSync: true}
	if err := cfg.WriteConf(); err != nil {
		t.Fatal(err)
	}
	conf, _ := os.ReadFile(cfg.ConfPath())
	for _, want := range []string{"dbnosync", `suffix "o=t"`, "index cn eq", "maxsize 1073741824"} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("slapd.conf lacks %q:\n%s", want, conf)
		}
	}
	ldif := filepath.Join(cfg.Dir, "load.ldif")
	os.WriteFile(ldif, []byte("dn: o=t\nobjectClass: organization\no: t\n\ndn: cn=x,o=t\nobjectClass: organizationalRole\ncn: x\n\n"), 0o600)
	if err := cfg.Slapadd(ldif, true); err != nil {
		t.Fatal(err)
	}
	s := New(cfg)
	t.Cleanup(s.Stop)
	for round := range 2 {
		if err := s.Start(context.Background()); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c, err := s.Dial()
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Search(ldap.NewSearchRequest("o=t", ldap.ScopeWholeSubtree, 0, 0, 0, false, "(cn=x)", nil, nil))
		c.Close()
		if err != nil || len(res.Entries) != 1 {
			t.Fatalf("round %d: search: %v %v", round, err, res)
		}
		pid := s.Pid()
		s.Stop()
		if err := syscall.Kill(pid, 0); err == nil {
			t.Fatalf("round %d: slapd %d still exists after Stop", round, pid)
		}
	}
}

// A config slapd refuses fails Start with slapd's own message, at once.
func TestStartBadConfig(t *testing.T) {
	addr, _ := FreeAddr()
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), URLs: []string{"ldap://" + addr + "/"}, Suffix: "o=t",
		Schemas: []string{"/nonexistent.schema"}})
	if err == nil || !strings.Contains(err.Error(), "exited at start") || !strings.Contains(err.Error(), "nonexistent.schema") {
		t.Errorf("err = %v", err)
	}
}

func TestConfigRequired(t *testing.T) {
	if err := (&Config{Dir: t.TempDir()}).WriteConf(); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("err = %v", err)
	}
}
