package procs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuildOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bin", "thing")
	builds := 0
	build := func(tmp string) error {
		builds++
		if tmp != out+".tmp" {
			t.Errorf("build writes %s, want %s.tmp", tmp, out)
		}
		return os.WriteFile(tmp, []byte("binary"), 0o755)
	}
	for i, wantReused := range []bool{false, true} {
		reused, err := BuildOnce(out, build)
		if err != nil {
			t.Fatal(err)
		}
		if reused != wantReused || builds != 1 {
			t.Errorf("call %d: reused %v after %d builds, want %v after 1", i+1, reused, builds, wantReused)
		}
	}
	if b, err := os.ReadFile(out); err != nil || string(b) != "binary" {
		t.Errorf("out: %q, %v", b, err)
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("%s.tmp left behind: %v", out, err)
	}
}

// A failed build leaves nothing that a later call would reuse.
func TestBuildOnceFails(t *testing.T) {
	out := filepath.Join(t.TempDir(), "thing")
	boom := errors.New("boom")
	_, err := BuildOnce(out, func(tmp string) error {
		_ = os.WriteFile(tmp, []byte("half"), 0o755)
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("BuildOnce: %v, want boom", err)
	}
	for _, p := range []string{out, out + ".tmp"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after a failed build: %v", p, err)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The tests run in tools/internal/procs: the root is three up, past
	// tools/go.mod.
	wd, _ := os.Getwd()
	if want := filepath.Dir(filepath.Dir(filepath.Dir(wd))); root != want {
		t.Errorf("RepoRoot = %s, want %s", root, want)
	}
	t.Chdir(t.TempDir())
	if _, err := RepoRoot(); err == nil {
		t.Error("RepoRoot outside the repository: no error")
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if err := Run(context.Background(), dir, []string{"PROCS_RUN=1"}, "/bin/sh", "-c", `test "$PROCS_RUN" = 1 && test "$(pwd)" = "`+dir+`"`); err != nil {
		t.Errorf("Run: %v", err)
	}
	err := Run(context.Background(), dir, nil, "/bin/sh", "-c", "echo went wrong >&2; exit 1")
	if err == nil || !strings.Contains(err.Error(), "/bin/sh -c echo went wrong") || !strings.Contains(err.Error(), "\nwent wrong") {
		t.Errorf("Run of a failing command: %v", err)
	}
}
