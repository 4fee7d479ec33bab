// Package deptest pins what a package or a binary links, in the way of
// tailscale's tstest/deptest: it asks `go list -deps` (with the build tags
// and platform under test) for the transitive non-test dependencies and
// checks them against an allow list, a deny list and a want list. Checking
// packages, not files, catches an import that arrives through another
// package or a file added later.
//
// It needs the go command; tests that use it fail, not skip, without it.
package deptest

import (
	"bytes"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// Module is Shoal's module path.
const Module = "github.com/shoalmesh/shoal"

// DepChecker describes what one package, built one way, may link.
type DepChecker struct {
	// Pkg is an import path or a directory ("." is the test's package).
	Pkg string
	// Tags are the build tags, comma-separated ("" for none).
	Tags string
	// GOOS and GOARCH select the platform (default: the host's).
	GOOS, GOARCH string

	// StdOnly allows, besides the standard library and Pkg itself, only
	// the packages in Allow (exact import paths).
	StdOnly bool
	Allow   []string
	// BadDeps maps an import path to why it must not be linked; a key
	// also forbids every package under it ("k8s.io" forbids
	// "k8s.io/client-go/rest").
	BadDeps map[string]string
	// WantDeps must be linked: it keeps a test of a build tag from
	// passing only because the package no longer uses the library at all.
	WantDeps []string
}

// Dep is one dependency as go list reports it.
type Dep struct {
	ImportPath string
	Standard   bool
	Root       bool // one of the packages named, not a dependency
}

// List returns Pkg's transitive dependencies (Pkg included, marked Root)
// built with Tags for GOOS/GOARCH.
func (c DepChecker) List() ([]Dep, error) {
	pkg := c.Pkg
	if pkg == "" {
		pkg = "."
	}
	args := []string{"list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{.DepOnly}}"}
	if c.Tags != "" {
		args = append(args, "-tags", c.Tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(cmd.Environ(), "GOOS="+or(c.GOOS, runtime.GOOS), "GOARCH="+or(c.GOARCH, runtime.GOARCH), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, stderr.Bytes())
	}
	var deps []Dep
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("go list: unexpected line %q", line)
		}
		deps = append(deps, Dep{ImportPath: f[0], Standard: f[1] == "true", Root: f[2] == "false"})
	}
	return deps, nil
}

// Check fails t for every dependency the checker does not allow and every
// wanted one missing.
func (c DepChecker) Check(t testing.TB) {
	t.Helper()
	deps, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	what := or(c.Pkg, ".")
	if c.Tags != "" {
		what += " (-tags " + c.Tags + ")"
	}
	if c.GOOS != "" || c.GOARCH != "" {
		what += " for " + or(c.GOOS, runtime.GOOS) + "/" + or(c.GOARCH, runtime.GOARCH)
	}
	have := make(map[string]bool, len(deps))
	var order []string             // reasons in the order first met
	found := map[string][]string{} // reason -> offending packages
	for _, d := range deps {
		have[d.ImportPath] = true
		why, bad := c.bad(d.ImportPath)
		if !bad && c.StdOnly && !d.Standard && !d.Root && !slices.Contains(c.Allow, d.ImportPath) {
			why, bad = fmt.Sprintf("only the standard library and %v are allowed", c.Allow), true
		}
		if bad {
			if found[why] == nil {
				order = append(order, why)
			}
			found[why] = append(found[why], d.ImportPath)
		}
	}
	for _, why := range order {
		ps := found[why]
		more := ""
		if len(ps) > 8 {
			ps, more = ps[:8], fmt.Sprintf(" and %d more", len(ps)-8)
		}
		t.Errorf("%s links %d forbidden package(s) (%s): %s%s", what, len(found[why]), why, strings.Join(ps, ", "), more)
	}
	for _, w := range c.WantDeps {
		if !have[w] {
			t.Errorf("%s does not link %s, which it should (a build tag or import changed?); %d deps", what, w, len(deps))
		}
	}
}

func (c DepChecker) bad(path string) (string, bool) {
	for p := path; ; {
		if why, ok := c.BadDeps[p]; ok {
			return why, true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return "", false
		}
		p = p[:i]
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
