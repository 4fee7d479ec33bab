package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
)

// A second agent under a name already in use exits 1 saying who holds it,
// whether it joins the holder or another member; the holder keeps running
// and taking joins. (Before: serf's conflict resolution made both quit
// gossip while their processes ran on.)
func TestDuplicateNodeNameFailsLoudly(t *testing.T) {
	a := startAgent(t, "dup", "127.0.0.51", "")
	dupJoin := func(via string) (int, string) {
		code, _, stderr := runCLI(t, "agent", "--node", "dup", "--bind", "127.0.0.52:0", "--profile", "local",
			"--http-addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--join", via, "--retry-join", "--retry-max", "3")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		return code, lines[len(lines)-1]
	}
	want := `node name "dup" is already used by ` + a.gossip
	if code, last := dupJoin(a.gossip); code != 1 || !strings.Contains(last, want) {
		t.Errorf("duplicate joining the holder: exit %d, last line %q; want exit 1 and %q", code, last, want)
	}
	// The holder still takes joins and sees the newcomer.
	b := startAgent(t, "other", "127.0.0.53", a.gossip)
	poll(t, 10*time.Second, "dup and other alive on both", func() error {
		for _, p := range []*proc{a, b} {
			ms, err := cliJSON[[]client.Member](p.http, "members")
			if err != nil {
				return err
			}
			alive := 0
			for _, m := range ms {
				if m.Status == "alive" {
					alive++
				}
			}
			if len(ms) != 2 || alive != 2 {
				return fmt.Errorf("%s: %+v", p.http, ms)
			}
		}
		return nil
	})
	// Joining through another member finds the name taken too.
	if code, last := dupJoin(b.gossip); code != 1 || !strings.Contains(last, want) {
		t.Errorf("duplicate joining through another member: exit %d, last line %q; want exit 1 and %q", code, last, want)
	}
	if in, err := cliJSON[client.Info](a.http, "info"); err != nil {
		t.Errorf("the holder stopped answering: %v", err)
	} else if in.Node != "dup" {
		t.Errorf("holder info: %+v", in)
	}
}
