package store

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// ErrReadOnly is returned by Update (and Next) while the store refuses
// writes: the disk is below the free-space floor, the file system turned
// read-only, or the store was opened read-only. Reads go on. The wrapped
// message says why.
var ErrReadOnly = errors.New("store read-only")

// Why a write gate and not Badger's own errors: Badger writes its
// write-ahead log (memtable .mem files) and value log through mmap'd sparse
// files. On a full (or emergency read-only) file system the page fault of
// the next write is a SIGBUS, not an error: the process dies in writeEntry,
// and again at every start while it replays and flushes. So the store checks
// the file system itself before every write and on a timer, and keeps a
// floor of free space that covers everything Badger may still write without
// asking: the unwritten rest of the current memtable's log, the flush of that
// memtable to a level-0 table, the rest of the current value-log file and a
// compaction. sizesFor derives Badger's file sizes from the floor so that
// this holds by construction.

// sizesFor returns the memtable and value-log file sizes for a floor: a
// quarter of it each, at most Badger's defaults (64 MiB memtables) and at
// least 1 MiB.
func sizesFor(floor int64) (memTable, valueLogFile int64) {
	q := floor / 4
	memTable = min(max(q, 1<<20), 64<<20)
	valueLogFile = min(max(q, 1<<20), 64<<20)
	return memTable, valueLogFile
}

// diskState is one reading of the file system under the store.
type diskState struct {
	free     int64
	readOnly bool
}

func statDisk(dir string) (diskState, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return diskState{}, fmt.Errorf("checking free space in %s: %w", dir, err)
	}
	return diskState{
		free:     int64(st.Bavail) * int64(st.Bsize),
		readOnly: st.Flags&stRdOnly != 0,
	}, nil
}

// stRdOnly is ST_RDONLY in statfs(2)'s f_flags: set both for a read-only
// mount and for a file system the kernel turned read-only after an error
// (ext4 errors=remount-ro, which keeps the mount "rw" in /proc/mounts).
const stRdOnly = 0x1

// probeWrite writes, syncs and removes a small file in dir. It catches a file
// system that fails writes without saying so in statfs (I/O errors).
func probeWrite(dir string) error {
	// A name of its own per probe: the timer's probe and a failed
	// Update's run at once, and with one shared name the loser's Remove
	// found nothing and closed the store to writes.
	f, err := os.CreateTemp(dir, "certcenter.probe-*")
	if err != nil {
		return fmt.Errorf("data directory not writable: %w", err)
	}
	_, werr := f.Write([]byte("probe\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return fmt.Errorf("data directory not writable: %w", err)
	}
	return nil
}

// checkSpace reads the file system and opens or closes the write gate.
// probe adds a test write (on the timer, not before every Update).
func (s *Store) checkSpace(probe bool) error {
	if s.dir == "" {
		return nil
	}
	if s.openedReadOnly != "" {
		// Badger opened read-only cannot start writing: that needs a restart.
		return s.setGate(s.openedReadOnly + "; writes resume only after a restart")
	}
	d, err := statDisk(s.dir)
	reason := ""
	switch {
	case err != nil:
		reason = err.Error()
	case d.readOnly:
		reason = "data directory's file system is read-only"
	case d.free < s.floor:
		reason = fmt.Sprintf("disk free %d MB below floor %d MB", d.free>>20, s.floor>>20)
	default:
		// The last probe's verdict stands until the next probe: a file
		// system that fails writes says so only when written to.
		if probe {
			msg := ""
			if err := probeWrite(s.dir); err != nil {
				msg = err.Error()
			}
			s.probeFailed.Store(&msg)
		}
		if p := s.probeFailed.Load(); p != nil {
			reason = *p
		}
	}
	return s.setGate(reason)
}

// setGate records why writes are refused ("" lets them through again) and
// returns the refusal, logging each change once.
func (s *Store) setGate(reason string) error {
	old := s.gate.Swap(&reason)
	if old == nil || *old != reason {
		switch {
		case reason != "":
			s.log.Error("store refuses writes", "component", "store", "reason", reason, "dir", s.dir)
		case old != nil && *old != "":
			s.log.Info("store accepts writes again", "component", "store", "dir", s.dir)
		}
	}
	if reason == "" {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrReadOnly, reason)
}

// Writable returns nil when the store accepts writes, or an error wrapping
// ErrReadOnly that says why not (for /readyz). It reads the file system
// now, so a freed disk shows at once.
func (s *Store) Writable() error {
	if s.dir == "" {
		return nil
	}
	return s.checkSpace(false)
}

// beforeWrite is the gate in front of every write.
func (s *Store) beforeWrite() error {
	if s.dir == "" {
		return nil
	}
	// statfs costs about a microsecond; an fsynced commit costs a
	// millisecond. Checking every write keeps the window between a full
	// disk and a refused write as short as it can be.
	return s.checkSpace(false)
}

// spaceInterval is how often Run reads the file system between writes.
const spaceInterval = 2 * time.Second
