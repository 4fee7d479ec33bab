package mesh

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/mesh/memnet"
	"github.com/shoalmesh/shoal/metrics"
)

// TestFiftyMeshesLearnEveryLoadHonestly runs 50 real meshes (serf,
// memberlist and the load relay; lan profile, memberlist's LAN timings:
// the local profile's 200 ms probes took live members for failed by the
// dozen under the race detector on a busy 2-core machine) on the in-memory network,
// each link 1-20 ms one way with 1% loss, and checks end to end what the
// relay promises:
//
//   - every node learns every member's load, and a changed load everywhere;
//   - ages are honest within the time a confirmation spends in flight: no
//     node holds a member's load as more recent than that member last
//     published or confirmed it (its own View's time) by more than
//     inFlight, and once a member is cut off, nobody's time for it moves
//     more than inFlight past the cut. Ages travel as "this old when
//     sent" (rounded up to 50 ms, and counted to the moment of sending);
//     the receiver cannot know how long the packet took, so each hop's
//     transit and wait in the receive queue go uncounted: up to six hops
//     of at most 20 ms here, plus the queueing of a machine busy with the
//     race detector;
//   - a replayed or older load message changes nothing: sent in the name
//     of a member, sealed with the mesh key, both on the relay and as an
//     answer, an older version is refused (counted as stale) and the same
//     version never makes the load look fresher.
func TestFiftyMeshesLearnEveryLoadHonestly(t *testing.T) {
	const n = 50
	const inFlight = 250 * time.Millisecond
	key := []byte("0123456789abcdef")
	nw := memnet.New(21)
	nw.SetLinkFunc(func(from, to netip.Addr) memnet.Link {
		h := fnv.New64a()
		h.Write(from.AsSlice())
		h.Write(to.AsSlice())
		return memnet.Link{Latency: time.Millisecond + time.Duration(h.Sum64()%uint64(19*time.Millisecond)), Loss: 0.01}
	})
	cpus := make([]*atomic.Int64, n)
	ms := make([]*Mesh, n)
	for i := range ms {
		cpus[i] = &atomic.Int64{}
		cpus[i].Store(int64(i))
		cpu := cpus[i]
		m, err := New(Config{
			NodeName: fmt.Sprintf("d%02d", i), BindAddr: fmt.Sprintf("10.21.0.%d", i+1), BindPort: 7946,
			Profile: ProfileLAN, Transport: MemoryTransport(nw), Keys: [][]byte{key}, Label: "dis",
			Load: func() (metrics.Load, bool) {
				return metrics.Load{CPUPercent: float64(cpu.Load()), MemPercent: 40, Cores: 2}, true
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		ms[i] = m
	}
	for i, m := range ms[1:] {
		var seeds []string // the first three, not itself
		for j := range min(i+1, 3) {
			seeds = append(seeds, fmt.Sprintf("10.21.0.%d:7946", j+1))
		}
		if _, err := m.Join(seeds); err != nil {
			t.Fatal(err)
		}
	}
	// everyLoad checks that every node lists every other alive with the
	// CPU figure the member publishes now.
	everyLoad := func(skip map[string]bool) error {
		for _, o := range ms {
			if skip[o.LocalName()] {
				continue
			}
			v := o.View()
			for i, x := range ms {
				if skip[x.LocalName()] {
					continue
				}
				mem, ok := v.Member(x.LocalName())
				switch {
				case !ok || mem.Status != StatusAlive:
					return fmt.Errorf("%s lists %s %q (listed: %v; %d members)", o.LocalName(), x.LocalName(), mem.Status, ok, v.Len())
				case mem.Load == nil:
					return fmt.Errorf("%s holds no load of %s", o.LocalName(), x.LocalName())
				case mem.Load.CPUPercent != float64(cpus[i].Load()):
					return fmt.Errorf("%s holds %s at CPU %v, it publishes %d", o.LocalName(), x.LocalName(), mem.Load.CPUPercent, cpus[i].Load())
				}
			}
		}
		return nil
	}
	var lastErr error
	t.Cleanup(func() {
		if !t.Failed() || lastErr == nil {
			return
		}
		// Who lists whom not alive, in serf and in memberlist.
		for _, o := range ms {
			for _, mem := range o.Serf().Members() {
				if mem.Status != 1 { // serf.StatusAlive
					var ml string
					for _, n := range o.Serf().Memberlist().Members() {
						if n.Name == mem.Name {
							ml = fmt.Sprintf("memberlist state %d", n.State)
						}
					}
					t.Logf("%s: serf lists %s %v; %s", o.LocalName(), mem.Name, mem.Status, ml)
				}
			}
		}
	})
	took := poll.Until(t, 90*time.Second, "every node holds every member's load", func() error { lastErr = everyLoad(nil); return lastErr })
	t.Logf("%d meshes: every node holds every load %v after the joins", n, took.Round(time.Millisecond))

	// honest checks every (observer, member) pair: the observer's time for
	// the member's load is not after the member's own (read after it), give
	// or take the wire's age resolution. It returns the worst age seen.
	var worstAt string
	honest := func(skip map[string]bool) (time.Duration, error) {
		worst := time.Duration(0)
		for _, o := range ms {
			if skip[o.LocalName()] {
				continue
			}
			now := time.Now()
			for _, mem := range o.View().Members() {
				if mem.Self || mem.Load == nil || skip[mem.Name] {
					continue
				}
				seen := mem.LoadAt()
				x := ms[indexOf(t, ms, mem.Name)]
				own, _ := x.View().Self()
				if seen.After(own.LoadAt().Add(inFlight)) {
					return 0, fmt.Errorf("%s holds %s's load as of %v, %v after %s itself last confirmed it",
						o.LocalName(), mem.Name, seen.Format("15:04:05.000"), seen.Sub(own.LoadAt()), mem.Name)
				}
				if a := mem.LoadAge(now); a > worst {
					worst = a
					old := 0
					for _, p := range ms {
						if pm, ok := p.View().Member(mem.Name); ok && pm.Load != nil && pm.LoadAge(now) > time.Second {
							old++
						}
					}
					worstAt = fmt.Sprintf("%s's load of %s, listed %s (%s's own age %v; %d nodes hold it over 1 s old; %s sees %d members alive)",
						o.LocalName(), mem.Name, mem.Status, mem.Name, own.LoadAge(now), old, mem.Name, aliveIn(x.View()))
				}
			}
		}
		return worst, nil
	}
	var worst time.Duration
	for range 20 { // 20 samples over about 2 s
		w, err := honest(nil)
		if err != nil {
			t.Fatal(err)
		}
		worst = max(worst, w)
		time.Sleep(100 * time.Millisecond) // sampling ages while time passes, not waiting for an outcome
	}
	t.Logf("oldest load held at idle: %v: %s", worst.Round(time.Millisecond), worstAt)
	if worst > 5*time.Second {
		t.Errorf("a load was held %v old at idle (confirms every %v)", worst, ConfirmIntervalFor(n, 100*time.Millisecond))
	}

	// Capture d05's entry as it stands: the replay below sends it again.
	victim := ms[5]
	victim.mu.Lock()
	oldState, _, _ := victim.table.Get(victim.LocalName())
	oldState = append([]byte(nil), oldState...)
	oldVersion := victim.table.VersionOf(victim.LocalName())
	victim.mu.Unlock()
	if oldVersion == 0 {
		t.Fatal("d05 holds no entry of its own")
	}

	// Ten loads move: everyone learns the new figures.
	for i := 0; i < 10; i++ {
		cpus[i].Store(int64(50 + i))
	}
	took = poll.Until(t, 30*time.Second, "every node holds the ten changed loads", func() error { return everyLoad(nil) })
	t.Logf("ten changed loads everywhere after %v", took.Round(time.Millisecond))

	// The replay: d05's old state under its old version, and its current
	// version with age 0, on the relay and as an answer, from an address
	// that is no member, to every other node.
	victim.mu.Lock()
	curVersion := victim.table.VersionOf(victim.LocalName())
	curState, _, _ := victim.table.Get(victim.LocalName())
	curState = append([]byte(nil), curState...)
	victim.mu.Unlock()
	if curVersion <= oldVersion {
		t.Fatalf("d05's version %d did not move past %d", curVersion, oldVersion)
	}
	seal := &Sealer{Label: "dis", Keys: func() ([]byte, [][]byte) { return key, [][]byte{key} }}
	spy, err := nw.Listen("10.21.1.1:7946", memnet.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer spy.Shutdown()
	old := Entry{Name: victim.LocalName(), Version: oldVersion, Full: true, State: oldState}
	same := Entry{Name: victim.LocalName(), Version: curVersion, Full: true, State: curState}
	var pkts [][]byte
	for _, body := range [][]byte{
		AppendRelay(nil, victim.LocalName(), RelayPacket{Base: VersionAt(time.Now()), Groups: []RelayGroup{{Mask: 0b10, Entries: []Entry{old}}}}),
		AppendEntries(nil, VersionAt(time.Now()), []Entry{old}),
		AppendRelay(nil, victim.LocalName(), RelayPacket{Base: VersionAt(time.Now()), Groups: []RelayGroup{{Mask: 0b10, Entries: []Entry{same}}}}),
		AppendEntries(nil, VersionAt(time.Now()), []Entry{same}),
	} {
		p, err := seal.Seal(nil, body)
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	type before struct {
		stale   uint64
		at      time.Time
		version uint64
	}
	was := map[string]before{}
	for _, o := range ms {
		if o == victim {
			continue
		}
		mem, _ := o.View().Member(victim.LocalName())
		was[o.LocalName()] = before{o.Stats().StaleEntries.Load(), mem.LoadAt(), o.View().Version()}
		ip, port := o.LocalAddr()
		for _, p := range pkts {
			if _, err := spy.WriteToAddress(p, memberlist.Address{Addr: fmt.Sprintf("%s:%d", ip, port)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each packet may be lost (1%): send again until every node counted
	// the old version as stale; the same version is ignored silently.
	poll.Every(t, 20*time.Second, 200*time.Millisecond, "every node refused d05's old version", func() error {
		for _, o := range ms {
			if o == victim {
				continue
			}
			if o.Stats().StaleEntries.Load() == was[o.LocalName()].stale {
				ip, port := o.LocalAddr()
				for _, p := range pkts[:2] {
					_, _ = spy.WriteToAddress(p, memberlist.Address{Addr: fmt.Sprintf("%s:%d", ip, port)})
				}
				return fmt.Errorf("%s counted no stale entry yet", o.LocalName())
			}
		}
		return nil
	})
	for _, o := range ms {
		if o == victim {
			continue
		}
		mem, _ := o.View().Member(victim.LocalName())
		if mem.Load == nil || mem.Load.CPUPercent != float64(cpus[5].Load()) {
			t.Errorf("%s holds d05's load %v after the replay, want CPU %d", o.LocalName(), mem.Load, cpus[5].Load())
		}
	}
	if err := everyLoad(nil); err != nil {
		t.Errorf("after the replay: %v", err)
	}
	if _, err := honest(nil); err != nil {
		t.Errorf("after the replay: %v", err)
	}

	// Cut d07 off: from the cut on, nobody's time for its load moves past
	// the cut, until they mark it failed.
	cut := ms[7]
	ip, _ := cut.LocalAddr()
	others := make([]string, 0, n-1)
	for _, o := range ms {
		if o != cut {
			a, _ := o.LocalAddr()
			others = append(others, a)
		}
	}
	nw.Partition([]string{ip}, others)
	cutAt := time.Now()
	poll.Until(t, 60*time.Second, "every node marks d07 failed", func() error {
		alive := 0
		for _, o := range ms {
			if o == cut {
				continue
			}
			mem, ok := o.View().Member(cut.LocalName())
			if !ok {
				continue
			}
			if mem.Load != nil && mem.LoadAt().After(cutAt.Add(inFlight)) {
				t.Fatalf("%s holds d07's load as of %v after the cut", o.LocalName(), mem.LoadAt().Sub(cutAt))
			}
			if mem.Status == StatusAlive {
				alive++
			}
		}
		if alive > 0 {
			return fmt.Errorf("%d nodes list d07 alive", alive)
		}
		return nil
	})
}

func aliveIn(v *View) int {
	k := 0
	for _, m := range v.Members() {
		if m.Status == StatusAlive {
			k++
		}
	}
	return k
}

func indexOf(t *testing.T, ms []*Mesh, name string) int {
	t.Helper()
	for i, m := range ms {
		if m.LocalName() == name {
			return i
		}
	}
	t.Fatalf("no mesh named %s", name)
	return -1
}
