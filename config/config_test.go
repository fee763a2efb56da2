package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
		check   func(t *testing.T, c *Config)
	}{
		{name: "ok/empty is defaults", yaml: "", check: func(t *testing.T, c *Config) {
			if c.HTTP.Addr != ":8080" || c.API.Addr != ":8443" || c.LDAP.Addr != ":1389" || c.DataDir != "./data" {
				t.Errorf("defaults = %+v", c)
			}
		}},
		{name: "ok/overrides and durations", yaml: "http:\n  addr: 127.0.0.1:9000\nca:\n  validity: 10y\nocsp:\n  validity: 4d\n", check: func(t *testing.T, c *Config) {
			if c.HTTP.Addr != "127.0.0.1:9000" || c.CA.Validity.D() != 3650*24*time.Hour || c.OCSP.Validity.D() != 96*time.Hour {
				t.Errorf("got %+v", c)
			}
			if c.HTTP.ReadTimeout.D() != 10*time.Second {
				t.Errorf("unset sibling lost its default: %v", c.HTTP.ReadTimeout)
			}
		}},
		{name: "fail/unknown top-level key", yaml: "htpp:\n  addr: x\n", wantErr: `unknown key "htpp" (line 1)`},
		{name: "fail/unknown nested key", yaml: "http:\n  adr: :80\n", wantErr: `unknown key "http.adr" (line 2)`},
		{name: "fail/bad address", yaml: "api:\n  addr: nonsense\n", wantErr: "api.addr"},
		{name: "fail/bad port", yaml: "http:\n  addr: \":99999\"\n", wantErr: "http.addr"},
		{name: "fail/bad duration", yaml: "crl:\n  interval: often\n", wantErr: "bad duration"},
		{name: "fail/ocsp validity outside CA/B", yaml: "ocsp:\n  validity: 11d\n", wantErr: "ocsp.validity"},
		{name: "fail/unknown algorithm", yaml: "ca:\n  key_algorithm: dsa\n", wantErr: "ca.key_algorithm"},
		{name: "fail/ca name like another CA's ARL", yaml: "ca:\n  name: demo-arl\n", wantErr: "ca.name"},
		{name: "fail/ca name like another CA's shard", yaml: "ca:\n  name: demo-12\n", wantErr: "ca.name"},
		{name: "ok/ca name with a hyphen", yaml: "ca:\n  name: gd-health\n", check: func(t *testing.T, c *Config) {
			if c.CA.Name != "gd-health" {
				t.Errorf("ca.name = %q", c.CA.Name)
			}
		}},
		{name: "fail/pkcs11 without module", yaml: "signer:\n  provider: pkcs11\n  pkcs11:\n    token_label: t\n", wantErr: "signer.pkcs11.module"},
		{name: "fail/pkcs11 zero module instances", yaml: "signer:\n  provider: pkcs11\n  pkcs11:\n    module: /m.so\n    token_label: t\n    module_instances: 0\n", wantErr: "signer.pkcs11.module_instances"},
		{name: "fail/mapping expected", yaml: "http: 3\n", wantErr: "http (line 1): expected a mapping"},
		{name: "fail/not yaml", yaml: "a: [", wantErr: "parsing YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load(filepath.Join("..", "certcenter.example.yaml"))
	if err != nil {
		t.Fatalf("certcenter.example.yaml: %v", err)
	}
	if c.CA.Name != "demo" {
		t.Errorf("example ca.name = %q", c.CA.Name)
	}
}

func TestPIN(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pin")
	os.WriteFile(f, []byte("1234\n"), 0o600)
	if pin, err := (PKCS11{PINFile: f}).PIN(); err != nil || pin != "1234" {
		t.Errorf("PIN from file = %q, %v", pin, err)
	}
	t.Setenv("TEST_PIN", "5678")
	if pin, err := (PKCS11{PINEnv: "TEST_PIN"}).PIN(); err != nil || pin != "5678" {
		t.Errorf("PIN from env = %q, %v", pin, err)
	}
	if _, err := (PKCS11{PINEnv: "CERTCENTER_NO_SUCH_VAR"}).PIN(); err == nil || !strings.Contains(err.Error(), "signer.pkcs11.pin_env") {
		t.Errorf("missing PIN err = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("http:\n  addr: :8080\n"))
	f.Add([]byte("ca:\n  validity: 20y\n  name: x\n"))
	f.Add([]byte("signer: {provider: pkcs11, pkcs11: {module: /x, token_label: t}}"))
	f.Add([]byte("- 1\n- 2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("Parse accepted a config Validate refuses: %v", verr)
			}
		}
	})
}

// TestMemoryKeys checks the memory keys' defaults, sizes with units and
// that bad values are refused naming the key.
func TestMemoryKeys(t *testing.T) {
	d := Default()
	if d.Store.CacheMB != 48 || d.OCSP.CacheMB != 32 || d.LDAP.CacheMB != 32 || d.Server.MemoryLimit != 0 {
		t.Fatalf("defaults: store %d, ocsp %d, ldap %d MiB, memory limit %d", d.Store.CacheMB, d.OCSP.CacheMB, d.LDAP.CacheMB, d.Server.MemoryLimit)
	}
	for _, tc := range []struct {
		name, yaml string
		limit      ByteSize
		err        string
	}{
		{name: "ok/mib", yaml: "server:\n  memory_limit: 350MiB\n", limit: 350 << 20},
		{name: "ok/fraction gib", yaml: "server:\n  memory_limit: 1.5GiB\n", limit: 3 << 29},
		{name: "ok/gb", yaml: "server:\n  memory_limit: 2GB\n", limit: 2e9},
		{name: "ok/off", yaml: "server:\n  memory_limit: \"0\"\n", limit: 0},
		{name: "fail/unit", yaml: "server:\n  memory_limit: 12 parsecs\n", err: "bad size"},
		{name: "fail/too small", yaml: "server:\n  memory_limit: 1MiB\n", err: "server.memory_limit"},
		{name: "fail/store cache", yaml: "store:\n  cache_mb: 2\n", err: "store.cache_mb"},
		{name: "fail/ocsp cache", yaml: "ocsp:\n  cache_mb: -1\n", err: "ocsp.cache_mb"},
		{name: "fail/ldap cache", yaml: "ldap:\n  cache_mb: 0\n", err: "ldap.cache_mb"},
		{name: "fail/pprof without addr", yaml: "metrics:\n  pprof: true\n", err: "metrics.pprof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Server.MemoryLimit != tc.limit {
				t.Fatalf("memory_limit = %d, want %d", c.Server.MemoryLimit, tc.limit)
			}
		})
	}
}
