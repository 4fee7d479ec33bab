package procs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// RepoRoot finds the repository root, the directory of the go.mod of module
// github.com/shoalmesh/shoal, upwards from the working directory (tools/ has
// a go.mod of its own, which it passes over).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/shoalmesh/shoal\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the github.com/shoalmesh/shoal module (run from the repository)")
		}
		dir = parent
	}
}

// CacheDir is where built binaries are kept between runs: .cache/bin under
// the repository root (git ignores /.cache/).
func CacheDir(root string) string { return filepath.Join(root, ".cache", "bin") }

// Run runs argv in dir with env added to the runner's environment and
// returns an error with its combined output when it fails.
func Run(ctx context.Context, dir string, env []string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	return nil
}

// BuildOnce makes the file out with build unless it is there already (a
// regular file, not empty): build writes the path it is given, out+".tmp",
// which is then renamed to out, so that a failed or interrupted build
// leaves no out behind. It reports whether out was reused.
func BuildOnce(out string, build func(tmp string) error) (reused bool, err error) {
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		return true, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return false, err
	}
	tmp := out + ".tmp"
	if err := build(tmp); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	return false, os.Rename(tmp, out)
}

// BuildShoal builds ./cmd/shoal of the working tree at root into out (its
// directory created), in the root module: its go.mod, not tools/'s, picks
// the versions. The go command's build cache makes a rebuild of an
// unchanged tree quick.
func BuildShoal(ctx context.Context, root, out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return Run(ctx, root, nil, "go", "build", "-o", out, "./cmd/shoal")
}

// BuildShoalAt builds ./cmd/shoal as committed at rev (git archive into a
// scratch directory under .cache, so that work in progress in the working
// tree does not leak in) into CacheDir(root)/shoal-HASH, or reuses the
// binary built earlier for the same commit. It returns the binary and the
// commit's 12-digit hash.
func BuildShoalAt(ctx context.Context, root, rev string, logf func(string, ...any)) (bin, hash string, err error) {
	b, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", rev+"^{commit}").Output()
	if err != nil {
		return "", "", fmt.Errorf("git rev-parse %s: %w", rev, err)
	}
	hash = strings.TrimSpace(string(b))
	bin = filepath.Join(CacheDir(root), "shoal-"+hash)
	reused, err := BuildOnce(bin, func(tmp string) error {
		dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), "shoal-src-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		logf("building shoal at %s (git archive %s) into %s", hash, rev, bin)
		if err := gitArchive(ctx, root, hash, dir); err != nil {
			return err
		}
		if err := Run(ctx, dir, []string{"GOWORK=off", "GOFLAGS=-mod=readonly"}, "go", "build", "-o", tmp, "./cmd/shoal"); err != nil {
			return fmt.Errorf("at %s: %w", hash, err)
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	if reused {
		logf("reusing %s", bin)
	}
	return bin, hash, nil
}

// gitArchive extracts the tree of commit in the repository at root into dir.
func gitArchive(ctx context.Context, root, commit, dir string) error {
	arch := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", commit)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := arch.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return err
	}
	var stderr strings.Builder
	arch.Stderr = &stderr
	if err := arch.Run(); err != nil {
		_ = untar.Wait()
		return fmt.Errorf("git archive %s: %v %s", commit, err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("untar git archive: %w", err)
	}
	return nil
}
