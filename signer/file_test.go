package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verify checks that s made a signature over a SHA-256 digest that its
// public key verifies, and that a changed digest does not.
func verify(t *testing.T, s crypto.Signer) {
	t.Helper()
	digest := sha256.Sum256([]byte("certcenter"))
	sig, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	other := sha256.Sum256([]byte("something else"))
	switch pub := s.Public().(type) {
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest[:], sig) {
			t.Fatal("ECDSA signature does not verify")
		}
		if ecdsa.VerifyASN1(pub, other[:], sig) {
			t.Fatal("ECDSA signature verifies another digest")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
			t.Fatalf("RSA signature does not verify: %v", err)
		}
		if rsa.VerifyPKCS1v15(pub, crypto.SHA256, other[:], sig) == nil {
			t.Fatal("RSA signature verifies another digest")
		}
	default:
		t.Fatalf("unexpected key type %T", pub)
	}
}

func TestFileGenerateSaveLoad(t *testing.T) {
	ctx := context.Background()
	for _, alg := range Algorithms {
		t.Run("ok/"+string(alg), func(t *testing.T) {
			if testing.Short() && alg == RSA4096 {
				t.Skip("RSA 4096 generation is slow")
			}
			dir := t.TempDir()
			f, err := NewFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			gen, err := f.Generate(ctx, "ca-key", alg)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			if got, err := AlgorithmOf(gen.Public()); err != nil || got != alg {
				t.Fatalf("generated key is %s (%v), want %s", got, err, alg)
			}
			p := filepath.Join(dir, "ca-key.key")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatalf("key file not written: %v", err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
			}
			b, _ := os.ReadFile(p)
			if blk, _ := pem.Decode(b); blk == nil || blk.Type != "PRIVATE KEY" {
				t.Fatalf("key file is not a PKCS#8 PEM:\n%s", b)
			}
			// A new provider has nothing cached: this reads the file.
			f2, err := NewFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			loaded, err := f2.Signer(ctx, "ca-key")
			if err != nil {
				t.Fatalf("Signer after reopening: %v", err)
			}
			if !loaded.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(gen.Public()) {
				t.Fatal("loaded key differs from the generated one")
			}
			verify(t, loaded)
			if _, err := f2.Generate(ctx, "ca-key", alg); !errors.Is(err, ErrKeyExists) {
				t.Fatalf("Generate over an existing key: %v, want ErrKeyExists", err)
			}
			if after, _ := os.ReadFile(p); string(after) != string(b) {
				t.Fatal("a refused Generate changed the key file")
			}
		})
	}
}

// writeKey writes a key file of PEM type typ with der, or raw bytes.
func writeKey(t *testing.T, dir, name string, mode os.FileMode, body []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name+".key"), body, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, name+".key"), mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func TestFileLoad(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ec)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(ec)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384der, _ := x509.MarshalPKCS8PrivateKey(p384)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	p521der, _ := x509.MarshalPKCS8PrivateKey(p521)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	eddr, _ := x509.MarshalPKCS8PrivateKey(edKey)
	certDER := []byte{0x30, 0x03, 0x02, 0x01, 0x01}

	for _, tc := range []struct {
		name string
		body []byte
		mode os.FileMode
		want Algorithm
		err  []string // substrings of the error; nil: loads
		is   error
	}{
		{name: "ok/PKCS#8 EC", body: pemOf("PRIVATE KEY", pkcs8), want: ECDSAP256},
		{name: "ok/SEC1 EC PRIVATE KEY", body: pemOf("EC PRIVATE KEY", sec1), want: ECDSAP256},
		{name: "ok/PKCS#1 RSA PRIVATE KEY", body: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), want: RSA2048},
		{name: "ok/P-384", body: pemOf("PRIVATE KEY", p384der), want: ECDSAP384},
		{name: "ok/owner read-only 0400", body: pemOf("PRIVATE KEY", pkcs8), mode: 0o400, want: ECDSAP256},
		{name: "fail/missing file", body: nil, err: []string{"key k", "key not found"}, is: ErrKeyNotFound},
		{name: "fail/empty file", body: []byte{}, err: []string{"k.key", "no PEM block"}},
		{name: "fail/not PEM", body: []byte("hello, I am not a key\n"), err: []string{"k.key", "no PEM block"}},
		{name: "fail/PEM of a certificate", body: pemOf("CERTIFICATE", certDER), err: []string{"k.key", `"CERTIFICATE" is not a private key`}},
		{name: "fail/corrupt PKCS#8 body", body: pemOf("PRIVATE KEY", pkcs8[:len(pkcs8)-7]), err: []string{"k.key", "parsing private key"}},
		{name: "fail/corrupt SEC1 body", body: pemOf("EC PRIVATE KEY", []byte("garbage")), err: []string{"k.key", "parsing private key"}},
		{name: "fail/truncated PEM", body: pemOf("PRIVATE KEY", pkcs8)[:40], err: []string{"k.key", "no PEM block"}},
		{name: "fail/unsupported curve P-521", body: pemOf("PRIVATE KEY", p521der), err: []string{"k.key", "unsupported curve P-521"}},
		{name: "fail/RSA 1024", body: pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small)), err: []string{"k.key", "unsupported RSA size 1024"}},
		{name: "fail/ed25519", body: pemOf("PRIVATE KEY", eddr), err: []string{"k.key", "unsupported key type"}},
		{name: "fail/readable by group and others 0644", body: pemOf("PRIVATE KEY", pkcs8), mode: 0o644, err: []string{"k.key", "0644", "chmod 600"}, is: ErrKeyPermissions},
		{name: "fail/readable by group 0640", body: pemOf("PRIVATE KEY", pkcs8), mode: 0o640, err: []string{"k.key", "0640"}, is: ErrKeyPermissions},
		{name: "fail/writable by others 0602", body: pemOf("PRIVATE KEY", pkcs8), mode: 0o602, err: []string{"k.key", "0602"}, is: ErrKeyPermissions},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.body != nil {
				mode := tc.mode
				if mode == 0 {
					mode = 0o600
				}
				writeKey(t, dir, "k", mode, tc.body)
			}
			f, err := NewFile(dir)
			if err != nil {
				t.Fatal(err)
			}
			s, err := f.Signer(context.Background(), "k")
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Signer: %v", err)
				}
				if got, _ := AlgorithmOf(s.Public()); got != tc.want {
					t.Fatalf("loaded %s, want %s", got, tc.want)
				}
				verify(t, s)
				return
			}
			if err == nil {
				t.Fatalf("Signer loaded a bad key file (%T)", s.Public())
			}
			for _, sub := range tc.err {
				if !strings.Contains(err.Error(), sub) {
					t.Errorf("error %q does not say %q", err, sub)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			// A refused key is not cached: fixing the file fixes the next call.
			if tc.body != nil && tc.is == ErrKeyPermissions {
				if err := os.Chmod(filepath.Join(dir, "k.key"), 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Signer(context.Background(), "k"); err != nil {
					t.Fatalf("after chmod 600: %v", err)
				}
			}
		})
	}
}

func TestFileKeyNames(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFile(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "keys")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("key directory: %v, mode %v; want 0700", err, fi)
	}
	for _, name := range []string{"", "../escape", "a/b", ".hidden", "-dash", strings.Repeat("a", 65), "sp ace"} {
		t.Run("fail/"+name, func(t *testing.T) {
			if _, err := f.Generate(context.Background(), name, ECDSAP256); err == nil || !strings.Contains(err.Error(), "invalid key name") {
				t.Errorf("Generate(%q): %v, want invalid key name", name, err)
			}
			if _, err := f.Signer(context.Background(), name); err == nil || !strings.Contains(err.Error(), "invalid key name") {
				t.Errorf("Signer(%q): %v, want invalid key name", name, err)
			}
		})
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("bad names wrote files: %v", ents)
	}
	if _, err := f.Generate(context.Background(), "k", "dsa-1024"); err == nil || !strings.Contains(err.Error(), `unknown key algorithm "dsa-1024"`) {
		t.Errorf("Generate with an unknown algorithm: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keys", "k.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Generate left a key file: %v", err)
	}
}

// TestFileCloseForgets: after Close the provider reads the file again, so
// a key replaced on disk (restored from a backup) is the one used.
func TestFileCloseForgets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, _ := NewFile(dir)
	first, err := f.Generate(ctx, "k", ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "k.key"))
	if s, err := f.Signer(ctx, "k"); err != nil || s != first {
		t.Fatalf("before Close the cached key is served: %v", err)
	}
	f.Close()
	if _, err := f.Signer(ctx, "k"); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("after Close with the file gone: %v, want ErrKeyNotFound", err)
	}
}
