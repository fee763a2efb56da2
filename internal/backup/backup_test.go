package backup_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/internal/backup"
	"github.com/certcenter/certcenter/internal/testenv"
	"github.com/certcenter/certcenter/store"
)

// source is a data directory with a CA, certificates (some revoked), staff,
// and the files a server keeps beside the store, in their usual modes.
func source(t *testing.T) *testenv.Env {
	t.Helper()
	e := testenv.New(t, testenv.Options{})
	for i, c := range e.IssueN(6) {
		if i%2 == 0 {
			e.Revoke(c.Serial, ca.ReasonSuperseded)
		}
	}
	e.Staff("adm", "admin")
	for name, mode := range map[string]os.FileMode{
		"tls/server.key":      0o600,
		"tls/server.crt":      0o644,
		"bootstrap/admin.key": 0o600,
		"bootstrap/admin.crt": 0o640,
		"bootstrap/ca.crt":    0o644,
		"signer.yaml":         0o644,
		"tls/left.tmp":        0o600, // an unfinished write: not backed up
	} {
		p := filepath.Join(e.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func write(t *testing.T, e *testenv.Env) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := backup.Write(e.Ctx, &buf, e.Store, e.Dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	return buf.Bytes()
}

func opener(dir string) func() (*store.Store, error) {
	return func() (*store.Store, error) { return store.Open(store.Options{Dir: filepath.Join(dir, testenv.DBDir)}) }
}

// files lists the regular files under dir (relative, with modes), leaving
// out the store's own directory.
func files(t *testing.T, dir string) map[string]os.FileMode {
	t.Helper()
	out := map[string]os.FileMode{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == testenv.DBDir && d.IsDir() {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			fi, _ := d.Info()
			out[filepath.ToSlash(rel)] = fi.Mode().Perm()
		}
		return nil
	})
	return out
}

// everything lists every path under dir, directories included.
func everything(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err == nil && p != dir {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestRoundTrip(t *testing.T) {
	src := source(t)
	want := src.Counts()
	wantFiles := files(t, src.Dir)
	delete(wantFiles, "tls/left.tmp")
	archive := write(t, src)

	// A restrictive umask must not change the restored modes.
	old := syscall.Umask(0o077)
	dst := t.TempDir()
	err := backup.Restore(context.Background(), bytes.NewReader(archive), dst, opener(dst))
	syscall.Umask(old)
	if err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got := files(t, dst)
	if len(got) != len(wantFiles) {
		t.Errorf("restored files %v, want %v", got, wantFiles)
	}
	for name, mode := range wantFiles {
		if got[name] != mode {
			t.Errorf("%s restored with mode %04o, want %04o", name, got[name], mode)
		}
		a, _ := os.ReadFile(filepath.Join(src.Dir, name))
		b, _ := os.ReadFile(filepath.Join(dst, name))
		if !bytes.Equal(a, b) {
			t.Errorf("%s restored with other content", name)
		}
	}

	// The restored directory is a working CA: the same CA key signs, the
	// same certificates with the same status.
	r := testenv.New(t, testenv.Options{Dir: dst})
	if n := r.Counts(); n != want {
		t.Errorf("restored counts %+v, want %+v", n, want)
	}
	if !r.Issuer.Cert.Equal(src.Issuer.Cert) {
		t.Error("the restored store holds another CA")
	}
	src.Store.View(src.Ctx, func(tx *store.Tx) error {
		return tx.EachCert(func(c *store.Cert) error {
			if g := r.Cert(c.Serial); g.Status != c.Status || !bytes.Equal(g.DER, c.DER) {
				t.Errorf("certificate %s restored as %s", c.SerialHex(), g.Status)
			}
			return nil
		})
	})
	c := r.Issue(testenv.IssueOptions{})
	if err := c.X509.CheckSignatureFrom(src.Issuer.Cert); err != nil {
		t.Errorf("the restored key does not sign as the CA: %v", err)
	}
}

// rewrite re-packs a backup's entries through edit (which may drop, change
// or add entries) into a new backup.
func rewrite(t *testing.T, archive []byte, edit func(tw *tar.Writer, hdr *tar.Header, body []byte)) []byte {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out bytes.Buffer
	gw := gzip.NewWriter(&out)
	tw := tar.NewWriter(gw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		edit(tw, hdr, body)
	}
	tw.Close()
	gw.Close()
	return out.Bytes()
}

func put(tw *tar.Writer, hdr *tar.Header, body []byte) {
	hdr.Size = int64(len(body))
	tw.WriteHeader(hdr)
	tw.Write(body)
}

func TestRestoreRefusesBadArchives(t *testing.T) {
	src := source(t)
	archive := write(t, src)
	flip := func(at int) []byte {
		b := slices.Clone(archive)
		b[at] ^= 0xff
		return b
	}
	for _, tc := range []struct {
		name string
		in   []byte
		msg  string
	}{
		{"fail/empty input", nil, "not a certcenter backup"},
		{"fail/not gzip", []byte("PK\x03\x04 a zip file"), "not a certcenter backup"},
		{"fail/truncated in the middle", archive[:len(archive)/2], "reading backup"},
		{"fail/truncated before the gzip trailer", archive[:len(archive)-4], "reading backup"},
		{"fail/one byte missing", archive[:len(archive)-1], "reading backup"},
		{"fail/corrupt byte in the middle", flip(len(archive) / 2), "reading backup"},
		{"fail/corrupt gzip checksum", flip(len(archive) - 6), "reading backup"},
		{"fail/gzip of something else", gzipOf(t, []byte("not a tar archive, just text that goes on and on and on ..........................................................................................................................................................................................................................................................................................................................................................................................................................................................................")), "reading backup"},
		{"fail/no store stream", rewrite(t, archive, func(tw *tar.Writer, h *tar.Header, b []byte) {
			if h.Name != backup.StoreEntry {
				put(tw, h, b)
			}
		}), "holds no store stream"},
		{"fail/a path out of the data directory", rewrite(t, archive, func(tw *tar.Writer, h *tar.Header, b []byte) {
			if h.Name == "signer.yaml" {
				h.Name = "../escaped"
			}
			put(tw, h, b)
		}), `unexpected entry "../escaped"`},
		{"fail/an absolute path", rewrite(t, archive, func(tw *tar.Writer, h *tar.Header, b []byte) {
			if h.Name == "signer.yaml" {
				h.Name = "/etc/escaped"
			}
			put(tw, h, b)
		}), `unexpected entry "/etc/escaped"`},
		{"fail/a symbolic link", rewrite(t, archive, func(tw *tar.Writer, h *tar.Header, b []byte) {
			if h.Name == backup.StoreEntry {
				tw.WriteHeader(&tar.Header{Name: "keys/link.key", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"})
			}
			put(tw, h, b)
		}), `unexpected entry "keys/link.key"`},
		{"fail/a file twice", rewrite(t, archive, func(tw *tar.Writer, h *tar.Header, b []byte) {
			if h.Name == backup.StoreEntry {
				put(tw, &tar.Header{Name: "signer.yaml", Mode: 0o644}, []byte("other"))
			}
			put(tw, h, b)
		}), `"signer.yaml" twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			err := backup.Restore(context.Background(), bytes.NewReader(tc.in), dst, opener(dst))
			if err == nil {
				t.Fatal("Restore accepted a bad archive")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
			if left := everything(t, dst); len(left) != 0 {
				t.Errorf("a refused restore wrote %v", left)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(dst), "escaped")); err == nil {
				t.Error("an entry escaped the data directory")
			}
		})
	}
}

func TestRestoreRefusesAnOccupiedDirectory(t *testing.T) {
	src := source(t)
	archive := write(t, src)
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dst string)
		msg     string
	}{
		{"fail/the store holds data", func(t *testing.T, dst string) {
			st, err := opener(dst)()
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Update(context.Background(), func(tx *store.Tx) error { return tx.PutBlob("x", "y", []byte("z")) }); err != nil {
				t.Fatal(err)
			}
			st.Close()
		}, "not empty"},
		{"fail/a file of the backup exists", func(t *testing.T, dst string) {
			os.MkdirAll(filepath.Join(dst, "tls"), 0o700)
			os.WriteFile(filepath.Join(dst, "tls", "server.crt"), []byte("mine"), 0o644)
		}, "tls/server.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			tc.prepare(t, dst)
			// Opening Badger rotates its own files; what must not change is
			// everything outside the store, and the store's content.
			before := files(t, dst)
			err := restoreClosed(t, archive, dst)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Restore: %v, want an error with %q", err, tc.msg)
			}
			if after := files(t, dst); !maps.Equal(after, before) {
				t.Errorf("a refused restore changed the directory:\nbefore %v\nafter  %v", before, after)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "tls", "server.crt")); len(b) > 0 && string(b) != "mine" {
				t.Errorf("a refused restore replaced an existing file: %q", b)
			}
			st, err := opener(dst)()
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if n := counts(t, st); n != (store.Counts{}) {
				t.Errorf("a refused restore wrote into the store: %+v", n)
			}
		})
	}
}

func counts(t *testing.T, st *store.Store) store.Counts {
	t.Helper()
	var n store.Counts
	if err := st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		n, err = tx.Counts()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func restoreClosed(t *testing.T, archive []byte, dst string) error {
	t.Helper()
	return backup.Restore(context.Background(), bytes.NewReader(archive), dst, opener(dst))
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}
