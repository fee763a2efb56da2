package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCalendarOverridesFile: ra.calendar.overrides_file is read and checked
// when the configuration loads, and a bad file is refused with the key, the
// file and the line.
func TestCalendarOverridesFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.csv")
	os.WriteFile(good, []byte("# 2028 notice\n2028-01-03,holiday\n2028-01-08,workday\n"), 0o600)
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("2028-01-03,holiday\n\n2028-02-30,holiday\n"), 0o600)

	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RA.Calendar.Builtin != "cn" || c.RA.Calendar.OverridesFile != "" {
		t.Errorf("calendar defaults = %+v", c.RA.Calendar)
	}
	for _, tc := range []struct{ name, yaml, wantErr string }{
		{"ok/override file", "ra:\n  calendar:\n    overrides_file: " + good + "\n", ""},
		{"ok/former builtin name", "ra:\n  calendar:\n    builtin: cn-2026\n", ""},
		{"ok/no builtin", "ra:\n  calendar:\n    builtin: none\n", ""},
		{"fail/bad line", "ra:\n  calendar:\n    overrides_file: " + bad + "\n", "ra.calendar.overrides_file: " + bad + " line 3: \"2028-02-30\" is not a YYYY-MM-DD date"},
		{"fail/missing file", "ra:\n  calendar:\n    overrides_file: " + filepath.Join(dir, "nope.csv") + "\n", "ra.calendar.overrides_file: reading calendar overrides"},
		{"fail/unknown builtin", "ra:\n  calendar:\n    builtin: us\n", "ra.calendar.builtin: \"us\" is not one of cn, cn-2026, none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
