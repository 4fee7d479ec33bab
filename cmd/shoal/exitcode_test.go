package main

import (
	"bytes"
	"strings"
	"testing"
)

// Exit code 2 for every way of calling a command wrongly: an unknown flag,
// a flag value that does not parse, and a value that parses but is not
// allowed. Nothing here reaches an agent (127.0.0.1:1 would refuse).
func TestEveryCommandExitsTwoOnUsage(t *testing.T) {
	const noAgent = "127.0.0.1:1"
	cases := []struct {
		args []string
		want string // named in the one line on stderr
	}{
		{[]string{"agent", "--bogus"}, "bogus"},
		{[]string{"agent", "--priority", "high"}, "high"},
		{[]string{"agent", "--profile", "fast", "--bind", "127.0.0.1:0"}, `"fast"`},
		{[]string{"agent", "--tag", "novalue", "--bind", "127.0.0.1:0"}, "novalue"},
		{[]string{"agent", "extra"}, "extra"},
		{[]string{"agent", "--bind", "0.0.0.0:0"}, "gossip bind 0.0.0.0:0 is not a loopback address and no gossip key is set"},
		{[]string{"dev", "--nodes", "0"}, "--nodes 0"},
		{[]string{"dev", "--nodes", "many"}, "many"},
		{[]string{"members", "--status", "gone", "--http-addr", noAgent}, `"gone"`},
		{[]string{"members", "--timeout", "soon"}, "soon"},
		{[]string{"info", "--format", "xml"}, `"xml"`},
		{[]string{"info", "extra", "--http-addr", noAgent}, "extra"},
		{[]string{"leader", "--wait", "-1s", "--http-addr", noAgent}, "--wait"},
		{[]string{"load", "--format", "yaml"}, `"yaml"`},
		{[]string{"top", "--interval", "1ms", "--http-addr", noAgent}, "--interval"},
		{[]string{"pick", "--n", "0", "--http-addr", noAgent}, "--n 0"},
		{[]string{"pick", "--strategy", "best", "--http-addr", noAgent}, `"best"`},
		{[]string{"scale", "history", "--limit", "-1", "--http-addr", noAgent}, "--limit -1"},
		{[]string{"scale", "frobnicate"}, "frobnicate"},
		{[]string{"join", "--http-addr", noAgent}, "join"},
		{[]string{"leave", "extra", "--http-addr", noAgent}, "extra"},
		{[]string{"force-leave", "--http-addr", noAgent}, "force-leave"},
		{[]string{"keygen", "extra"}, "extra"},
		{[]string{"keys", "install", "--http-addr", noAgent}, "keys install"},
		{[]string{"monitor", "--level", "loud", "--http-addr", noAgent}, "loud"},
		{[]string{"version", "--format", "xml"}, `"xml"`},
		{[]string{"frobnicate"}, "frobnicate"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.args[0]] = true
		var out, errb bytes.Buffer
		code := run(append([]string{"shoal"}, tc.args...), &out, &errb)
		msg := strings.TrimSpace(errb.String())
		if code != 2 || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) {
			t.Errorf("shoal %s: exit %d, stderr %q; want exit 2 and one line naming %q", strings.Join(tc.args, " "), code, msg, tc.want)
		}
	}
	for _, c := range newApp(nil, nil).Commands {
		if !seen[c.Name] {
			t.Errorf("no usage case for 'shoal %s'", c.Name)
		}
	}
}
