package benchproc

import (
	"os"
	"testing"
)

func TestMemOfSelf(t *testing.T) {
	m := MemOf(os.Getpid())
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	if m.AnonKB <= 0 || m.FileKB <= 0 {
		t.Fatalf("MemOf(self) = %+v, want both resident figures", m)
	}
	if MemOf(-1) != (Mem{}) {
		t.Error("a missing process has memory")
	}
}

func TestFreePortsDistinct(t *testing.T) {
	ps, err := FreePorts(3)
	if err != nil || len(ps) != 3 || ps[0] == ps[1] || ps[1] == ps[2] || ps[0] == ps[2] {
		t.Fatalf("FreePorts(3) = %v, %v", ps, err)
	}
}
