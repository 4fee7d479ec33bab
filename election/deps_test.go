package election

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsStdlibOnly keeps the package free of anything but the standard
// library (DESIGN.md: election knows nothing of serf, libp2p or the rest).
func TestImportsStdlibOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imports := range [][]string{pkg.Imports, pkg.TestImports} {
		for _, path := range imports {
			p, err := build.Import(path, ".", build.FindOnly)
			if err != nil {
				t.Fatalf("import %q: %v", path, err)
			}
			if !p.Goroot || strings.Contains(strings.SplitN(path, "/", 2)[0], ".") {
				t.Errorf("election imports %q, which is not in the standard library", path)
			}
		}
	}
}
