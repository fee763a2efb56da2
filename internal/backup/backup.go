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
// store; signer.yaml records where the CA keys live (bootstrap.SignerRecordFile).
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

// Restore unpacks a backup into dataDir, which must not hold a store or any
// of the backup's files yet; open is called to open the new store once the
// files are in place.
//
// The whole backup is read and checked first (tar structure, names, the
// store stream present once, gzip's checksum at the end), the files in
// memory and the store stream spooled to a temporary file, so a truncated
// or corrupt backup is refused before anything is written to dataDir.
// Files keep their recorded modes whatever the umask.
func Restore(ctx context.Context, r io.Reader, dataDir string, open func() (*store.Store, error)) error {
	a, err := readArchive(r)
	if err != nil {
		return err
	}
	defer a.close()
	for _, f := range a.files {
		dst := filepath.Join(dataDir, f.name)
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("restoring: %s exists already; restore into a new data directory", dst)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restoring: %w", err)
		}
	}
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
	var written []string
	undo := func(err error) error {
		for i := len(written) - 1; i >= 0; i-- {
			os.Remove(written[i])
		}
		return err
	}
	for _, f := range a.files {
		dst := filepath.Join(dataDir, f.name)
		if err := writeFile(dst, f.body, f.mode); err != nil {
			st.Close()
			return undo(fmt.Errorf("restoring %s: %w", dst, err))
		}
		written = append(written, dst)
	}
	if _, err := a.spool.Seek(0, io.SeekStart); err != nil {
		st.Close()
		return undo(fmt.Errorf("reading spooled store stream: %w", err))
	}
	rerr := st.Restore(ctx, a.spool)
	if cerr := st.Close(); rerr == nil {
		rerr = cerr
	}
	if rerr != nil {
		// The stream was checked whole, so this is the disk or Badger: the
		// store may hold part of it, which the caller's data directory
		// (a fresh one) must not be started on.
		return undo(fmt.Errorf("restoring the store (it may be partly written; remove %s): %w", dataDir, rerr))
	}
	return syncTree(dataDir)
}

// maxFileEntry bounds a backed-up file held in memory: keys, certificates
// and signer.yaml are a few kilobytes; anything far larger is not ours.
const maxFileEntry = 1 << 20

type entry struct {
	name string
	mode os.FileMode
	body []byte
}

// archive is a backup read whole and checked.
type archive struct {
	files []entry
	spool *os.File
}

func (a *archive) close() {
	if a.spool != nil {
		a.spool.Close()
		os.Remove(a.spool.Name())
	}
}

func readArchive(r io.Reader) (_ *archive, err error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("reading backup: not a certcenter backup (gzip): %w", err)
	}
	a := &archive{}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	seen := map[string]bool{}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading backup: %w", err)
		}
		if seen[hdr.Name] {
			return nil, fmt.Errorf("reading backup: entry %q twice", hdr.Name)
		}
		seen[hdr.Name] = true
		if hdr.Name == StoreEntry {
			if a.spool, err = os.CreateTemp("", "certcenter-restore-*"); err != nil {
				return nil, fmt.Errorf("creating spool file: %w", err)
			}
			if _, err := io.Copy(a.spool, tr); err != nil {
				return nil, fmt.Errorf("reading backup: store stream: %w", err)
			}
			continue
		}
		name := filepath.FromSlash(hdr.Name)
		if !filepath.IsLocal(name) || hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("reading backup: unexpected entry %q", hdr.Name)
		}
		if hdr.Size > maxFileEntry {
			return nil, fmt.Errorf("reading backup: entry %q is %d bytes, more than a data directory file", hdr.Name, hdr.Size)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("reading backup: %s: %w", hdr.Name, err)
		}
		a.files = append(a.files, entry{name: name, mode: os.FileMode(hdr.Mode).Perm(), body: body})
	}
	if a.spool == nil {
		return nil, errors.New("reading backup: it holds no store stream")
	}
	// gzip checks its CRC only at the end of the stream, past tar's end
	// marker: read to it, so a corrupted backup is refused.
	if _, err := io.Copy(io.Discard, gz); err != nil {
		return nil, fmt.Errorf("reading backup: %w", err)
	}
	return a, nil
}

// writeFile creates path (never replacing one) with mode exactly, whatever
// the umask, and syncs it.
func writeFile(path string, body []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
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
