// Package testbin is what tests that run the project's binaries share:
// build a command once per test binary, pick a free port, and a buffer a
// process writes while a test reads it. Tests only; nothing in a product
// binary imports it.
package testbin

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Shoal and Provider are the import paths of the agent and of the scale
// provider helper.
const (
	Shoal    = "github.com/shoalmesh/shoal/cmd/shoal"
	Provider = "github.com/shoalmesh/shoal/cmd/shoal-provider"
)

// BuildInto builds the Go package pkg (an import path) with the build tags
// given into dir, under the package's last path element, and returns the
// binary's path.
func BuildInto(dir, pkg string, tags ...string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	out, err := exec.Command("go", append(args, pkg)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Build builds pkg into the test's temporary directory (see BuildInto) and
// fails the test when it does not build.
func Build(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	bin, err := BuildInto(t.TempDir(), pkg, tags...)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Main is a TestMain that builds pkg once for every test of the package:
// *bin is set to the binary (or to $env when env names a variable that is
// set: a binary built elsewhere), the tests run, and the build directory is
// removed. It exits the process with the tests' code, or 1 when the build
// fails.
func Main(m *testing.M, bin *string, env, pkg string, tags ...string) {
	os.Exit(main(m, bin, env, pkg, tags))
}

func main(m *testing.M, bin *string, env, pkg string, tags []string) int {
	if env != "" {
		if p := os.Getenv(env); p != "" {
			*bin = p
			return m.Run()
		}
	}
	dir, err := os.MkdirTemp("", "shoal-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildInto(dir, pkg, tags...); err != nil {
		fmt.Fprintln(os.Stderr, "testbin:", err)
		return 1
	}
	return m.Run()
}

// FreePort asks the kernel for a free TCP port on ip.
func FreePort(t testing.TB, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// SyncBuffer is a bytes.Buffer that a running process writes (through
// os/exec's copying goroutine) while the test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
