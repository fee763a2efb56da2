package signer

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFileWrapper(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w, err := NewFileWrapper(dir, "escrow-kek")
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("a PKCS#8 private key, say")
	aad := []byte("serial 01")
	sealed, err := w.Wrap(ctx, secret, aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, secret) {
		t.Fatal("the wrapped key holds the secret in clear")
	}
	fi, err := os.Stat(filepath.Join(dir, "escrow-kek.kek"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("KEK file mode %v size %d, want 0600 and 32 bytes", fi.Mode().Perm(), fi.Size())
	}
	// A second wrapper over the same file (a restart) opens it.
	w2, _ := NewFileWrapper(dir, "escrow-kek")
	got, err := w2.Unwrap(ctx, sealed, aad)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("Unwrap after restart = %q, %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct{ blob, aad []byte }{
		"fail/tampered":  {tampered, aad},
		"fail/other-aad": {sealed, []byte("serial 02")},
		"fail/short":     {sealed[:10], aad},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := w.Unwrap(ctx, tc.blob, tc.aad); !errors.Is(err, ErrUnwrap) {
				t.Fatalf("Unwrap = %v, want ErrUnwrap", err)
			}
		})
	}
	// Another KEK does not open it.
	other, _ := NewFileWrapper(t.TempDir(), "escrow-kek")
	if _, err := other.Unwrap(ctx, sealed, aad); !errors.Is(err, ErrUnwrap) {
		t.Fatalf("another KEK: %v, want ErrUnwrap", err)
	}
	// A KEK others may read is refused.
	if err := os.Chmod(filepath.Join(dir, "escrow-kek.kek"), 0o644); err != nil {
		t.Fatal(err)
	}
	w3, _ := NewFileWrapper(dir, "escrow-kek")
	if _, err := w3.Unwrap(ctx, sealed, aad); !errors.Is(err, ErrKeyPermissions) {
		t.Fatalf("0644 KEK: %v, want ErrKeyPermissions", err)
	}
	if _, err := NewFileWrapper(dir, "../x"); err == nil {
		t.Fatal("a KEK name with a path was accepted")
	}
}

// FuzzFileUnwrap: a wrapped key read from the store is outside input to
// Unwrap; nothing but the genuine blob with its aad opens.
func FuzzFileUnwrap(f *testing.F) {
	w, err := NewFileWrapper(f.TempDir(), "kek")
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	genuine, err := w.Wrap(ctx, []byte("secret"), []byte("aad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(genuine, []byte("aad"))
	f.Add(genuine[:12], []byte("aad"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, blob, aad []byte) {
		got, err := w.Unwrap(ctx, blob, aad)
		if err == nil && (!bytes.Equal(blob, genuine) || string(aad) != "aad" || string(got) != "secret") {
			t.Fatalf("Unwrap(%x, %q) opened to %q", blob, aad, got)
		}
		if err != nil && !errors.Is(err, ErrUnwrap) {
			t.Fatalf("Unwrap error %v is not ErrUnwrap", err)
		}
	})
}
