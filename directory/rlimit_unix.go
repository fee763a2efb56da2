//go:build unix

package directory

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the soft RLIMIT_NOFILE to the hard one (the Go
// runtime does this on Linux too, but says nothing) and returns the limit
// in force.
func RaiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if r.Cur < r.Max {
		want := r
		want.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(r.Cur), fmt.Errorf("raising RLIMIT_NOFILE from %d to %d: %w", r.Cur, r.Max, err)
		}
		r = want
	}
	return uint64(r.Cur), nil
}
