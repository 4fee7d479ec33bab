package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestRequireOrSkip runs a test that lacks a dependency in a child process,
// with and without CI=true: it skips outside CI and fails, saying why, in CI.
func TestRequireOrSkip(t *testing.T) {
	if os.Getenv("TESTENV_CHILD") == "1" {
		RequireOrSkip(t, "frobnicator not installed")
		t.Fatal("RequireOrSkip returned")
	}
	for _, c := range []struct {
		ci      string
		wantErr bool
		want    string
	}{
		{"", false, "--- SKIP: TestRequireOrSkip"},
		{"false", false, "--- SKIP: TestRequireOrSkip"},
		{"true", true, "--- FAIL: TestRequireOrSkip"},
		{"1", true, "--- FAIL: TestRequireOrSkip"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRequireOrSkip$", "-test.v")
		cmd.Env = append(os.Environ(), "TESTENV_CHILD=1", "CI="+c.ci)
		out, err := cmd.CombinedOutput()
		if (err != nil) != c.wantErr {
			t.Errorf("CI=%q: exit error %v, want error %v\n%s", c.ci, err, c.wantErr, out)
		}
		if !strings.Contains(string(out), c.want) || !strings.Contains(string(out), "frobnicator not installed") {
			t.Errorf("CI=%q: output lacks %q and the reason:\n%s", c.ci, c.want, out)
		}
	}
}
