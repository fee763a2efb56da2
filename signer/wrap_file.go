package signer

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// FileWrapper is the file signer's KeyWrapper: AES-256-GCM under a 32-byte
// key in <dir>/<name>.kek (mode 0600), made with O_EXCL on first use. Like
// the file signer's CA keys it is for demos; production keeps the KEK in an
// HSM (pkcs11.Provider.KeyWrapper).
type FileWrapper struct {
	path, name string

	mu   sync.Mutex
	aead cipher.AEAD
}

// NewFileWrapper returns the wrapper over the KEK called name in dir; the
// file is read or made on first use.
func NewFileWrapper(dir, name string) (*FileWrapper, error) {
	if !keyName.MatchString(name) {
		return nil, fmt.Errorf("invalid key-encryption key name %q", name)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory %s: %w", dir, err)
	}
	return &FileWrapper{path: dir + string(os.PathSeparator) + name + ".kek", name: name}, nil
}

// Mechanism names the KEK.
func (w *FileWrapper) Mechanism() string { return "file:aes-256-gcm:" + w.name }

// kek loads or creates the KEK once.
func (w *FileWrapper) kek() (cipher.AEAD, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.aead != nil {
		return w.aead, nil
	}
	key, err := w.read()
	if errors.Is(err, fs.ErrNotExist) {
		key, err = w.create()
	}
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key %s: %w", w.path, err)
	}
	w.aead, err = cipher.NewGCM(block)
	return w.aead, err
}

func (w *FileWrapper) read() ([]byte, error) {
	fh, err := os.Open(w.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading key-encryption key %s: %w", w.path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key %s has mode %04o: %w; chmod 600 %s", w.path, perm, ErrKeyPermissions, w.path)
	}
	key, err := io.ReadAll(io.LimitReader(fh, 64))
	if err != nil {
		return nil, fmt.Errorf("reading key-encryption key %s: %w", w.path, err)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("key-encryption key %s holds %d bytes, not 32", w.path, len(key))
	}
	return key, nil
}

// create writes a new KEK with O_EXCL: two processes racing on first use
// end with one file, and the loser reads the winner's.
func (w *FileWrapper) create() ([]byte, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	fh, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return w.read()
	}
	if err != nil {
		return nil, fmt.Errorf("creating key-encryption key %s: %w", w.path, err)
	}
	_, werr := fh.Write(key)
	if werr == nil {
		werr = fh.Sync()
	}
	if cerr := fh.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(w.path)
		return nil, fmt.Errorf("writing key-encryption key %s: %w", w.path, werr)
	}
	return key, nil
}

// Wrap seals secret: a random 12-byte nonce followed by the GCM ciphertext.
func (w *FileWrapper) Wrap(_ context.Context, secret, aad []byte) ([]byte, error) {
	a, err := w.kek()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(secret)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return a.Seal(nonce, nonce, secret, aad), nil
}

// Unwrap opens what Wrap sealed with the same aad.
func (w *FileWrapper) Unwrap(_ context.Context, wrapped, aad []byte) ([]byte, error) {
	a, err := w.kek()
	if err != nil {
		return nil, err
	}
	if len(wrapped) < a.NonceSize()+a.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrUnwrap, len(wrapped))
	}
	out, err := a.Open(nil, wrapped[:a.NonceSize()], wrapped[a.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w under %s: %v", ErrUnwrap, w.Mechanism(), err)
	}
	return out, nil
}

// KeyWrapper returns the KEK called name beside the file signer's keys.
func (f *File) KeyWrapper(_ context.Context, name string) (KeyWrapper, error) {
	return NewFileWrapper(f.dir, name)
}

var _ Wrapping = (*File)(nil)
