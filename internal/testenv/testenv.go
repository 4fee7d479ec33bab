// Package testenv says what a test does when the machine lacks something it
// needs (a program, root, a Docker engine, built binaries): on a developer's
// machine it skips and says why; under CI=true it fails, so that a green CI
// run means every test ran.
package testenv

import (
	"os"
	"strings"
	"testing"
)

// CI reports whether the tests run in CI: the CI environment variable is
// "true" or "1" (as CI runners set it). Under CI nothing skips for a missing
// dependency.
func CI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v == "true" || v == "1"
}

// RequireOrSkip ends t because something it needs is missing; why names it
// and how to get it. Outside CI the test skips; under CI=true it fails.
func RequireOrSkip(t testing.TB, why string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s (CI=true: a missing dependency fails the test instead of skipping it)", why)
	}
	t.Skip(why)
}
