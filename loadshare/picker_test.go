package loadshare

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

func seeded(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 7)) }

func mustNew(t *testing.T, strategy string, o Options) Picker {
	t.Helper()
	if o.Rand == nil {
		o.Rand = seeded(1)
	}
	p, err := New(strategy, o)
	if err != nil {
		t.Fatalf("New(%q): %v", strategy, err)
	}
	return p
}

func TestNewUnknownStrategy(t *testing.T) {
	_, err := New("fastest", Options{Rand: seeded(1)})
	if err == nil {
		t.Fatal("New(\"fastest\") succeeded, want an error")
	}
	for _, want := range append(Strategies(), `"fastest"`) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New("", Options{}); err == nil {
		t.Error("New without Rand succeeded, want an error")
	}
	if _, err := New("", Options{Rand: seeded(1), LocalThreshold: -1}); err == nil || !strings.Contains(err.Error(), "-1") {
		t.Errorf("New with LocalThreshold -1 = %v, want an error naming -1", err)
	}
}

// TestWeightedRandomFrequencies checks pick frequencies against weights with a
// chi-square bound (fixed seed, so the test is deterministic).
func TestWeightedRandomFrequencies(t *testing.T) {
	cands := []Candidate{
		{Name: "a", Alive: true, Cores: 1},
		{Name: "b", Alive: true, Cores: 2},
		{Name: "c", Alive: true, Cores: 4, CPUPercent: 50},        // weight 2
		{Name: "d", Alive: true, Cores: 8, CPUPercent: 87.5},      // weight 1
		{Name: "e", Alive: true, Cores: 3, CPUPercent: 100.0 / 3}, // weight 2
	}
	p := mustNew(t, WeightedRandom, Options{})
	const n = 200000
	count := map[string]int{}
	for range n {
		c, err := p.Pick(cands)
		if err != nil {
			t.Fatal(err)
		}
		count[c.Name]++
	}
	total := 0.0
	for _, c := range cands {
		total += Weight(c, WeightParams{})
	}
	chi2 := 0.0
	for _, c := range cands {
		exp := n * Weight(c, WeightParams{}) / total
		d := float64(count[c.Name]) - exp
		chi2 += d * d / exp
	}
	// 4 degrees of freedom: P(χ² > 18.47) = 0.001.
	if chi2 > 18.47 {
		t.Errorf("χ² = %.2f > 18.47 (df 4, p 0.001); counts %v", chi2, count)
	}
}

// TestSmoothWRRNginx checks nginx's published sequence for weights {5, 1, 1}.
func TestSmoothWRRNginx(t *testing.T) {
	cands := []Candidate{{Name: "a", Alive: true, Capacity: 5}, {Name: "b", Alive: true, Capacity: 1}, {Name: "c", Alive: true, Capacity: 1}}
	p := mustNew(t, SmoothWeightedRoundRobin, Options{Weigh: CapacityWeight})
	var got strings.Builder
	for range 14 {
		c, err := p.Pick(cands)
		if err != nil {
			t.Fatal(err)
		}
		got.WriteString(c.Name)
	}
	if want := "aabacaaaabacaa"; got.String() != want {
		t.Errorf("sequence %q, want %q", got.String(), want)
	}
	// Changing the member set keeps the survivors' state and works on.
	c, err := p.Pick(cands[:2])
	if err != nil || (c.Name != "a" && c.Name != "b") {
		t.Errorf("after removing c: %v, %v", c.Name, err)
	}
}

func TestStaleAndDeadMembersSkipped(t *testing.T) {
	params := WeightParams{MaxAge: 5 * time.Second}
	cands := []Candidate{
		{Name: "stale", Alive: true, Cores: 64, Age: 6 * time.Second},
		{Name: "dead", Alive: false, Cores: 64},
		{Name: "ok1", Alive: true, Cores: 1, CPUPercent: 90, Age: time.Second},
		{Name: "ok2", Alive: true, Cores: 1, CPUPercent: 95, Age: 5 * time.Second},
	}
	for _, s := range Strategies() {
		t.Run(s, func(t *testing.T) {
			p := mustNew(t, s, Options{Params: params})
			for range 500 {
				c, err := p.Pick(cands)
				if err != nil {
					t.Fatal(err)
				}
				if c.Name == "stale" || c.Name == "dead" {
					t.Fatalf("picked %s", c.Name)
				}
			}
			_, err := p.Pick(cands[:2])
			if !errors.Is(err, ErrNoCandidate) {
				t.Fatalf("only stale and dead members: err %v, want ErrNoCandidate", err)
			}
			if _, err := p.Pick(nil); !errors.Is(err, ErrNoCandidate) {
				t.Fatalf("no members: err %v, want ErrNoCandidate", err)
			}
		})
	}
}

func TestPowerOfTwo(t *testing.T) {
	idle := Candidate{Name: "idle", Alive: true, Cores: 1}
	busy := Candidate{Name: "busy", Alive: true, Cores: 1, CPUPercent: 90, LoadAvg: 3}
	p := mustNew(t, PowerOfTwo, Options{})
	for range 200 {
		if c, _ := p.Pick([]Candidate{busy, idle}); c.Name != "idle" {
			t.Fatalf("fresh information: picked %s, want idle", c.Name)
		}
	}
	// Information many compare-half-lives old is barely trusted: the pick is
	// close to capacity-weighted random.
	idle.Age, busy.Age = 20*time.Second, 20*time.Second
	p = mustNew(t, PowerOfTwo, Options{CompareHalfLife: time.Second, Params: WeightParams{MaxAge: time.Minute}})
	n := 0
	for range 10000 {
		if c, _ := p.Pick([]Candidate{busy, idle}); c.Name == "idle" {
			n++
		}
	}
	if n < 4700 || n > 5300 {
		t.Errorf("stale information: idle picked %d of 10000 times, want about half", n)
	}
	// Sampling is by capacity: with stale information a 3x member gets
	// about 3/4 of the work among two.
	big := Candidate{Name: "big", Alive: true, Cores: 3, Age: 20 * time.Second}
	n = 0
	for range 10000 {
		if c, _ := p.Pick([]Candidate{big, idle}); c.Name == "big" {
			n++
		}
	}
	if n < 7200 || n > 7800 {
		t.Errorf("stale information: 3-core member picked %d of 10000 times, want about 7500", n)
	}
	// Fresh, it picks the better expected time in system: 3 jobs on a 3x
	// member (4/3) beat 1 job on a 1x member (2).
	big = Candidate{Name: "big", Alive: true, Cores: 3, LoadAvg: 3}
	one := Candidate{Name: "one", Alive: true, Cores: 1, LoadAvg: 1}
	p = mustNew(t, PowerOfTwo, Options{})
	for range 100 {
		if c, _ := p.Pick([]Candidate{one, big}); c.Name != "big" {
			t.Fatalf("picked %s, want big", c.Name)
		}
	}
}

func TestLocalFirst(t *testing.T) {
	local := Candidate{Name: "me", Alive: true, Local: true, Cores: 1, CPUPercent: 50}
	remote := Candidate{Name: "peer", Alive: true, Cores: 1}
	p := mustNew(t, LocalFirst, Options{LocalThreshold: 0.7})
	if c, _ := p.Pick([]Candidate{remote, local}); c.Name != "me" {
		t.Errorf("local at 50%%: picked %s, want me", c.Name)
	}
	local.CPUPercent = 80
	if c, _ := p.Pick([]Candidate{remote, local}); c.Name != "peer" {
		t.Errorf("local at 80%%: picked %s, want peer", c.Name)
	}
	if c, _ := p.Pick([]Candidate{local}); c.Name != "me" {
		t.Errorf("local at 80%%, no peers: picked %s, want me", c.Name)
	}
	if c, _ := p.Pick([]Candidate{remote}); c.Name != "peer" {
		t.Errorf("no local: picked %s, want peer", c.Name)
	}
}

func TestRoundRobinAndLeastLoaded(t *testing.T) {
	cands := []Candidate{{Name: "a", Alive: true}, {Name: "b", Alive: true, CPUPercent: 10}, {Name: "x"}, {Name: "c", Alive: true, CPUPercent: 5}}
	p := mustNew(t, RoundRobin, Options{})
	var got strings.Builder
	for range 6 {
		c, _ := p.Pick(cands)
		got.WriteString(c.Name)
	}
	if got.String() != "abcabc" {
		t.Errorf("round-robin %q, want abcabc", got.String())
	}
	p = mustNew(t, LeastLoaded, Options{})
	if c, _ := p.Pick(cands); c.Name != "a" {
		t.Errorf("least-loaded picked %s, want a", c.Name)
	}
	// Uniform random reaches every eligible member.
	p = mustNew(t, Random, Options{})
	seen := map[string]bool{}
	for range 100 {
		c, _ := p.Pick(cands)
		seen[c.Name] = true
	}
	if len(seen) != 3 || seen["x"] {
		t.Errorf("random reached %v, want a, b, c", seen)
	}
}

func TestPickN(t *testing.T) {
	var cands []Candidate
	for i := range 6 {
		cands = append(cands, Candidate{Name: fmt.Sprint("n", i), Alive: i != 5, Cores: float64(i + 1)})
	}
	for _, s := range Strategies() {
		p := mustNew(t, s, Options{})
		got, err := PickN(p, cands, 3)
		if err != nil || len(got) != 3 {
			t.Fatalf("%s: PickN(3) = %v, %v", s, got, err)
		}
		seen := map[string]bool{}
		for _, c := range got {
			if seen[c.Name] {
				t.Fatalf("%s: PickN repeated %s", s, c.Name)
			}
			seen[c.Name] = true
		}
		got, err = PickN(p, cands, 6)
		if !errors.Is(err, ErrNoCandidate) || len(got) != 5 {
			t.Fatalf("%s: PickN(6) of 5 eligible = %d picks, %v; want 5 and ErrNoCandidate", s, len(got), err)
		}
	}
	if _, err := PickN(mustNew(t, "", Options{}), cands, -1); err == nil || !strings.Contains(err.Error(), "-1") {
		t.Errorf("PickN(-1) = %v, want an error naming -1", err)
	}
}

// TestConcurrentPick exercises the concurrency contract (run with -race).
func TestConcurrentPick(t *testing.T) {
	cands := []Candidate{{Name: "a", Alive: true, Cores: 1}, {Name: "b", Alive: true, Cores: 2}, {Name: "c", Alive: true, Cores: 3, Local: true}}
	for _, s := range Strategies() {
		p := mustNew(t, s, Options{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 500 {
					if _, err := p.Pick(cands); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
}
