package sim

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
)

// Grid is a set of runs: every host set × load × refresh period × picker of
// Specs(host set).
type Grid struct {
	// Hosts are the host sets.
	Hosts []HostSet
	// Loads are arrival rates as fractions of capacity.
	Loads []float64
	// Refresh are gossip refresh periods (0 = live information).
	Refresh []float64
	// Duration and Warmup are per run, in mean service times.
	Duration, Warmup float64
	// Seed seeds every run (the same seed for each, so pickers face the
	// same arrivals and job sizes).
	Seed uint64
	// Only, when set, keeps only the pickers for which it returns true.
	Only func(PickerSpec) bool
	// Workers is how many runs go at once; 0 means GOMAXPROCS.
	Workers int
}

// Row is one run of a grid.
type Row struct {
	// Hosts names the host set.
	Hosts string
	// Load and Refresh are the run's load and refresh period.
	Load, Refresh float64
	// Picker names the picker; Role is its role.
	Picker, Role string
	// Result holds the figures.
	Result
}

// DefaultGrid is the full grid of the lssim command (tools/cmd/lssim).
func DefaultGrid() Grid {
	return Grid{
		Hosts:    []HostSet{EqualHosts(100), MixedHosts(100)},
		Loads:    []float64{0.6, 0.8, 0.9},
		Refresh:  []float64{0, 0.5, 1, 2, 20},
		Duration: 6000,
		Warmup:   1000,
		Seed:     1,
	}
}

// RunGrid runs every configuration of g, in parallel, and returns the rows in
// grid order. Blind pickers (the baselines) are run once per host set and
// load, and their row repeated for each refresh period.
func RunGrid(g Grid) ([]Row, error) {
	type job struct {
		cfg  Config
		rows []int
	}
	var rows []Row
	var jobs []job
	for _, hs := range g.Hosts {
		specs := Specs(hs)
		for _, load := range g.Loads {
			blind := map[string]int{} // picker name → job index
			for _, r := range g.Refresh {
				for _, sp := range specs {
					if g.Only != nil && !g.Only(sp) {
						continue
					}
					rows = append(rows, Row{Hosts: hs.Name, Load: load, Refresh: r, Picker: sp.Name, Role: sp.Role})
					if j, ok := blind[sp.Name]; ok && sp.Blind {
						jobs[j].rows = append(jobs[j].rows, len(rows)-1)
						continue
					}
					if sp.Blind {
						blind[sp.Name] = len(jobs)
					}
					jobs = append(jobs, job{
						cfg:  Config{Hosts: hs, Load: load, Refresh: r, Duration: g.Duration, Warmup: g.Warmup, Seed: g.Seed, Picker: sp},
						rows: []int{len(rows) - 1},
					})
				}
			}
		}
	}
	workers := g.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range next {
				res, err := Run(jobs[j].cfg)
				errs[j] = err
				for _, r := range jobs[j].rows {
					rows[r].Result = res
				}
			}
		})
	}
	for j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return rows, err
		}
	}
	return rows, nil
}

// Find returns the row of the given host set, load, refresh and role, or
// false.
func Find(rows []Row, hosts string, load, refresh float64, role string) (Row, bool) {
	for _, r := range rows {
		if r.Hosts == hosts && r.Load == load && r.Refresh == refresh && r.Role == role {
			return r, true
		}
	}
	return Row{}, false
}

// WriteTable writes rows as a text table. For each row it also gives p99 as
// a multiple of the round-robin and random baselines' p99 in the same host
// set and load.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-6s %4s %7s  %-28s %8s %8s %6s %6s %7s %7s %6s\n",
		"hosts", "load", "refresh", "picker", "mean", "p99", "p99/rr", "p99/rnd", "max/mn", "maxw/mn", "cv")
	prev := ""
	for _, r := range rows {
		key := fmt.Sprintf("%s %v %v", r.Hosts, r.Load, r.Refresh)
		if prev != "" && key != prev {
			b.WriteString("\n")
		}
		prev = key
		ratio := func(role string) string {
			base, ok := Find(rows, r.Hosts, r.Load, r.Refresh, role)
			if !ok || base.P99 == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", r.P99/base.P99)
		}
		refresh := "fresh"
		if r.Refresh > 0 {
			refresh = fmt.Sprintf("%g", r.Refresh)
		}
		fmt.Fprintf(&b, "%-6s %4.0f%% %7s  %-28s %8.2f %8.2f %6s %6s %7.2f %7.2f %6.2f\n",
			r.Hosts, 100*r.Load, refresh, r.Picker, r.Mean, r.P99, ratio(RoleRR), ratio(RoleRandom), r.MaxOverMean, r.MaxOverMeanWork, r.CV)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// TheoryCheck is a configuration whose mean time in system is known.
type TheoryCheck struct {
	// Name labels the check.
	Name string
	// Spec is the picker.
	Spec PickerSpec
	// Want is the theoretical mean time in system.
	Want float64
}

// SupermarketTwoChoices is the mean time in system of the supermarket model
// with two choices at arrival rate 0.9 per server, n → ∞:
// Σ_{i≥1} λ^(2^i − 2).
const SupermarketTwoChoices = 2.6136

// TheoryChecks returns the checks at 90% load on 100 equal hosts with live
// information: uniform random (M/M/1, mean 1/(1−ρ) = 10) and the default
// picker, which with live information is two choices (≈ 2.61).
func TheoryChecks() []TheoryCheck {
	specs := Specs(EqualHosts(100))
	var out []TheoryCheck
	for _, sp := range specs {
		switch sp.Role {
		case RoleRandom:
			out = append(out, TheoryCheck{Name: "random", Spec: sp, Want: 10})
		case RoleDefault:
			out = append(out, TheoryCheck{Name: "two choices", Spec: sp, Want: SupermarketTwoChoices})
		}
	}
	return out
}

// Config returns the run configuration of the check.
func (c TheoryCheck) Config(duration, warmup float64, seed uint64) Config {
	return Config{Hosts: EqualHosts(100), Load: 0.9, Duration: duration, Warmup: warmup, Seed: seed, Picker: c.Spec}
}
