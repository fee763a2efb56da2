package docs

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/certcenter/certcenter/"

// The layers ARCHITECTURE.md's "Packages" section draws, as import rules.
var (
	// features never import each other; they meet through store and ca.
	features = []string{"ocsp", "crl", "directory", "ra", "admin", "token", "desk", "replica"}
	// importedOnlyBy: the wiring and bootstrap are at the top, below cmd.
	importedOnlyBy = map[string][]string{
		"server":    {"cmd/certcenter"},
		"bootstrap": {"server", "cmd/certcenter"},
	}
)

type goPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
}

// listPackages runs `go list -json ./...` in the repository: the build's own
// view of what imports what (test files excluded: an integration test may
// start the whole server).
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command:", err)
	}
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list: %v", err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, module)
		var own []string
		for _, imp := range p.Imports {
			if rest, ok := strings.CutPrefix(imp, module); ok {
				own = append(own, rest)
			} else {
				own = append(own, imp)
			}
		}
		p.Imports = own
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	return pkgs
}

// inside reports whether path is pkg or one of its sub-packages.
func inside(path, pkg string) bool {
	return path == pkg || strings.HasPrefix(path, pkg+"/")
}

func TestImportsPointOneWay(t *testing.T) {
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			for _, f := range features {
				if inside(imp, f) && slices.ContainsFunc(features, func(g string) bool { return inside(p.ImportPath, g) && g != f }) {
					t.Errorf("feature %s imports feature %s: features meet through store and ca", p.ImportPath, imp)
				}
			}
			for top, allowed := range importedOnlyBy {
				if inside(imp, top) && !inside(p.ImportPath, top) && !slices.Contains(allowed, p.ImportPath) {
					t.Errorf("%s imports %s: only %s may", p.ImportPath, imp, strings.Join(allowed, ", "))
				}
			}
		}
	}
}

// server is wiring only: it opens, constructs, listens and stops. Making
// certificates (subjects, issuance requests) and knowing staff roles are
// bootstrap's.
func TestServerIsWiringOnly(t *testing.T) {
	for _, p := range listPackages(t) {
		if p.ImportPath != "server" {
			continue
		}
		if slices.Contains(p.Imports, "crypto/x509/pkix") {
			t.Error("server imports crypto/x509/pkix: it builds certificate subjects")
		}
		for _, f := range p.GoFiles {
			b, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, word := range []string{"IssueRequest", "httpapi.Role", "GenerateKey"} {
				if bytes.Contains(b, []byte(word)) {
					t.Errorf("server/%s uses %s: issuing certificates and staff roles belong to bootstrap", f, word)
				}
			}
		}
		return
	}
	t.Fatal("go list did not list server")
}
