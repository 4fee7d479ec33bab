package loadshare

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsStdlibOnly keeps loadshare (and its sim and command) free of
// anything outside the standard library, as DESIGN.md requires: a path whose
// first element has no dot is standard; the only other imports allowed are
// loadshare's own packages.
func TestImportsStdlibOnly(t *testing.T) {
	const self = "github.com/shoalmesh/shoal/loadshare"
	n := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			n++
			first, _, _ := strings.Cut(p, "/")
			if strings.Contains(first, ".") && p != self && !strings.HasPrefix(p, self+"/") {
				t.Errorf("%s imports %q, which is not in the standard library", path, p)
			}
			if strings.HasPrefix(p, "net/http") && filepath.Dir(path) == "." && !strings.HasPrefix(filepath.Base(path), "proxy") {
				t.Errorf("%s imports %q; only the proxy may", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no imports found; is the test running in the package directory?")
	}
}
