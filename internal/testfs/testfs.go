// Package testfs mounts small file systems for tests of what certcenter does
// when its data directory fills up or turns read-only: a tmpfs (full disk)
// and an ext4 image on a loop device mounted errors=remount-ro (the kernel
// turning a file system read-only under open files, which a plain
// "mount -o remount,ro" refuses while files are open for writing).
// Mounting needs root; CI and the project's machines run tests as root, and
// elsewhere the tests skip saying so.
package testfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of sizeMB MiB and returns its directory; it is
// unmounted (lazily, so a store left open does not block it) at cleanup.
func Tmpfs(t testing.TB, sizeMB int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	mkdir(t, dir)
	mount(t, "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", sizeMB), "tmpfs", dir)
	return dir
}

// Ext4 makes an ext4 image of sizeMB MiB, mounts it on a loop device with
// errors=remount-ro and returns its directory.
func Ext4(t testing.TB, sizeMB int) string {
	t.Helper()
	base := t.TempDir()
	img := filepath.Join(base, "ext4.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sizeMB) << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext4 (e2fsprogs) is needed: %v: %s", err, out)
	}
	dir := filepath.Join(base, "ext4")
	mkdir(t, dir)
	mount(t, "-o", "loop,errors=remount-ro", img, dir)
	return dir
}

// Ext4Error makes the kernel record an error on the ext4 file system mounted
// at dir, which with errors=remount-ro turns it read-only at once, open
// files and all (as a failing disk would).
func Ext4Error(t testing.TB, dir string) {
	t.Helper()
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", dir).Output()
	if err != nil {
		t.Fatalf("finding the device of %s: %v", dir, err)
	}
	dev := filepath.Base(strings.TrimSpace(string(out)))
	p := filepath.Join("/sys/fs/ext4", dev, "trigger_fs_error")
	if err := os.WriteFile(p, []byte("certcenter test\n"), 0o200); err != nil {
		t.Skipf("this kernel cannot inject an ext4 error (%s): %v", p, err)
	}
}

// Fill writes a file in dir until its file system has less than leave bytes
// free and returns the file's path (remove it to free the space).
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	p := filepath.Join(dir, "ballast")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		free := Free(t, dir)
		if free < leave {
			return p
		}
		n := min(int64(len(buf)), free-leave+4096)
		if _, err := f.Write(buf[:n]); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
}

// Free is the space in bytes left for unprivileged writes in dir's file system.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

func mkdir(t testing.TB, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func mount(t testing.TB, args ...string) {
	t.Helper()
	dir := args[len(args)-1]
	if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
		t.Skipf("mounting a test file system needs root (CI runs as root): %v: %s", err, out)
	}
	// Lazy: a store a test left open (a hung Badger) must not block the
	// unmount, nor the removal of the temporary directory after it.
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
}
