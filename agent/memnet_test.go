package agent

// In-process meshes of real agents (serf, memberlist, Shoal's packets, the
// election) on the in-memory network: partitions, a one-way partition, and
// loss, asserted as a user would check them with 'shoal members' and
// 'shoal leader'.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/mesh/memnet"
	"github.com/shoalmesh/shoal/metrics"
)

// memHost is the in-memory address of agent el-i.
func memHost(i int) string { return fmt.Sprintf("10.77.0.%d", i) }

func hostsOf(as []*Agent) []string {
	var out []string
	for _, a := range as {
		h, _ := a.Mesh().LocalAddr()
		out = append(out, h)
	}
	return out
}

// startMemMesh starts n agents el-1…el-n (priority i, local profile) on nw,
// joined through el-1, and waits until each sees all of them alive.
func startMemMesh(t *testing.T, nw *memnet.Network, n int) []*Agent {
	return startMemMeshProfile(t, nw, n, mesh.ProfileLocal)
}

// startMemMeshProfile is startMemMesh on the given profile.
func startMemMeshProfile(t *testing.T, nw *memnet.Network, n int, profile string) []*Agent {
	t.Helper()
	var as []*Agent
	t.Cleanup(func() {
		for _, a := range as {
			a.Stop(false)
		}
	})
	for i := 1; i <= n; i++ {
		cfg := DefaultConfig()
		cfg.NodeName = fmt.Sprintf("el-%d", i)
		cfg.Bind = memHost(i) + ":7946"
		cfg.Profile = profile
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.DataDir = filepath.Join(t.TempDir(), cfg.NodeName)
		cfg.Priority = i
		cfg.SampleInterval = Duration(200 * time.Millisecond)
		// The addresses live on the in-memory network only: nothing outside
		// this process can reach them, so no gossip key is needed.
		cfg.InsecureGossip = true
		if i > 1 {
			cfg.Join = []string{memHost(1)}
		}
		a, err := New(cfg, WithTransport(mesh.MemoryTransport(nw)), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", cfg.NodeName, err)
		}
		as = append(as, a)
	}
	// A join's alive broadcast that no member passed on to one of the
	// others is repaired by the next push-pull, which memberlist staggers
	// up to one interval after start and then runs every interval (30 s on
	// lan): the wait covers two. Run 6 of a ten-run loop of the suite saw
	// a lan mesh miss the 30 s it had before ("el-4 sees 4 alive, want 5");
	// a start slower than 10 s is logged with who was missing.
	start := time.Now()
	var slow error
	pollFor(t, 65*time.Second, "every agent sees every agent alive", func() error {
		err := seeAlive(as, as)
		if err != nil && time.Since(start) > 10*time.Second && slow == nil {
			slow = err
		}
		return err
	})
	if slow != nil {
		t.Logf("the mesh took %v to converge; at 10 s: %v", time.Since(start).Round(time.Millisecond), slow)
	}
	return as
}

// seeAlive checks that every agent of who lists exactly the agents of whom
// as alive (what 'shoal members' shows).
func seeAlive(who, whom []*Agent) error {
	want := map[string]bool{}
	for _, a := range whom {
		want[a.cfg.NodeName] = true
	}
	for _, a := range who {
		alive := 0
		seen := map[string]string{}
		for _, m := range a.Mesh().View().Members() {
			seen[m.Name] = m.Status
			if m.Status != mesh.StatusAlive {
				continue
			}
			if !want[m.Name] {
				return fmt.Errorf("%s sees %s alive", a.cfg.NodeName, m.Name)
			}
			alive++
		}
		if alive != len(want) {
			// Name who is missing and how it is seen, so that a failure
			// tells a lost join from a member taken for failed.
			var off []string
			for name := range want {
				if st, ok := seen[name]; !ok {
					off = append(off, name+" unknown")
				} else if st != mesh.StatusAlive {
					off = append(off, name+" "+st)
				}
			}
			sort.Strings(off)
			return fmt.Errorf("%s sees %d alive, want %d (%s)", a.cfg.NodeName, alive, len(want), strings.Join(off, ", "))
		}
	}
	return nil
}

// electTop asks for a coordinator and waits until all name the highest rank.
func electTop(t *testing.T, as []*Agent) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := as[0].runner().Coordinate(ctx); err != nil {
		t.Fatal(err)
	}
	var term uint64
	top := as[len(as)-1].cfg.NodeName
	pollFor(t, 30*time.Second, "all name "+top, func() (err error) {
		term, err = agreed(as, top)
		return err
	})
	return term
}

func noneActs(as []*Agent) error {
	for _, a := range as {
		if l := a.runner().leaderView(); l.Acting {
			return fmt.Errorf("%s acts as coordinator (term %d, sees %d of %d)", l.Node, l.Term, l.QuorumSeen, l.QuorumNeeded)
		}
	}
	return nil
}

// oneCoordinator checks that all agents name one coordinator under one term
// and that it alone acts, and returns it.
func oneCoordinator(as []*Agent) (string, uint64, error) {
	c := as[0].runner().leaderView().Coordinator
	if c == "" {
		return "", 0, fmt.Errorf("%s names no coordinator", as[0].cfg.NodeName)
	}
	term, err := agreed(as, c)
	return c, term, err
}

// TestMemnetPartitionMinorityStopsActing cuts a five-agent mesh 3|2 with the
// coordinator on the small side: the two stop acting within the election's
// acting bound, the three elect their own, and healed, the five are one
// mesh again with one coordinator.
func TestMemnetPartitionMinorityStopsActing(t *testing.T) {
	nw := memnet.New(11)
	if err := nw.SetDefault(memnet.Link{Latency: time.Millisecond, Jitter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	as := startMemMesh(t, nw, 5)
	term1 := electTop(t, as)
	major, minor := as[:3], as[3:]

	r := as[4].runner()
	bound := r.actingBound()
	slack := 2 * r.tick // the tick that notices may come late on a loaded machine
	nw.Partition(hostsOf(major), hostsOf(minor))
	took := poll.Until(t, 3*bound+10*time.Second, "the minority stops acting", func() error { return noneActs(minor) })
	t.Logf("the minority stopped acting %v after the cut (bound %v + %v)", took.Round(time.Millisecond), bound, slack)
	if took > bound+slack {
		t.Errorf("the minority acted for %v after the cut, beyond its bound %v (+%v)", took, bound, slack)
	}

	var term2 uint64
	pollFor(t, 30*time.Second, "the majority names el-3", func() (err error) {
		term2, err = agreed(major, "el-3")
		return err
	})
	if term2 <= term1 {
		t.Errorf("the majority's term %d is not above %d", term2, term1)
	}
	if err := noneActs(minor); err != nil {
		t.Errorf("while cut off: %v", err)
	}
	// What the minority's operator reads: no quorum, once its memberlist has
	// marked the other side failed (acting already stopped with the lease).
	pollFor(t, 30*time.Second, "el-5 reports no quorum while cut off", func() error {
		if l := minor[1].runner().leaderView(); l.QuorumSeen >= l.QuorumNeeded {
			return fmt.Errorf("el-5 sees %d of the %d it needs", l.QuorumSeen, l.QuorumNeeded)
		}
		return noneActs(minor)
	})

	nw.Heal()
	pollFor(t, 30*time.Second, "healed: one mesh, one coordinator", func() error {
		if err := seeAlive(as, as); err != nil {
			return err
		}
		_, term, err := oneCoordinator(as)
		if err == nil && term < term2 {
			err = fmt.Errorf("term %d below the majority's %d", term, term2)
		}
		return err
	})
}

// TestMemnetOneWayPartition makes the coordinator mute: it hears everyone,
// nobody hears it. The others see it fail and elect the next rank; the mute
// one stops acting, and since its pings go unanswered it sees the others
// fail in turn. Healed, the mesh is whole again under one coordinator.
func TestMemnetOneWayPartition(t *testing.T) {
	nw := memnet.New(12)
	if err := nw.SetDefault(memnet.Link{Latency: time.Millisecond, Jitter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	as := startMemMesh(t, nw, 5)
	term1 := electTop(t, as)
	mute, rest := as[4], as[:4]
	cutAt := time.Now()
	for _, h := range hostsOf(rest) {
		nw.Cut(memHost(5), h)
	}

	var term2 uint64
	pollFor(t, 30*time.Second, "the others see el-5 failed and name el-4", func() (err error) {
		if err := seeAlive(rest, rest); err != nil {
			return err
		}
		term2, err = agreed(rest, "el-4")
		return err
	})
	if term2 <= term1 {
		t.Errorf("the new term %d is not above %d", term2, term1)
	}
	// Its claims cannot get out, so it never gathers the acknowledgements
	// it would need to act again; in time its unanswered pings make it see
	// the others failed, and it sees no quorum.
	poll.Until(t, 30*time.Second, "el-5 sees the others failed and does not act", func() error {
		if err := noneActs([]*Agent{mute}); err != nil {
			return err
		}
		if err := seeAlive([]*Agent{mute}, []*Agent{mute}); err != nil {
			return err
		}
		if l := mute.runner().leaderView(); l.QuorumSeen >= l.QuorumNeeded {
			return fmt.Errorf("el-5 sees %d of the %d it needs", l.QuorumSeen, l.QuorumNeeded)
		}
		return nil
	})
	t.Logf("el-5, mute, saw everyone else failed %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	if s := nw.Stats(memHost(5), memHost(1)); s.Cut == 0 {
		t.Errorf("no packet from el-5 to el-1 was cut: %+v", s)
	}
	if s := nw.Stats(memHost(1), memHost(5)); s.Delivered == 0 {
		t.Errorf("el-5 heard nothing from el-1: %+v", s)
	}

	nw.Heal()
	pollFor(t, 30*time.Second, "healed: one mesh, one coordinator", func() error {
		if err := seeAlive(as, as); err != nil {
			return err
		}
		_, term, err := oneCoordinator(as)
		if err == nil && term < term2 {
			err = fmt.Errorf("term %d below %d", term, term2)
		}
		return err
	})
}

// TestMemnetLoss runs a five-agent mesh with 20% of packets lost on every
// link: nobody is taken for failed, and a change of load reaches everyone.
// It runs the lan profile, the production timings: the local profile's
// (100 ms probe timeout, suspicion after two missed probe rounds) are for
// quick failure detection on an idle machine, and under the race detector
// on a loaded one they took a live member for failed now and then even
// without loss (1 run in 4), and in 9 runs of 10 with it.
func TestMemnetLoss(t *testing.T) {
	nw := memnet.New(13)
	if err := nw.SetDefault(memnet.Link{Latency: time.Millisecond, Jitter: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	as := startMemMeshProfile(t, nw, 5, mesh.ProfileLAN)
	failures := func() int {
		n := 0
		for _, a := range as {
			for _, e := range a.events.list() {
				if e.Type == "member-failed" || e.Type == "member-leave" {
					n++
				}
			}
		}
		return n
	}
	before := failures()
	if err := nw.SetDefault(memnet.Link{Latency: time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.2}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i, a := range as {
		a.Monitor().Override(&metrics.Load{CPUPercent: float64(11 * (i + 1)), MemPercent: 40, Cores: 2})
	}
	// Stable: at every look, everyone sees everyone alive, for a window of
	// 15 probe rounds per node (lan probes every second): 75 probes, a third
	// of which lose the ping or its ack and go indirect.
	const window = 15 * time.Second
	converged := time.Duration(0)
	pollFor(t, window+30*time.Second, "stable membership and converged load under 20% loss", func() error {
		if err := seeAlive(as, as); err != nil {
			t.Fatalf("%v after %v of loss", err, time.Since(start))
		}
		if converged == 0 {
			for _, a := range as {
				for _, m := range a.Mesh().View().Members() {
					var i int
					fmt.Sscanf(m.Name, "el-%d", &i)
					if m.Load == nil || m.Load.CPUPercent != float64(11*i) {
						return fmt.Errorf("%s sees %s's load %v, want CPU %d%%", a.cfg.NodeName, m.Name, m.Load, 11*i)
					}
				}
			}
			converged = time.Since(start)
		}
		if time.Since(start) < window {
			return fmt.Errorf("stable for %v of %v", time.Since(start).Round(time.Second), window)
		}
		return nil
	})
	t.Logf("load converged %v into 20%% loss", converged.Round(time.Millisecond))
	if n := failures() - before; n != 0 {
		t.Errorf("%d member-failed or member-leave events under 20%% loss", n)
	}
	var sent, lost uint64
	for i := 1; i <= 5; i++ {
		for j := 1; j <= 5; j++ {
			if i != j {
				s := nw.Stats(memHost(i), memHost(j))
				sent, lost = sent+s.Sent, lost+s.Lost
			}
		}
	}
	// About a thousand packets: 20% within 8 sd.
	if f := float64(lost) / float64(sent); f < 0.1 || f > 0.3 {
		t.Errorf("%d of %d packets lost (%.1f%%), want about 20%%", lost, sent, 100*f)
	}
	t.Logf("%d of %d packets lost", lost, sent)
}
