package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestOneLineKeepsTheWholeCauseChain(t *testing.T) {
	// The shape hashicorp/go-multierror gives serf's join error.
	multi := "could not join the mesh: none of [127.0.0.99:7946] answered after 1 attempts: 1 error occurred:\n\t* Failed to join 127.0.0.99:7946: dial tcp 127.0.0.99:7946: connect: connection refused\n\n"
	got := oneLine(multi, maxErrorLen)
	want := "could not join the mesh: none of [127.0.0.99:7946] answered after 1 attempts: Failed to join 127.0.0.99:7946: dial tcp 127.0.0.99:7946: connect: connection refused"
	if got != want {
		t.Fatalf("oneLine:\n got %q\nwant %q", got, want)
	}
	two := "join: 2 errors occurred:\n\t* a: refused\n\t* b: i/o timeout\n\n"
	if got := oneLine(two, maxErrorLen); got != "join: a: refused b: i/o timeout" {
		t.Fatalf("two causes: %q", got)
	}
}

func TestOneLineCutsAHugeValue(t *testing.T) {
	huge := fmt.Sprintf("--bind %q: not ip:port", strings.Repeat("x", 10_000))
	got := oneLine(huge, maxErrorLen)
	if len(got) > maxErrorLen+40 {
		t.Fatalf("printed %d bytes of a 10 KB value", len(got))
	}
	if !strings.Contains(got, "more bytes)") || !strings.HasPrefix(got, `--bind "xxx`) {
		t.Fatalf("cut error does not say it was cut or lost its start: %.80q", got)
	}
}

func TestRunPrintsOneLineAndUsageExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"shoal", "agent", "--leave-on-terminate", "false"}, 2, "--leave-on-terminate=false"},
		{[]string{"shoal", "members", "--timeout", "0s"}, 2, "--timeout 0s"},
		{[]string{"shoal", "members", "--timeout", "soon"}, 2, "soon"},
		{[]string{"shoal", "version", "extra"}, 2, "extra"},
		{[]string{"shoal", "agent", "--retry-interval", "5"}, 2, "a duration with a unit"},
		{[]string{"shoal", "version", "--format", "yaml"}, 2, "yaml"},
	}
	for _, tc := range cases {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args[1:], code, tc.code, errb.String())
		}
		if !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: stderr %q does not name %q", tc.args[1:], errb.String(), tc.want)
		}
		if n := strings.Count(strings.TrimRight(errb.String(), "\n"), "\n"); n > 0 {
			t.Errorf("%v: error took %d lines: %q", tc.args[1:], n+1, errb.String())
		}
	}
}

func TestVersionSaysGoAndTags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"shoal", "version"}, &out, &errb); code != 0 {
		t.Fatalf("version: exit %d: %s", code, errb.String())
	}
	for _, w := range []string{"shoal ", "commit ", "go go1.", "tags "} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("version output %q lacks %q", out.String(), w)
		}
	}
}
