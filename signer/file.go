package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
)

// File keeps each key as a PKCS#8 PEM file (mode 0600) named <name>.key in
// one directory. It is the demo default; production keys belong in an HSM.
type File struct {
	dir string

	mu    sync.Mutex
	cache map[string]crypto.Signer
}

// ErrKeyPermissions is returned for a key file that others than its owner
// may read or write: a CA key anyone on the host can copy is no longer the
// CA's alone (OpenSSH refuses such keys for the same reason).
var ErrKeyPermissions = errors.New("key file is accessible to others than its owner")

// NewFile returns a provider over dir, creating it (0700) if needed.
func NewFile(dir string) (*File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating key directory %s: %w", dir, err)
	}
	return &File{dir: dir, cache: map[string]crypto.Signer{}}, nil
}

var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func (f *File) path(name string) (string, error) {
	if !keyName.MatchString(name) {
		return "", fmt.Errorf("invalid key name %q", name)
	}
	return filepath.Join(f.dir, name+".key"), nil
}

// Generate creates a key and writes it with O_EXCL, so it never replaces one.
func (f *File) Generate(ctx context.Context, name string, alg Algorithm) (crypto.Signer, error) {
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	key, err := GenerateKey(alg)
	if err != nil {
		return nil, fmt.Errorf("generating key %s: %w", name, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key %s: %w", name, err)
	}
	fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("key %s: %w", name, ErrKeyExists)
	}
	if err != nil {
		return nil, fmt.Errorf("creating key file %s: %w", p, err)
	}
	werr := pem.Encode(fh, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if werr == nil {
		werr = fh.Sync()
	}
	if cerr := fh.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(p)
		return nil, fmt.Errorf("writing key file %s: %w", p, werr)
	}
	f.mu.Lock()
	f.cache[name] = key
	f.mu.Unlock()
	return key, nil
}

// Signer loads the key file (once) and returns it.
func (f *File) Signer(ctx context.Context, name string) (crypto.Signer, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.cache[name]; ok {
		return s, nil
	}
	p, err := f.path(name)
	if err != nil {
		return nil, err
	}
	s, err := LoadKeyFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key %s in %s: %w", name, f.dir, ErrKeyNotFound)
	}
	if err != nil {
		return nil, err
	}
	f.cache[name] = s
	return s, nil
}

// Healthy is always nil: a loaded file key cannot go away.
func (f *File) Healthy(context.Context) error { return nil }

// Close forgets the loaded keys.
func (f *File) Close() error {
	f.mu.Lock()
	f.cache = map[string]crypto.Signer{}
	f.mu.Unlock()
	return nil
}

// LoadKeyFile reads a PEM private key (PKCS#8, or the older SEC1/PKCS#1
// forms) and says which file is bad if it cannot. A file that group or
// others may access is refused (ErrKeyPermissions).
func LoadKeyFile(path string) (crypto.Signer, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", path, err)
	}
	defer fh.Close()
	// The mode of the file we read, not of the path before opening it.
	fi, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: %w; chmod 600 %s", path, perm, ErrKeyPermissions, path)
	}
	b, err := io.ReadAll(fh)
	if err != nil {
		return nil, fmt.Errorf("reading key file %s: %w", path, err)
	}
	s, err := ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return s, nil
}

// ParsePrivateKeyPEM parses the first private key block of a PEM document.
func ParsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key type %T cannot sign", key)
	}
	if _, err := AlgorithmOf(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// GenerateKey makes an in-memory key (subscriber keys for seeding and tests;
// CA keys go through a Provider).
func GenerateKey(alg Algorithm) (crypto.Signer, error) {
	if c := alg.Curve(); c != nil {
		return ecdsa.GenerateKey(c, rand.Reader)
	}
	if bits := alg.RSABits(); bits > 0 {
		return rsa.GenerateKey(rand.Reader, bits)
	}
	return nil, fmt.Errorf("unknown key algorithm %q", alg)
}
