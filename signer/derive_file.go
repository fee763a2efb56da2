package signer

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

var _ Deriver = (*File)(nil)

// secretSize is the length of a file master secret: HMAC-SHA256's block
// needs no more, and less than the output would weaken it.
const secretSize = 32

func (f *File) secretPath(name string) (string, error) {
	if !keyName.MatchString(name) {
		return "", fmt.Errorf("invalid secret name %q", name)
	}
	return filepath.Join(f.dir, name+".hmac"), nil
}

// GenerateSecret writes 32 random bytes to <name>.hmac (0600, O_EXCL).
func (f *File) GenerateSecret(_ context.Context, name string) error {
	p, err := f.secretPath(name)
	if err != nil {
		return err
	}
	var b [secretSize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("generating secret %s: %w", name, err)
	}
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("secret %s: %w", name, ErrKeyExists)
	}
	if err != nil {
		return fmt.Errorf("creating secret file %s: %w", p, err)
	}
	_, werr := fh.Write(b[:])
	if werr == nil {
		werr = fh.Sync()
	}
	if cerr := fh.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(p)
		return fmt.Errorf("writing secret file %s: %w", p, werr)
	}
	// The directory entry too: a secret a crash forgot would make every
	// token personalised since unrecoverable.
	d, err := os.Open(f.dir)
	if err != nil {
		return fmt.Errorf("syncing key directory %s: %w", f.dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing key directory %s: %w", f.dir, err)
	}
	return nil
}

// Derive reads the secret file (refusing one others may read, as key files
// are refused) and returns HMAC-SHA256 of data under it.
func (f *File) Derive(_ context.Context, name string, data []byte) ([]byte, error) {
	p, err := f.secretPath(name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secret %s: %w", name, ErrKeyNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading secret file %s: %w", p, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret file %s (mode %04o): %w", p, fi.Mode().Perm(), ErrKeyPermissions)
	}
	key, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("reading secret file %s: %w", p, err)
	}
	if len(key) != secretSize {
		return nil, fmt.Errorf("secret file %s holds %d bytes, not %d", p, len(key), secretSize)
	}
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil), nil
}
