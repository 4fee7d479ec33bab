//go:build containers

package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/fence"
)

const (
	nodes = 5
	image = "shoal:test"
	// detectBound is what the test takes as the lan profile's failure
	// detection (memberlist's LAN timings: 1 s probes, a suspicion of at
	// least 4 s for five members, more when few confirm): no view may stay
	// below four alive members longer than this during a rolling restart.
	detectBound = 10 * time.Second
	// healBound is the most a healed partition may take to converge. serf
	// retries failed members every 30 s (its LAN reconnect interval), so a
	// heal takes up to about that plus a push-pull.
	healBound = 75 * time.Second
)

// timings are the figures the test prints (docs/benchmarks.md).
type timings struct {
	converge, convergeAfterLast     time.Duration
	firstElect                      time.Duration
	detect, failover, rejoin        time.Duration
	partitionElect, minorityStopped time.Duration
	minorityNoQuorum                time.Duration
	heal                            time.Duration
	restarts                        []time.Duration
	worstBelow4                     time.Duration
	worstBelow4Node                 string
	maxActGap                       time.Duration
	actions, refused                int
	total                           time.Duration
}

// TestMeshInContainers is the container tier: five agents from the
// FROM-scratch image on a network of their own, checked from the outside.
func TestMeshInContainers(t *testing.T) {
	requireDocker(t)
	requireIsolationTools(t)
	began := time.Now()
	sweepStale(t)
	root := repoRoot(t)

	bin := buildBinary(t, root)
	buildStart := time.Now()
	c := &cluster{t: t, bin: bin, image: image, token: randomHex(16)}
	id := fmt.Sprintf("%d-%s", os.Getpid(), randomHex(3))
	c.network = "shoal-ct-" + id
	t.Cleanup(func() { c.cleanup(t, os.Getenv("SHOAL_CT_KEEP_IMAGE") != "") })

	cmd := []string{filepath.Join(root, "deploy", "build-image"), image}
	out, err := runEnv(3*time.Minute, []string{"SHOAL_BINARY=" + bin}, cmd...)
	if err != nil {
		t.Fatalf("deploy/build-image: %v", err)
	}
	t.Logf("%s in %v", out, time.Since(buildStart).Round(100*time.Millisecond))
	if u := mustDocker(t, "image", "inspect", "-f", "{{.Config.User}}", image); u != "65532:65532" {
		t.Fatalf("image user %q, want 65532:65532", u)
	}
	// From here on the image is named by its ID: a concurrent run that
	// retags or removes shoal:test does not change what this one runs.
	c.image = mustDocker(t, "image", "inspect", "-f", "{{.ID}}", image)

	key, err := run(10*time.Second, bin, "keygen")
	if err != nil {
		t.Fatal(err)
	}
	c.key = key
	c.createNetwork(id)
	for i := range nodes {
		c.nodes = append(c.nodes, &node{
			name:      fmt.Sprintf("shoal-%d", i+1),
			container: fmt.Sprintf("shoal-ct-%s-%d", id, i+1),
			volume:    fmt.Sprintf("shoal-ct-%s-data%d", id, i+1),
			ip:        fmt.Sprintf("%s.%d", c.subnet, 11+i),
			port:      freePort(t),
			priority:  nodes - i, // shoal-1 ranks highest
		})
	}
	// shoal-1 gets no join list: the others join it (and each other), and
	// when it restarts only its snapshot can bring it back.
	var all []string
	for _, n := range c.nodes {
		all = append(all, n.ip)
	}
	for _, n := range c.nodes[1:] {
		n.join = all
	}
	var tm timings

	step := func(name string, f func(t *testing.T)) {
		if !t.Run(name, f) {
			t.FailNow()
		}
	}

	step("1-converge", func(t *testing.T) {
		c.t = t
		start := time.Now()
		for _, n := range c.nodes {
			c.run(n)
		}
		tm.convergeAfterLast = c.allSee(c.nodes, c.nodes, true, 60*time.Second, "all five see all five alive with load")
		tm.converge = time.Since(start)
		// The node name defaulted to the container's hostname, and the
		// image's gopsutil read real figures from /proc and /sys.
		var info client.Info
		if err := c.cli(c.nodes[2], &info, "info"); err != nil {
			t.Fatal(err)
		}
		if info.Node != "shoal-3" || info.Load == nil || info.Load.Cores <= 0 || info.Load.MemAvailable == 0 || !info.Encrypted {
			t.Fatalf("shoal-3's info: node %q, load %+v, encrypted %v", info.Node, info.Load, info.Encrypted)
		}
		t.Logf("five containers converged (everyone sees five alive with load) %v after the first start, %v after the last; shoal-3 reads %.1f%% CPU of %.0f cores, %.1f%% memory",
			tm.converge.Round(10*time.Millisecond), tm.convergeAfterLast.Round(10*time.Millisecond), info.Load.CPUPercent, info.Load.Cores, info.Load.MemPercent)
	})

	var term uint64
	var coord *node
	step("2-coordinator-loss", func(t *testing.T) {
		c.t = t
		start := time.Now()
		var l client.Leader
		if err := c.cli(c.nodes[2], &l, "leader", "--elect"); err != nil {
			t.Fatal(err)
		}
		poll(t, 30*time.Second, "all five agree on an acting coordinator", func() (err error) {
			coord, term, err = c.agreed(c.nodes, 0)
			return err
		})
		tm.firstElect = time.Since(start)
		if coord != c.nodes[0] {
			t.Fatalf("coordinator %s, want shoal-1 (the highest priority)", coord.name)
		}
		t.Logf("leader --elect: %s acting under term %d, agreed by all five after %v", coord.name, term, tm.firstElect.Round(10*time.Millisecond))

		// docker kill the coordinator: the survivors see it fail and agree
		// on the next in rank under a higher term.
		killed := coord
		survivors := without(c.nodes, killed)
		kill := time.Now()
		mustDocker(t, "kill", killed.container)
		tm.detect = poll(t, 45*time.Second, "survivors see "+killed.name+" failed", func() error {
			for _, n := range survivors {
				ms, err := c.members(n)
				if err != nil {
					return err
				}
				for _, m := range ms {
					if m.Name == killed.name && m.Status == "alive" {
						return fmt.Errorf("%s still sees %s alive", n.name, killed.name)
					}
				}
			}
			return nil
		})
		old := term
		poll(t, 45*time.Second, "survivors agree on a new coordinator with a higher term", func() (err error) {
			coord, term, err = c.agreed(survivors, old)
			return err
		})
		tm.failover = time.Since(kill)
		if coord != c.nodes[1] {
			t.Fatalf("new coordinator %s, want shoal-2 (next in rank)", coord.name)
		}
		t.Logf("docker kill %s (term %d): failure seen by all survivors after %v; %s acting under term %d, agreed by all four, after %v",
			killed.name, old, tm.detect.Round(10*time.Millisecond), coord.name, term, tm.failover.Round(10*time.Millisecond))

		// Restart it: with no join list, only its snapshot (on the volume)
		// can bring it back.
		restart := time.Now()
		c.start(killed)
		c.allSee(c.nodes, c.nodes, false, 60*time.Second, killed.name+" rejoins and all five see five alive")
		rejoinLine := ""
		for _, line := range strings.Split(c.logsSince(killed, restart.Add(-time.Second)), "\n") {
			if strings.Contains(strings.ToLower(line), "re-join") && rejoinLine == "" {
				rejoinLine = line
			}
		}
		if rejoinLine == "" {
			t.Fatalf("%s rejoined, but its log does not show a rejoin from its snapshot", killed.name)
		}
		t.Logf("%s's log: %s", killed.name, rejoinLine)
		prev := term
		poll(t, 30*time.Second, "all five agree on one coordinator after the rejoin", func() (err error) {
			coord, term, err = c.agreed(c.nodes, prev-1)
			return err
		})
		tm.rejoin = time.Since(restart)
		t.Logf("docker start %s: rejoined from its snapshot; all five see five alive and agree on %s (term %d) after %v",
			killed.name, coord.name, term, tm.rejoin.Round(10*time.Millisecond))
	})

	step("3-partition", func(t *testing.T) {
		c.t = t
		// The minority: the coordinator and one other.
		minority := []*node{coord}
		for _, n := range c.nodes {
			if n != coord && len(minority) < 2 {
				minority = append(minority, n)
			}
		}
		majority := without(c.nodes, minority...)
		cut := time.Now()
		for _, n := range minority {
			mustDocker(t, "network", "disconnect", c.network, n.container)
		}
		old := term
		var newCoord *node
		poll(t, 60*time.Second, "the three-node side agrees on an acting coordinator", func() (err error) {
			newCoord, term, err = c.agreed(majority, old)
			return err
		})
		tm.partitionElect = time.Since(cut)
		// The two-node side: the image's CLI inside each container (their
		// published ports went with the network).
		minorityView := func(n *node) (client.Leader, error) {
			var l client.Leader
			err := c.cliInside(n, &l, "leader")
			return l, err
		}
		poll(t, 60*time.Second, "no one on the two-node side acts", func() error {
			for _, n := range minority {
				l, err := minorityView(n)
				if err != nil {
					return err
				}
				if l.Acting {
					return fmt.Errorf("%s still acts (term %d, quorum %d of %d)", n.name, l.Term, l.QuorumSeen, l.QuorumNeeded)
				}
			}
			return nil
		})
		tm.minorityStopped = time.Since(cut)
		poll(t, 60*time.Second, "the two-node side sees no quorum", func() error {
			for _, n := range minority {
				l, err := minorityView(n)
				if err != nil {
					return err
				}
				if l.Acting || l.QuorumSeen >= l.QuorumNeeded {
					return fmt.Errorf("%s: acting %v, quorum %d of %d", n.name, l.Acting, l.QuorumSeen, l.QuorumNeeded)
				}
			}
			return nil
		})
		tm.minorityNoQuorum = time.Since(cut)
		t.Logf("partition %v | %v: the three-node side agrees on %s acting under term %d %v after the cut; the two-node side stops acting after %v and sees no quorum after %v",
			nodeNames(majority), nodeNames(minority), newCoord.name, term, tm.partitionElect.Round(10*time.Millisecond),
			tm.minorityStopped.Round(10*time.Millisecond), tm.minorityNoQuorum.Round(10*time.Millisecond))
		if tm.minorityStopped > tm.partitionElect {
			t.Logf("  for up to %v both sides had an acting coordinator (the old one's term is lower: a fencing provider refuses it)",
				(tm.minorityStopped - tm.partitionElect).Round(10*time.Millisecond))
		}
		for _, n := range minority {
			l, err := minorityView(n)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("  %s (cut off) names %q, acting %v, quorum %d of %d", n.name, l.Coordinator, l.Acting, l.QuorumSeen, l.QuorumNeeded)
		}

		// Heal: reconnect with the same addresses.
		heal := time.Now()
		for _, n := range minority {
			mustDocker(t, "network", "connect", "--ip", n.ip, c.network, n.container)
			c.isolate(n)
		}
		poll(t, healBound, "after the heal everyone sees five alive and one coordinator", func() error {
			for _, n := range c.nodes {
				if err := c.aliveView(n, c.nodes, false); err != nil {
					return err
				}
			}
			var err error
			coord, term, err = c.agreed(c.nodes, 0)
			return err
		})
		tm.heal = time.Since(heal)
		t.Logf("heal: one coordinator (%s, term %d) and five alive in every view after %v (bound %v)",
			coord.name, term, tm.heal.Round(10*time.Millisecond), healBound)
	})

	step("4-rolling-restart", func(t *testing.T) {
		c.t = t
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mon := newViewMonitor(c.nodes, c.token)
		var wg sync.WaitGroup
		mon.run(ctx, &wg)
		// Every node tries to act every 100 ms; an agent records an action
		// only while it acts as coordinator.
		for _, n := range c.nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := client.New(n.api(), c.token)
				for ctx.Err() == nil {
					actx, acancel := context.WithTimeout(ctx, 500*time.Millisecond)
					_, _ = cl.Act(actx) // a restarting node does not answer
					acancel()
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond): // the actor's period, not a wait for an outcome
					}
				}
			}()
		}
		rollStart := time.Now()
		for _, n := range c.nodes {
			start := time.Now()
			mustDocker(t, "restart", "-t", "15", n.container)
			c.isolate(n)
			c.allSee(c.nodes, c.nodes, false, 60*time.Second, n.name+" is back and all five see five alive")
			d := time.Since(start)
			tm.restarts = append(tm.restarts, d)
			t.Logf("restart of %s: five alive in every view again after %v", n.name, d.Round(10*time.Millisecond))
		}
		poll(t, 30*time.Second, "all five agree on one coordinator after the roll", func() (err error) {
			coord, term, err = c.agreed(c.nodes, 0)
			return err
		})
		rollEnd := time.Now()
		cancel()
		wg.Wait()
		tm.worstBelow4, tm.worstBelow4Node = mon.worst()
		t.Logf("rolling restart of five in %v; longest time any view showed fewer than four alive: %v (%s; bound %v, %d samples)",
			rollEnd.Sub(rollStart).Round(10*time.Millisecond), tm.worstBelow4.Round(10*time.Millisecond), tm.worstBelow4Node, detectBound, mon.samples())
		if tm.worstBelow4 > detectBound {
			t.Errorf("%s's view stayed below four alive members for %v, longer than failure detection (%v)", tm.worstBelow4Node, tm.worstBelow4, detectBound)
		}
		t.Logf("after the roll: %s coordinates under term %d", coord.name, term)
		c.checkActions(t, rollStart, rollEnd, &tm)
	})

	tm.total = time.Since(began)
	report := tm.String()
	t.Logf("timings:\n%s", report)
	if p := os.Getenv("SHOAL_CT_REPORT"); p != "" {
		if err := os.WriteFile(p, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// checkActions replays every action the agents recorded during the roll in
// time order against a fencing provider: no term acted under by two nodes,
// no lower term admitted after a higher one; and it measures the longest
// gap with no admitted action (the election's acting intervals).
func (c *cluster) checkActions(t *testing.T, from, to time.Time, tm *timings) {
	type rec struct {
		client.LeaderAction
		at time.Time
	}
	var all []rec
	for _, n := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		acts, err := client.New(n.api(), c.token).Actions(ctx)
		cancel()
		if err != nil {
			t.Fatalf("actions of %s: %v", n.name, err)
		}
		for _, a := range acts {
			at, err := time.Parse(time.RFC3339Nano, a.Time)
			if err != nil || a.Node != n.name || a.Holder != n.name {
				t.Fatalf("bad action record of %s: %+v (%v)", n.name, a, err)
			}
			if at.Before(from) || at.After(to) {
				continue
			}
			all = append(all, rec{a, at})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	holderOf := map[uint64]string{}
	fc := fence.New(fence.Lease{})
	var last fence.Lease
	var lastAt time.Time
	admitted := 0
	per := map[string]int{}
	for _, a := range all {
		if h, ok := holderOf[a.Term]; ok && h != a.Holder {
			t.Errorf("term %d acted under by %s and %s", a.Term, h, a.Holder)
		}
		holderOf[a.Term] = a.Holder
		lease := fence.Lease{Holder: a.Holder, Priority: a.Priority, Term: a.Term}
		if err := fc.AdmitLease(lease); err != nil {
			if !errors.Is(err, fence.ErrStaleTerm) {
				t.Errorf("fence: %v", err)
			}
			tm.refused++
			t.Logf("fence refused %s term %d at %s (a deposed coordinator)", a.Holder, a.Term, a.Time)
			continue
		}
		if lease.Compare(last) < 0 {
			t.Errorf("fence admitted %+v after %+v", lease, last)
		}
		if !lastAt.IsZero() && a.at.Sub(lastAt) > tm.maxActGap {
			tm.maxActGap = a.at.Sub(lastAt)
		}
		last, lastAt = lease, a.at
		admitted++
		per[a.Holder+"/term "+strconv.FormatUint(a.Term, 10)]++
	}
	tm.actions = admitted
	if admitted == 0 {
		t.Fatal("no coordinator acted during the rolling restart")
	}
	t.Logf("actions during the roll: %d admitted, %d refused by the fence; longest gap with no acting coordinator %v; by holder and term: %v",
		admitted, tm.refused, tm.maxActGap.Round(10*time.Millisecond), per)
	if tm.maxActGap > detectBound {
		t.Errorf("no coordinator acted for %v during the roll (more than failure detection, %v)", tm.maxActGap, detectBound)
	}
}

// viewMonitor polls every node's view of the members and keeps, per node,
// the longest stretch during which it saw fewer than four alive.
type viewMonitor struct {
	nodes []*node
	token string
	mu    sync.Mutex
	since map[string]time.Time
	max   map[string]time.Duration
	n     int
}

func newViewMonitor(ns []*node, token string) *viewMonitor {
	return &viewMonitor{nodes: ns, token: token, since: map[string]time.Time{}, max: map[string]time.Duration{}}
}

func (m *viewMonitor) run(ctx context.Context, wg *sync.WaitGroup) {
	for _, n := range m.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := client.New(n.api(), m.token)
			for ctx.Err() == nil {
				qctx, cancel := context.WithTimeout(ctx, time.Second)
				ms, err := cl.Members(qctx, client.MemberFilter{Status: "alive"})
				cancel()
				now := time.Now()
				m.mu.Lock()
				switch {
				case err != nil:
					// Down (restarting): a process that comes back has a
					// view of its own, counted from its first answer.
					delete(m.since, n.name)
				case len(ms) < 4:
					m.n++
					if _, ok := m.since[n.name]; !ok {
						m.since[n.name] = now
					}
					if d := now.Sub(m.since[n.name]); d > m.max[n.name] {
						m.max[n.name] = d
					}
				default:
					m.n++
					if s, ok := m.since[n.name]; ok {
						if d := now.Sub(s); d > m.max[n.name] {
							m.max[n.name] = d
						}
						delete(m.since, n.name)
					}
				}
				m.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond): // sampling period
				}
			}
		}()
	}
}

func (m *viewMonitor) worst() (time.Duration, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d time.Duration
	name := "none"
	for n, v := range m.max {
		if v > d {
			d, name = v, n
		}
	}
	return d, name
}

func (m *viewMonitor) samples() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

func (tm timings) String() string {
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	var rs []string
	for _, d := range tm.restarts {
		rs = append(rs, r(d))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| converge (first docker run → all see 5 alive with load) | %s |\n", r(tm.converge))
	fmt.Fprintf(&b, "| converge (last docker run → all see 5 alive with load) | %s |\n", r(tm.convergeAfterLast))
	fmt.Fprintf(&b, "| first election (leader --elect → all agree, one acting) | %s |\n", r(tm.firstElect))
	fmt.Fprintf(&b, "| coordinator docker kill → failure seen by all survivors | %s |\n", r(tm.detect))
	fmt.Fprintf(&b, "| coordinator docker kill → new coordinator agreed, higher term | %s |\n", r(tm.failover))
	fmt.Fprintf(&b, "| docker start → rejoined from snapshot, all agree | %s |\n", r(tm.rejoin))
	fmt.Fprintf(&b, "| partition 3/2 → majority agrees on an acting coordinator | %s |\n", r(tm.partitionElect))
	fmt.Fprintf(&b, "| partition 3/2 → minority stops acting | %s |\n", r(tm.minorityStopped))
	fmt.Fprintf(&b, "| partition 3/2 → minority sees no quorum | %s |\n", r(tm.minorityNoQuorum))
	fmt.Fprintf(&b, "| heal → five alive everywhere, one coordinator | %s |\n", r(tm.heal))
	fmt.Fprintf(&b, "| rolling restart, each (docker restart → five alive everywhere) | %s |\n", strings.Join(rs, ", "))
	fmt.Fprintf(&b, "| rolling restart, longest view below four alive | %s (%s) |\n", r(tm.worstBelow4), tm.worstBelow4Node)
	fmt.Fprintf(&b, "| rolling restart, longest gap with no acting coordinator | %s (%d actions, %d fenced) |\n", r(tm.maxActGap), tm.actions, tm.refused)
	fmt.Fprintf(&b, "| whole test (build included) | %s |\n", r(tm.total))
	return b.String()
}

// runEnv is run with extra environment variables.
func runEnv(timeout time.Duration, env []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
