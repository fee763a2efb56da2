package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The "Where to change what" section names the files a change touches; a
// file that was moved or renamed would send a newcomer to the wrong place.
func TestWhereToChangeNamesFilesThatExist(t *testing.T) {
	body, err := os.ReadFile("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(body), "\n## Where to change what\n")
	if !ok {
		t.Fatal(`docs/ARCHITECTURE.md has no "## Where to change what" section`)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	for _, h := range []string{"### Add a CRL shard rule", "### Add an LDAP attribute", "### Add an approval level"} {
		if !strings.Contains(sec, h) {
			t.Errorf("Where to change what lacks %q", h)
		}
	}
	paths := regexp.MustCompile("`([a-z0-9_./]+\\.(?:go|yaml|md))`").FindAllStringSubmatch(sec, -1)
	if len(paths) < 5 {
		t.Fatalf("Where to change what names %d files", len(paths))
	}
	for _, m := range paths {
		if _, err := os.Stat(filepath.Join("..", m[1])); err != nil {
			t.Errorf("Where to change what names %s: %v", m[1], err)
		}
	}
}
