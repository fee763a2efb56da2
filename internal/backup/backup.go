// Package backup writes and restores a certcenter backup: a gzip'd tar with
// the data directory's files (file-signer keys, TLS and bootstrap
// credentials) followed by the store as Badger's backup stream. Everything a
// restored server needs is in one file.
package backup

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/certcenter/certcenter/store"
)

// StoreEntry is the tar entry holding the Badger backup stream.
const StoreEntry = "store.badger"

// dirs are the data directory's folders (and files) copied besides the
// store; signer.yaml records where the CA keys live (server.SignerRecordFile).
var dirs = []string{"keys", "tls", "bootstrap", "signer.yaml"}

// Write streams a backup of st and the files under dataDir to w.
func Write(ctx context.Context, w io.Writer, st *store.Store, dataDir string) error {
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	for _, d := range dirs {
		root := filepath.Join(dataDir, d)
		err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			if err != nil || e.IsDir() || strings.HasSuffix(p, ".tmp") {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dataDir, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: int64(info.Mode().Perm()), Size: int64(len(b)), ModTime: info.ModTime()}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		})
		if err != nil {
			return fmt.Errorf("backing up %s: %w", root, err)
		}
	}
	// The stream's size is not known before it is written, and tar needs it
	// in the header: spool it to a temp file first.
	tmp, err := os.CreateTemp("", "certcenter-backup-*")
	if err != nil {
		return fmt.Errorf("creating spool file: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := st.Backup(ctx, tmp); err != nil {
		return err
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: StoreEntry, Mode: 0o600, Size: size, ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, tmp); err != nil {
		return fmt.Errorf("writing store stream: %w", err)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// Restore unpacks a backup into dataDir, which must not hold a store yet;
// open is called to open the new store once the files are in place.
func Restore(ctx context.Context, r io.Reader, dataDir string, open func() (*store.Store, error)) (err error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading backup: not a certcenter backup (gzip): %w", err)
	}
	tr := tar.NewReader(gz)
	sawStore := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading backup: %w", err)
		}
		if hdr.Name == StoreEntry {
			st, err := open()
			if err != nil {
				return err
			}
			if empty, err := st.Empty(ctx); err != nil || !empty {
				st.Close()
				if err == nil {
					err = fmt.Errorf("the store in %s is not empty; restore into a new data directory", dataDir)
				}
				return err
			}
			rerr := st.Restore(ctx, tr)
			if cerr := st.Close(); rerr == nil {
				rerr = cerr
			}
			if rerr != nil {
				return rerr
			}
			sawStore = true
			continue
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) || hdr.Typeflag != tar.TypeReg {
			return fmt.Errorf("reading backup: unexpected entry %q", hdr.Name)
		}
		dst := filepath.Join(dataDir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, os.FileMode(hdr.Mode).Perm())
		if err != nil {
			return fmt.Errorf("restoring %s: %w", dst, err)
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("restoring %s: %w", dst, err)
		}
	}
	if !sawStore {
		return errors.New("reading backup: it holds no store stream")
	}
	// gzip checks its CRC only at the end of the stream, past tar's end
	// marker: read to it, so a corrupted backup is refused.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return fmt.Errorf("reading backup: %w", err)
	}
	return syncTree(dataDir)
}

// syncTree fsyncs every directory under root, so the restored files' names
// are durable as well as their contents.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		d, err := os.Open(p)
		if err != nil {
			return err
		}
		defer d.Close()
		return d.Sync()
	})
}
