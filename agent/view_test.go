package agent

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
	"github.com/shoalmesh/shoal/scale/providers"
)

// meshCounts is one agent's View counters and events at a moment.
type meshCounts struct{ builds, decodes, changes, reads, events uint64 }

func countsOf(a *Agent) meshCounts {
	s := a.Mesh().Stats()
	// The event log keeps the newest 512: count every event ever added
	// (on a loaded machine the joins alone fill it, and a count of what
	// it holds stops moving).
	return meshCounts{s.ViewBuilds.Load(), s.LoadDecodes.Load(), s.LoadChanges.Load(), s.ViewReads.Load(), a.events.total()}
}

func (c meshCounts) sub(o meshCounts) meshCounts {
	return meshCounts{c.builds - o.builds, c.decodes - o.decodes, c.changes - o.changes, c.reads - o.reads, c.events - o.events}
}

// TestIdleMeshDecodesOncePerChange runs 30 agents in one process with every
// consumer of the View busy (the election's ticks, a dry-run scaler every
// 100 ms, a proxy on every agent with requests going through, the dashboard
// and the API, Prometheus scrapes): while the mesh is idle nothing is
// decoded and no View is built beyond membership events, however often the
// consumers read; one load change is decoded once by each agent.
func TestIdleMeshDecodesOncePerChange(t *testing.T) {
	const n = 30
	idle := metrics.Load{CPUPercent: 50, MemPercent: 40, Cores: 2}
	backends := map[int]*backend{}
	var agents []*Agent
	join := ""
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("127.31.0.%d", i+1)
		tags := map[string]string{"zone": "z" + strconv.Itoa(i%3)}
		if i%6 == 0 { // five members offer the web service
			b := &backend{name: fmt.Sprintf("v%d", i)}
			_, port := serveOn(t, ip, b)
			backends[i] = b
			tags["service"], tags["port"] = "web", strconv.Itoa(port)
		}
		a := startTestAgent(t, fmt.Sprintf("v%02d", i), ip, join, tags, func(c *Config) {
			c.ProxyListen, c.ProxyService = "127.0.0.1:0", "web"
			c.Scale.Provider = providers.DryRunName
			c.Scale.Interval = Duration(100 * time.Millisecond)
			c.Scale.Target = idle.CPUPercent // no action: the mesh sits on the target
			// A join's push-pull has 500 ms on the local profile: retry
			// on a loaded machine.
			c.RetryJoin, c.RetryMax, c.RetryInterval = true, 100, Duration(200*time.Millisecond)
		})
		a.Monitor().Override(&idle)
		agents = append(agents, a)
		// Each joins through the one before: no one agent takes every
		// join's push-pull.
		host, port := a.Mesh().LocalAddr()
		join = fmt.Sprintf("%s:%d", host, port)
	}
	sees := func(cpu map[string]float64) error {
		for _, a := range agents {
			v := a.Mesh().View()
			if v.Len() != n {
				return fmt.Errorf("%s sees %d members", a.cfg.NodeName, v.Len())
			}
			for _, m := range v.Members() {
				want := idle.CPUPercent
				if c, ok := cpu[m.Name]; ok {
					want = c
				}
				if m.Status != mesh.StatusAlive || m.Load == nil || m.Load.CPUPercent != want {
					return fmt.Errorf("%s sees %s %s with load %+v, want cpu %v", a.cfg.NodeName, m.Name, m.Status, m.Load, want)
				}
			}
		}
		return nil
	}
	pollFor(t, 90*time.Second, "every agent holds every member's idle load", func() error { return sees(nil) })

	// The consumers at work. Each round reads every agent's API, dashboard
	// and metrics and sends requests through three proxies.
	get := func(url string) {
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("GET %s: %v", url, err)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", url, resp.Status)
		}
	}
	consume := func(d time.Duration) (rounds int) {
		for end := time.Now().Add(d); rounds < 2 || time.Now().Before(end); rounds++ {
			for i, a := range agents {
				api := "http://" + a.HTTPAddr()
				for _, p := range []string{"/metrics", "/v1/dashboard", "/v1/members", "/v1/load", "/v1/pick?service=web"} {
					get(api + p)
				}
				if i%10 == 0 {
					get("http://" + a.ProxyAddr() + "/")
				}
			}
		}
		return rounds
	}

	before := make([]meshCounts, n)
	for i, a := range agents {
		before[i] = countsOf(a)
	}
	rounds := consume(3 * time.Second)
	var reads uint64
	for i, a := range agents {
		d := countsOf(a).sub(before[i])
		reads += d.reads
		if d.decodes != 0 {
			t.Errorf("%s decoded %d load states in an idle mesh", a.cfg.NodeName, d.decodes)
		}
		if d.builds > d.events {
			t.Errorf("%s built %d Views in an idle mesh with %d membership events", a.cfg.NodeName, d.builds, d.events)
		}
		// Every request above reads the View, and so does every election
		// tick and scale step: far more reads than rounds.
		if d.reads < uint64(5*rounds) {
			t.Errorf("%s: only %d View reads in %d rounds: are the consumers running?", a.cfg.NodeName, d.reads, rounds)
		}
	}
	hits := 0
	for _, b := range backends {
		b.mu.Lock()
		hits += b.hits
		b.mu.Unlock()
	}
	if hits < 3*rounds {
		t.Errorf("the proxies forwarded %d requests in %d rounds", hits, rounds)
	}
	t.Logf("idle, %d rounds: %d View reads across %d agents, no decode", rounds, reads, n)

	// One member's load changes: each agent decodes it once.
	changed := agents[7]
	for i, a := range agents {
		before[i] = countsOf(a)
	}
	busy := idle
	busy.CPUPercent = 60
	changed.Monitor().Override(&busy)
	pollFor(t, 60*time.Second, "every agent holds the new load", func() error {
		return sees(map[string]float64{changed.cfg.NodeName: busy.CPUPercent})
	})
	consume(time.Second)
	for i, a := range agents {
		d := countsOf(a).sub(before[i])
		if d.decodes != 1 {
			t.Errorf("%s decoded %d load states for one change", a.cfg.NodeName, d.decodes)
		}
		// On a loaded machine an older copy can look fresher after slow
		// hops and the table flips back once: a change too, but no decode.
		if d.builds < 1 || d.builds > d.changes+d.events {
			t.Errorf("%s built %d Views for %d load changes and %d membership events", a.cfg.NodeName, d.builds, d.changes, d.events)
		}
		if d.changes > 1 {
			t.Logf("%s: the table took %d changes for one (flip-backs)", a.cfg.NodeName, d.changes)
		}
	}
}

// A user tag with a key Shoal sets itself is refused at validation, from a
// flag or a config file alike: other nodes would read scale=... as a
// coordinator's scale action.
func TestReservedTagRefused(t *testing.T) {
	for _, k := range mesh.ReservedTags() {
		cfg := DefaultConfig()
		cfg.Tags = map[string]string{"zone": "eu", k: "1/1/0/1/9"}
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "reserved") || !strings.Contains(err.Error(), strconv.Quote(k)) {
			t.Errorf("tag %s=...: %v", k, err)
		}
		if _, _, err := ParseTag(k + "=x"); err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("--tag %s=x: %v", k, err)
		}
	}
	cfg := DefaultConfig()
	cfg.Bind = "127.0.0.1:7946" // the default 0.0.0.0 needs a gossip key
	cfg.Tags = map[string]string{"service": "web", "port": "8080"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("service and port are user tags: %v", err)
	}
}
