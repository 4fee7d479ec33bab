package agent

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	prometheus "github.com/shoalmesh/shoal/internal/prom"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// TestCollectorDeps builds the /metrics collector from fake deps, without an
// Agent, and checks what it exports for a known View, counters and sample:
// the named families of the text exposition /metrics serves (families
// sorted by name, samples by label values, as client_golang writes them).
func TestCollectorDeps(t *testing.T) {
	now := time.Now()
	ms := []mesh.Member{
		mesh.Member{Name: "n1", Status: mesh.StatusAlive}.WithLoad(metrics.Load{CPUPercent: 40, MemPercent: 20, Cores: 2}, now),
		{Name: "n2", Status: mesh.StatusFailed},
		{Name: "n3", Status: mesh.StatusAlive}, // no load yet: no per-member series
	}
	var st mesh.Stats
	st.PacketsIn.Add(7)
	st.PacketsOut.Add(5)
	view := mesh.NewView(1, ms)
	deps := collectorDeps{
		node:         func() string { return "n1" },
		profile:      "lan",
		view:         func() *mesh.View { return view },
		stats:        func() *mesh.Stats { return &st },
		latest:       func() (metrics.Load, bool) { return metrics.Load{CPUPercent: 12.5, Cores: 4}, true },
		sampleErrors: func() uint64 { return 3 },
	}
	check := func(deps collectorDeps, want string, names ...string) {
		t.Helper()
		reg := prometheus.NewRegistry()
		reg.MustRegister(newCollector(deps))
		var b bytes.Buffer
		if err := reg.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range strings.Split(b.String(), "\n") {
			name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(l, "# HELP "), "# TYPE "), " ")
			name, _, _ = strings.Cut(name, "{")
			if len(names) == 0 && l != "" || slices.Contains(names, name) {
				got = append(got, l)
			}
		}
		want = strings.TrimSpace(strings.ReplaceAll(want, "VERSION", Version))
		if g := strings.Join(got, "\n"); g != want {
			t.Errorf("got\n%s\nwant\n%s", g, want)
		}
	}

	check(deps, `
# HELP shoal_build_info Build and node information.
# TYPE shoal_build_info gauge
shoal_build_info{node="n1",profile="lan",version="VERSION"} 1
# HELP shoal_cpu_percent This node's smoothed CPU busy percent.
# TYPE shoal_cpu_percent gauge
shoal_cpu_percent 12.5
# HELP shoal_gossip_packets_total Packets through the gossip port (memberlist's and Shoal's).
# TYPE shoal_gossip_packets_total counter
shoal_gossip_packets_total{direction="in"} 7
shoal_gossip_packets_total{direction="out"} 5
# HELP shoal_member_cpu_percent Last gossiped CPU busy percent of each member.
# TYPE shoal_member_cpu_percent gauge
shoal_member_cpu_percent{member="n1"} 40
# HELP shoal_members Members this agent knows, by status.
# TYPE shoal_members gauge
shoal_members{status="alive"} 2
shoal_members{status="failed"} 1
shoal_members{status="leaving"} 0
shoal_members{status="left"} 0
# HELP shoal_sample_errors_total Load samples that failed.
# TYPE shoal_sample_errors_total counter
shoal_sample_errors_total 3
`, "shoal_build_info", "shoal_members", "shoal_member_cpu_percent", "shoal_cpu_percent", "shoal_gossip_packets_total", "shoal_sample_errors_total")

	// Without a mesh (a nil View) only the build information is exported.
	deps.view = func() *mesh.View { return nil }
	check(deps, `
# HELP shoal_build_info Build and node information.
# TYPE shoal_build_info gauge
shoal_build_info{node="n1",profile="lan",version="VERSION"} 1
`)
}
