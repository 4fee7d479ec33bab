package scale

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// policyFiles are the files that make the policy, its history, fence and
// provider registry, and the simulation: they import only the standard
// library and Shoal's election (itself stdlib-only), so the policy runs in
// tests and simulations on a fake clock (DESIGN.md). Provider code with
// SDKs (client-go, aws-sdk-go-v2) lives in other files or scale/providers.
var policyFiles = []string{"doc.go", "policy.go", "metric.go", "history.go", "fence.go", "provider.go", "sim.go"}

func TestPolicyImportsStdlibOnly(t *testing.T) {
	fset := token.NewFileSet()
	for _, name := range policyFiles {
		f, err := parser.ParseFile(fset, filepath.Join(".", name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			if path == "github.com/shoalmesh/shoal/election" {
				continue
			}
			if strings.Contains(strings.SplitN(path, "/", 2)[0], ".") {
				t.Errorf("%s imports %q, which is not in the standard library", name, path)
			}
		}
	}
}
