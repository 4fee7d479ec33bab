package agent

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/scale/providers"
)

// componentGoroutines returns the stacks of the running goroutines that are
// in one of the components' loops (by function name), by goroutine header,
// leaving out those in skip.
func componentGoroutines(skip map[string]bool) map[string]string {
	fns := []string{
		"agent.(*electionRunner).run",
		"agent.(*scaleRunner).run",
		"agent.(*dashboard).sampleHistory",
		"agent.(*dashboard).watchElection",
		"agent.(*Agent).startProxy.func",
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, " [")
		if skip[head] {
			continue
		}
		for _, f := range fns {
			if strings.Contains(g, f) {
				out[head] = f
			}
		}
	}
	return out
}

// TestStopWaitsForComponents: the goroutines the election runner, the
// scaler, the proxy and the dashboard start run under the agent's Start and
// have ended when Stop returns (Stop waits for them, not only tells them).
func TestStopWaitsForComponents(t *testing.T) {
	before := map[string]bool{}
	for h := range componentGoroutines(nil) {
		before[h] = true
	}
	a := startTestAgent(t, "stop-1", "127.0.0.241", "", nil, func(c *Config) {
		c.ProxyListen, c.ProxyService = "127.0.0.1:0", "web"
		c.Scale.Provider = providers.DryRunName
	})
	// Start has started them; on a busy machine a goroutine may not have
	// reached its loop yet when Start returns.
	poll.Until(t, 10*time.Second, "all five component loops running after Start", func() error {
		running := map[string]bool{}
		for _, f := range componentGoroutines(before) {
			running[f] = true
		}
		if len(running) != 5 {
			return fmt.Errorf("running: %v", running)
		}
		return nil
	})
	a.Stop(false)
	if left := componentGoroutines(before); len(left) > 0 {
		t.Errorf("still running when Stop returned: %v", left)
	}
}
