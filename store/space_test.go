package store

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certcenter/certcenter/internal/testfs"
)

// testFloor is the free-space floor of the file-system tests: Badger then
// runs 4 MiB memtables, so a 64 MiB tmpfs holds the floor and some data.
const testFloor = 16 << 20

func putBlob(s *Store, key string) error {
	return s.Update(context.Background(), func(tx *Tx) error {
		return tx.PutBlob("test", key, []byte("value of "+key))
	})
}

func getBlob(t *testing.T, s *Store, key string) {
	t.Helper()
	err := s.View(context.Background(), func(tx *Tx) error {
		v, err := tx.Blob("test", key)
		if err == nil && string(v) != "value of "+key {
			t.Errorf("blob %s = %q", key, v)
		}
		return err
	})
	if err != nil {
		t.Fatalf("reading blob %s: %v", key, err)
	}
}

// TestDiskFull fills the store's file system: writes are refused with
// ErrReadOnly and the reason, reads go on, nothing crashes; freed space lets
// writes resume; a start on the full disk opens read-only and serves reads.
func TestDiskFull(t *testing.T) {
	mnt := testfs.Tmpfs(t, 64)
	dir := filepath.Join(mnt, "db")
	s, err := Open(Options{Dir: dir, SyncWrites: true, MinFreeBytes: testFloor})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer func() { s.Close() }()
	if err := putBlob(s, "before"); err != nil {
		t.Fatalf("write with space: %v", err)
	}

	ballast := testfs.Fill(t, mnt, testFloor/2)
	err = putBlob(s, "full")
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "below floor 16 MB") {
		t.Fatalf("write on a full disk: got %v, want ErrReadOnly saying the floor", err)
	}
	if _, err := s.Next("serial"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("sequence on a full disk: got %v, want ErrReadOnly", err)
	}
	if err := s.Writable(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Writable on a full disk: %v", err)
	}
	getBlob(t, s, "before")

	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	if err := putBlob(s, "after"); err != nil {
		t.Fatalf("write after freeing space: %v", err)
	}
	if err := s.Writable(); err != nil {
		t.Fatalf("Writable after freeing space: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A start on a full disk: read-only, reads served, writes refused with
	// the reason and the need to restart.
	ballast = testfs.Fill(t, mnt, testFloor/2)
	s, err = Open(Options{Dir: dir, SyncWrites: true, MinFreeBytes: testFloor})
	if err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	getBlob(t, s, "before")
	getBlob(t, s, "after")
	err = putBlob(s, "ro")
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("write to a store opened read-only: got %v", err)
	}
	// Freed space does not make a read-only Badger writable; the store says so.
	os.Remove(ballast)
	if err := s.Writable(); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "restart") {
		t.Fatalf("Writable of a store opened read-only: %v", err)
	}
}

// TestFileSystemTurnsReadOnly makes the kernel turn the store's ext4 file
// system read-only under it (errors=remount-ro, as after a disk error): a
// write fails with ErrReadOnly instead of reporting success.
func TestFileSystemTurnsReadOnly(t *testing.T) {
	mnt := testfs.Ext4(t, 64)
	dir := filepath.Join(mnt, "db")
	s, err := Open(Options{Dir: dir, SyncWrites: true, MinFreeBytes: testFloor})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// Badger cannot flush its memtable to a read-only file system and
	// retries for ever, so Close would hang: the server bounds it
	// (server.Stop); here the store is left behind with the lazy unmount.
	if err := putBlob(s, "before"); err != nil {
		t.Fatalf("write: %v", err)
	}
	testfs.Ext4Error(t, mnt)
	err = putBlob(s, "after")
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("write to a file system turned read-only: got %v, want ErrReadOnly", err)
	}
	getBlob(t, s, "before")
	if err := s.Writable(); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Writable: %v", err)
	}
}

// TestMain lets a test re-run this binary as a process that writes to a
// store and dies without closing it (see crashWithLog).
func TestMain(m *testing.M) {
	if dir := os.Getenv("CERTCENTER_TEST_CRASH_DIR"); dir != "" {
		s, err := Open(Options{Dir: dir, SyncWrites: true, MinFreeBytes: testFloor})
		if err == nil {
			err = putBlob(s, "crashed")
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(2)
		}
		os.Exit(0) // no Close: the memtable stays in its write-ahead log
	}
	os.Exit(m.Run())
}

// crashWithLog leaves in dir a store whose last writes are only in
// Badger's write-ahead log, as a process killed mid-run does.
func crashWithLog(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CERTCENTER_TEST_CRASH_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("crashing writer: %v: %s", err, out)
	}
	if mem, _ := filepath.Glob(filepath.Join(dir, "*.mem")); len(mem) == 0 {
		t.Fatal("the crashed writer left no write-ahead log")
	}
}

// TestDiskFullAfterCrash starts on a full disk a store that a crash left
// with an unflushed write-ahead log, which Badger cannot open read-only:
// with room for its recovery it opens (reads served, writes refused); with
// less it refuses to start with the reason, instead of dying of SIGBUS.
func TestDiskFullAfterCrash(t *testing.T) {
	mnt := testfs.Tmpfs(t, 64)
	dir := filepath.Join(mnt, "db")
	crashWithLog(t, dir)

	ballast := testfs.Fill(t, mnt, 1<<20)
	_, err := Open(Options{Dir: dir, SyncWrites: true, MinFreeBytes: testFloor})
	if !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "write-ahead log of an interrupted run") {
		t.Fatalf("Open after a crash with no room to recover: got %v", err)
	}
	os.Remove(ballast)

	testfs.Fill(t, mnt, testFloor/2)
	s, err := Open(Options{Dir: dir, SyncWrites: true, MinFreeBytes: testFloor})
	if err != nil {
		t.Fatalf("Open after a crash with room to recover: %v", err)
	}
	defer s.Close()
	getBlob(t, s, "crashed")
	if err := putBlob(s, "more"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write below the floor after recovery: %v", err)
	}
}
