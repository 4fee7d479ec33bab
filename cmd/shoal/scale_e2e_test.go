package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
)

// TestScaleCLI: one agent process with the dry-run provider; synthetic load
// through POST /v1/debug/load (local profile); the agent elects itself and
// applies one decision; 'shoal scale status' and 'shoal scale history' show
// it, as tables and as JSON.
func TestScaleCLI(t *testing.T) {
	p := startAgent(t, "sc1", "127.0.0.41", "", "--scale-provider", "dry-run", "--scale-opt", "initial=1",
		"--scale-interval", "100ms", "--scale-up-window", "300ms", "--scale-max", "3")
	ctx := context.Background()
	if err := client.New(p.http, "").SetDebugLoad(ctx, client.DebugLoad{CPUPercent: 95, Cores: 1}); err != nil {
		t.Fatal(err)
	}
	var hist []client.ScaleRecord
	poll(t, 15*time.Second, "an applied decision", func() (err error) {
		hist, err = cliJSON[[]client.ScaleRecord](p.http, "scale", "history")
		if err == nil && (len(hist) == 0 || hist[0].Outcome != "applied") {
			err = fmt.Errorf("history %+v", hist)
		}
		return err
	})
	if h := hist[0]; h.Holder != "sc1" || h.Term == 0 || h.Current != 1 || h.Desired != 2 || len(h.Reasons) == 0 {
		t.Fatalf("record %+v", h)
	}
	st, err := cliJSON[client.ScaleStatus](p.http, "scale", "status")
	if err != nil || !st.Enabled || st.Provider != "dry-run" || !st.Acting {
		t.Fatalf("status %+v %v", st, err)
	}
	code, out, stderr := runCLI(t, "scale", "status", "--http-addr", p.http)
	if code != 0 || !strings.Contains(out, "dry-run") || !strings.Contains(out, "last decision") || !strings.Contains(out, "applied 1→2 by sc1") {
		t.Fatalf("scale status: %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "scale", "history", "--http-addr", p.http)
	if code != 0 || !strings.Contains(out, "OUTCOME") || !strings.Contains(out, "applied") {
		t.Fatalf("scale history: %d\n%s", code, out)
	}
	if err := client.New(p.http, "").SetDebugLoad(ctx, client.DebugLoad{Clear: true}); err != nil {
		t.Fatal(err)
	}
}

func TestScaleBadInput(t *testing.T) {
	base := []string{"agent", "--profile", "local", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--bind", "127.0.0.42:0"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown provider", []string{"--scale-provider", "nimbus"}, `unknown provider "nimbus"`},
		{"min above max", []string{"--scale-provider", "dry-run", "--scale-min", "5", "--scale-max", "2"}, "scale-min 5 is above scale-max 2"},
		{"bad threshold", []string{"--scale-provider", "dry-run", "--scale-threshold", "above lots for 30s -> +1"}, `"lots"`},
		{"bad metric", []string{"--scale-provider", "dry-run", "--scale-metric", "cpu:p200"}, `"p200"`},
		{"bad option", []string{"--scale-provider", "dry-run", "--scale-opt", "novalue"}, `"novalue"`},
		{"webhook without secret", []string{"--scale-provider", "webhook", "--scale-resource", "http://127.0.0.1:9/"}, "option secret is empty"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append(base, c.args...)...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			last := lines[len(lines)-1]
			if code != 2 || !strings.HasPrefix(last, "shoal: ") || !strings.Contains(last, c.want) {
				t.Errorf("exit %d, last line %q; want 2 (usage) and a line naming %q", code, last, c.want)
			}
		})
	}
}
