package loadshare

import (
	"math"
	"testing"
	"time"
)

func TestWeight(t *testing.T) {
	p := WeightParams{HalfLife: time.Second, MaxAge: 10 * time.Second, MinHeadroom: 0.05}
	alive := func(c Candidate) Candidate { c.Alive = true; return c }
	cases := []struct {
		name string
		c    Candidate
		p    WeightParams
		want float64
	}{
		{"idle fresh weighs its cores", alive(Candidate{Cores: 4}), p, 4},
		{"capacity tag overrides cores", alive(Candidate{Cores: 4, Capacity: 10}), p, 10},
		{"no cores or capacity counts as 1", alive(Candidate{}), p, 1},
		{"half busy fresh", alive(Candidate{Cores: 4, CPUPercent: 50}), p, 2},
		{"memory is the bottleneck", alive(Candidate{Cores: 2, CPUPercent: 10, MemPercent: 75}), p, 0.5},
		{"network is the bottleneck", alive(Candidate{Cores: 1, NetRxBps: 10, NetTxBps: 90, NetCapacityBps: 100}), p, 0.1},
		{"unknown link speed ignores network", alive(Candidate{Cores: 1, NetTxBps: 1e9}), p, 1},
		{"saturated keeps the floor", alive(Candidate{Cores: 1, CPUPercent: 100}), p, 0.05},
		{"queued work goes below the floor", alive(Candidate{Cores: 2, LoadAvg: 8}), p, 2 * 0.05 / 4},
		{"one half-life old counts half", alive(Candidate{Cores: 4, CPUPercent: 50, Age: time.Second}), p, 4 * (1 - 0.5*0.5)},
		{"two half-lives old counts a quarter", alive(Candidate{Cores: 4, CPUPercent: 100, Age: 2 * time.Second}), p, 4 * (1 - 0.25*0.95)},
		{"very old is capacity only", alive(Candidate{Cores: 4, CPUPercent: 100, Age: 10 * time.Second}), p, 4 * (1 - math.Exp2(-10)*0.95)},
		{"older than MaxAge is skipped", alive(Candidate{Cores: 4, Age: 10*time.Second + 1}), p, 0},
		{"no MaxAge keeps the very old", alive(Candidate{Cores: 4, Age: time.Hour}), WeightParams{MaxAge: -1}, 4},
		{"negative HalfLife never decays", alive(Candidate{Cores: 4, CPUPercent: 50, Age: time.Minute}), WeightParams{HalfLife: -1, MaxAge: -1}, 2},
		{"dead weighs nothing", Candidate{Cores: 4}, p, 0},
		{"NaN and negative figures count as idle", alive(Candidate{Cores: 2, CPUPercent: math.NaN(), MemPercent: -5, Capacity: math.Inf(1)}), p, 2},
		{"zero params mean defaults", alive(Candidate{Cores: 1, CPUPercent: 50, Age: DefaultHalfLife}), WeightParams{}, 0.75},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Weight(tc.c, tc.p)
			if math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("Weight(%+v) = %v, want %v", tc.c, got, tc.want)
			}
		})
	}
}

func TestWeightMonotone(t *testing.T) {
	// More load never weighs more; older information never moves a weight
	// away from capacity.
	p := WeightParams{}
	for cpu := 0.0; cpu < 100; cpu += 5 {
		a := Weight(Candidate{Alive: true, Cores: 2, CPUPercent: cpu}, p)
		b := Weight(Candidate{Alive: true, Cores: 2, CPUPercent: cpu + 5}, p)
		if b > a {
			t.Fatalf("CPU %v%% weighs %v, more than %v at %v%%", cpu+5, b, a, cpu)
		}
		prev := a
		for age := time.Duration(0); age < DefaultMaxAge; age += time.Second {
			w := Weight(Candidate{Alive: true, Cores: 2, CPUPercent: cpu, Age: age}, p)
			if w < prev-1e-12 || w > 2 {
				t.Fatalf("CPU %v%% age %v weighs %v; previous %v, capacity 2", cpu, age, w, prev)
			}
			prev = w
		}
	}
}

func TestValidate(t *testing.T) {
	err := WeightParams{MinHeadroom: 1.5}.Validate()
	if err == nil || !contains(err.Error(), "1.5") {
		t.Fatalf("Validate(MinHeadroom 1.5) = %v, want an error naming 1.5", err)
	}
}

func TestShareAndLoad(t *testing.T) {
	c := Candidate{Cores: 3, LoadAvg: 3}
	if got := Load(c); got != 1 {
		t.Errorf("Load = %v, want 1", got)
	}
	if got := Share(c); got != 3.0/4 {
		t.Errorf("Share = %v, want 0.75 (speed 3, 3 jobs: expected time in system 4/3)", got)
	}
}

func TestFilter(t *testing.T) {
	cands := []Candidate{
		{Name: "a", Alive: true, Tags: map[string]string{"service": "api", "region": "eu"}},
		{Name: "b", Alive: false, Tags: map[string]string{"service": "api", "region": "eu"}},
		{Name: "c", Alive: true, Local: true, Tags: map[string]string{"service": "api", "region": "us"}},
		{Name: "d", Alive: true, Tags: map[string]string{"service": "db"}, Age: time.Minute},
	}
	names := func(cs []Candidate) (s string) {
		for _, c := range cs {
			s += c.Name
		}
		return s
	}
	for _, tc := range []struct {
		preds []Predicate
		want  string
	}{
		{[]Predicate{HasTag("service", "api")}, "abc"},
		{[]Predicate{HasTag("service", "api"), IsAlive}, "ac"},
		{[]Predicate{HasTag("service", "api"), HasTag("region", "eu"), IsAlive}, "a"},
		{[]Predicate{IsRemote, IsAlive}, "ad"},
		{[]Predicate{FresherThan(time.Second)}, "abc"},
		{nil, "abcd"},
	} {
		if got := names(Filter(cands, tc.preds...)); got != tc.want {
			t.Errorf("Filter with %d predicates = %q, want %q", len(tc.preds), got, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}
