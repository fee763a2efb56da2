package crlscope

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	pub   = "http://h:8080/"
	entry = "ldap://h:1389/cn=Demo,o=Org"
)

func TestFile(t *testing.T) {
	for _, tc := range []struct {
		c    CRL
		want string
	}{
		{Complete("demo"), "demo.crl"},
		{Complete("demo").DeltaCRL(), "demo-delta.crl"},
		{ARL("demo"), "demo-arl.crl"},
		{Shard("demo", 0), "demo-0.crl"},
		{Shard("demo", 12).DeltaCRL(), "demo-12-delta.crl"},
		{Shard("demo", 12).DeltaCRL().Base(), "demo-12.crl"},
	} {
		if got := tc.c.File(); got != tc.want {
			t.Errorf("%+v: File %q, want %q", tc.c, got, tc.want)
		}
	}
	if got := HTTPURL(pub, Shard("demo", 3)); got != "http://h:8080/crl/demo-3.crl" {
		t.Errorf("HTTPURL %q", got)
	}
	if got := Sequence("demo"); got != "crl-demo" {
		t.Errorf("Sequence %q", got)
	}
}

func TestFileOfKey(t *testing.T) {
	for key, want := range map[string]string{"crl/demo.crl": "demo.crl", "crl/demo-0-delta.crl": "demo-0-delta.crl", "crlmeta/demo.crl": "", "ocsp/ab": ""} {
		got, ok := FileOfKey(key)
		if ok != (want != "") || got != want && ok {
			t.Errorf("FileOfKey(%q) = %q, %v; want %q", key, got, ok, want)
		}
	}
}

// The shard of a serial is a fixed function of its last eight octets and
// N: these values are written into certificates, so they must never move.
func TestShardOf(t *testing.T) {
	cases := []struct {
		name   string
		shards int
		serial []byte
		want   int
	}{
		{"unsharded/0", 0, []byte{7}, 0},
		{"unsharded/1", 1, []byte{7}, 0},
		{"short", 3, []byte{7}, 1},
		{"two octets", 10, []byte{1, 0}, 6},                             // 256 % 10
		{"last eight only", 5, []byte{9, 9, 0, 0, 0, 0, 0, 0, 0, 7}, 2}, // 7 % 5
		{"empty", 4, nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Layout{Shards: tc.shards}).ShardOf(tc.serial); got != tc.want {
				t.Errorf("ShardOf = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestLists(t *testing.T) {
	files := func(cs []CRL) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.File())
		}
		return strings.Join(s, " ")
	}
	l1, l3 := Layout{}, Layout{Shards: 3}
	for _, tc := range []struct{ got, want string }{
		{files(l1.Full("a")), "a.crl a-arl.crl"},
		{files(l1.Deltas("a")), "a-delta.crl"},
		{files(l3.Full("a")), "a.crl a-arl.crl a-0.crl a-1.crl a-2.crl"},
		{files(l3.Deltas("a")), "a-delta.crl a-0-delta.crl a-1-delta.crl a-2-delta.crl"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	for _, l := range []Layout{l1, l3} {
		for _, c := range append(l.Full("a"), l.Deltas("a")...) {
			if got, ok := l.Find("a", c.File()); !ok || got != c {
				t.Errorf("Find(%q) = %+v, %v", c.File(), got, ok)
			}
		}
	}
	for _, f := range []string{"a-3.crl", "a-arl-delta.crl", "b.crl", "a", "a-0.crl"} {
		if c, ok := l1.Find("a", f); ok {
			t.Errorf("unsharded Find(%q) = %+v", f, c)
		}
	}
	if _, ok := l3.Find("a", "a-3.crl"); ok {
		t.Error("Find found a shard beyond N")
	}
}

// A certificate's http CDP names the CRL that lists it, and that CRL's IDP
// names the same URL, so a relying party accepts it for that certificate.
func TestForAndScope(t *testing.T) {
	for _, l := range []Layout{{}, {Shards: 1}, {Shards: 4}} {
		for i := range 64 {
			serial := []byte{byte(i), 0x5a, byte(i * 7)}
			c := l.For("demo", serial)
			if c.Delta || !l.Covers(c, serial) {
				t.Fatalf("%+v: For = %+v, which does not list the serial", l, c)
			}
			if !l.Sharded() {
				if c != Complete("demo") {
					t.Fatalf("unsharded For = %+v", c)
				}
				continue
			}
			sc := l.Scope(c, pub, entry)
			if !sc.IDP || sc.OnlyCACerts || !slices.Contains(sc.Names, HTTPURL(pub, c)) {
				t.Fatalf("scope of %s is %+v, want it to name %s", c.File(), sc, HTTPURL(pub, c))
			}
			for k := range l.N() {
				if k != c.Shard && l.Covers(Shard("demo", k), serial) {
					t.Fatalf("shard %d also covers the serial of shard %d", k, c.Shard)
				}
			}
		}
	}
	if (Layout{}).Covers(ARL("demo"), []byte{1}) {
		t.Error("the ARL covers a user certificate")
	}
}

func TestScope(t *testing.T) {
	l1, l2 := Layout{}, Layout{Shards: 2}
	users := func(names ...string) Scope { return Scope{IDP: true, Names: names} }
	for _, tc := range []struct {
		name string
		l    Layout
		c    CRL
		want Scope
	}{
		// NSS refuses a critical IDP; an unsharded complete CRL needs none.
		{"unsharded/complete", l1, Complete("demo"), Scope{}},
		{"unsharded/delta", l1, Complete("demo").DeltaCRL(), Scope{}},
		{"unsharded/arl", l1, ARL("demo"), Scope{IDP: true, OnlyCACerts: true}},
		{"sharded/complete", l2, Complete("demo"), users(pub[:len(pub)-1]+"/crl/demo.crl", entry+"?certificateRevocationList;binary")},
		{"sharded/delta repeats its base", l2, Complete("demo").DeltaCRL(), users(pub[:len(pub)-1]+"/crl/demo.crl", entry+"?certificateRevocationList;binary")},
		{"sharded/shard", l2, Shard("demo", 1), users("http://h:8080/crl/demo-1.crl")},
		{"sharded/shard delta", l2, Shard("demo", 1).DeltaCRL(), users("http://h:8080/crl/demo-1.crl")},
		{"sharded/arl", l2, ARL("demo"), Scope{IDP: true, OnlyCACerts: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.l.Scope(tc.c, pub, entry)
			if got.IDP != tc.want.IDP || got.OnlyCACerts != tc.want.OnlyCACerts || !slices.Equal(got.Names, tc.want.Names) {
				t.Errorf("Scope = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestLDAP(t *testing.T) {
	want := map[string]string{
		"demo.crl":       "certificateRevocationList",
		"demo-delta.crl": "deltaRevocationList",
		"demo-arl.crl":   "authorityRevocationList",
	}
	got := map[string]string{}
	for _, c := range Published("demo") {
		got[c.File()] = c.LDAPAttribute()
	}
	if len(got) != len(want) {
		t.Fatalf("Published = %v", got)
	}
	for f, a := range want {
		if got[f] != a {
			t.Errorf("%s: attribute %q, want %q", f, got[f], a)
		}
	}
	for _, c := range []CRL{Shard("demo", 0), Shard("demo", 0).DeltaCRL(), ARL("demo").DeltaCRL()} {
		if a := c.LDAPAttribute(); a != "" || LDAPURL(entry, c) != "" {
			t.Errorf("%s is published as %q", c.File(), a)
		}
	}
	if got := LDAPURL(entry, Complete("demo").DeltaCRL()); got != entry+"?deltaRevocationList;binary" {
		t.Errorf("LDAPURL %q", got)
	}
}

// No package but this one spells a CRL file name, store namespace or LDAP
// CRL attribute: the production code of ca, crl, directory and server's CRL
// wiring takes them from here.
func TestOneSource(t *testing.T) {
	forbidden := func(s string) bool {
		switch s {
		case Namespace, MetaNamespace, HTTPPath, "crl-", "certificateRevocationList;binary", "deltaRevocationList;binary":
			return true
		}
		return strings.HasSuffix(s, ".crl") || strings.HasPrefix(s, "-arl") || strings.HasPrefix(s, "-delta") ||
			strings.HasPrefix(s, "?certificateRevocationList") || strings.HasPrefix(s, "?deltaRevocationList") ||
			strings.Contains(s, "/crl/")
	}
	// "crl" is also a log component, a readiness check, a service and a job name.
	allowed := func(af *ast.File) map[token.Pos]bool {
		ok := map[token.Pos]bool{}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if sel, isSel := n.Fun.(*ast.SelectorExpr); isSel && sel.Sel.Name == "addCheck" && len(n.Args) > 0 {
					ok[n.Args[0].Pos()] = true
				}
				if id, isID := n.Fun.(*ast.Ident); isID && id.Name == "newLoop" && len(n.Args) > 0 {
					ok[n.Args[0].Pos()] = true // the background job's name
				}
				for i := 1; i < len(n.Args); i++ {
					if prev, isLit := n.Args[i-1].(*ast.BasicLit); isLit && prev.Value == `"component"` {
						ok[n.Args[i].Pos()] = true
					}
				}
			case *ast.KeyValueExpr:
				if id, isID := n.Key.(*ast.Ident); isID && id.Name == "name" {
					ok[n.Value.Pos()] = true
				}
			}
			return true
		})
		return ok
	}
	root := filepath.Join("..", "..")
	var files []string
	for _, dir := range []string{"ca", "crl", "directory"} {
		m, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	files = append(files, filepath.Join(root, "server", "wire_crl.go"))
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		skip := allowed(af)
		ast.Inspect(af, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING || skip[lit.Pos()] {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err == nil && forbidden(s) {
				t.Errorf("%s: CRL name %q spelled outside internal/crlscope", fset.Position(lit.Pos()), s)
			}
			return true
		})
	}
}
