package store

import (
	"context"
	"errors"
	"os"
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
