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

// TestOnlyProxyImportsHTTP keeps the weights and pickers free of net/http:
// only the proxy's files may import it. (What the packages link is pinned
// by TestDeps.)
func TestOnlyProxyImportsHTTP(t *testing.T) {
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
