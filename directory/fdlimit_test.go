package directory

import "testing"

func TestConnectionCap(t *testing.T) {
	tests := []struct {
		name                 string
		configured, listener int
		nofile               uint64
		want                 int
		lowered              bool
	}{
		{"ok/unknown limit keeps the setting", 4096, 2, 0, 4096, false},
		{"ok/large hard limit", 4096, 2, 1 << 20, 4096, false},
		{"ok/exactly fits", 6144, 2, 16384, 6144, false}, // (16384 - 4096) / 2 = 6144
		{"lowered/just above", 6145, 2, 16384, 6144, true},
		{"ok/4096 clients on two listeners in 12 288 descriptors", 4096, 2, 12288, 4096, false}, // (12288 - 3072) / 2 = 4608
		{"lowered/default soft limit", 4096, 2, 1024, 384, true},                                // (1024 - 256) / 2
		{"lowered/one listener", 4096, 1, 1024, 768, true},                                      // (1024 - 256) / 1
		{"ok/small cap fits a small limit", 100, 2, 1024, 100, false},
		{"lowered/tiny limit", 4096, 2, 256, 1, true},
		{"lowered/barely above the reserve", 4096, 2, 257, 1, true},
		{"lowered/a little above the reserve", 4096, 2, 260, 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, lowered := ConnectionCap(tc.configured, tc.listener, tc.nofile)
			if got != tc.want || lowered != tc.lowered {
				t.Errorf("ConnectionCap(%d, %d, %d) = %d, %v; want %d, %v", tc.configured, tc.listener, tc.nofile, got, lowered, tc.want, tc.lowered)
			}
		})
	}
}

func TestRaiseFileLimit(t *testing.T) {
	n, err := RaiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Skip("no RLIMIT_NOFILE on this system")
	}
	again, err := RaiseFileLimit()
	if err != nil || again != n {
		t.Errorf("second call = %d, %v; want %d", again, err, n)
	}
}
