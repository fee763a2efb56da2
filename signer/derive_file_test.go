package signer

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFileDerive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f, err := NewFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Derive(ctx, "tok", []byte("x")); !errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("derive before generate: %v, want ErrKeyNotFound", err)
	}
	if err := f.GenerateSecret(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if err := f.GenerateSecret(ctx, "tok"); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("second generate: %v, want ErrKeyExists", err)
	}
	p := filepath.Join(dir, "tok.hmac")
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v, mode %v", err, fi.Mode())
	}
	a, err := f.Derive(ctx, "tok", []byte("serial-1"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := os.ReadFile(p)
	m := hmac.New(sha256.New, key)
	m.Write([]byte("serial-1"))
	if !hmac.Equal(a, m.Sum(nil)) {
		t.Fatal("Derive is not HMAC-SHA256 under the secret")
	}
	b, _ := f.Derive(ctx, "tok", []byte("serial-2"))
	if hmac.Equal(a, b) {
		t.Fatal("two serials derive the same value")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Derive(ctx, "tok", []byte("x")); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("world-readable secret: %v, want ErrKeyPermissions", err)
	}
	if err := f.GenerateSecret(ctx, "../escape"); err == nil {
		t.Fatal("a secret name with a path was accepted")
	}
}

// BenchmarkFileDerive is one SO PIN derivation with the file signer (it
// reads the 0600 key file each time, so a replaced file takes effect).
func BenchmarkFileDerive(b *testing.B) {
	ctx := context.Background()
	f, err := NewFile(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	if err := f.GenerateSecret(ctx, "tok"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.Derive(ctx, "tok", []byte("certcenter/token/so-pin\x00serial")); err != nil {
			b.Fatal(err)
		}
	}
}
