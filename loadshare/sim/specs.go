package sim

import (
	"math/rand/v2"

	"github.com/shoalmesh/shoal/loadshare"
)

func spec(role, name, strategy string, o loadshare.Options, stagger int) PickerSpec {
	return PickerSpec{
		Name:  name,
		Role:  role,
		Blind: role == RoleRR || role == RoleRandom,
		New: func(r *rand.Rand) (loadshare.Picker, error) {
			// A copy per call: grid workers build pickers from one spec at
			// once, and writing the captured o raced (two pickers could end
			// up sharing one random source, and the grid was not seeded).
			po := o
			po.Rand = r
			return loadshare.New(strategy, po)
		},
		Stagger: stagger,
	}
}

// Roles of the pickers in the comparison.
const (
	// RoleDefault is Shoal's default picker, loadshare.Default.
	RoleDefault = "default"
	// RoleRR is the round-robin baseline: plain round-robin on equal hosts,
	// smooth weighted round-robin by capacity on mixed hosts.
	RoleRR = "rr-baseline"
	// RoleRandom is the random baseline: uniform on equal hosts, weighted by
	// capacity on mixed hosts.
	RoleRandom = "random-baseline"
	// RoleFailure marks a known failure shown for contrast.
	RoleFailure = "failure"
)

// Specs returns the pickers compared on a host set, the default first, then
// the two baselines (in their capacity-weighted forms when speeds differ),
// then the rest: the library's weighted random (load weight with staleness
// blending), and three known failures shown for contrast: least-loaded,
// weighted random on spare capacity trusting stale figures, and
// power-of-two-choices trusting stale figures.
func Specs(hs HostSet) []PickerSpec {
	n := len(hs.Speeds)
	equal := true
	for _, s := range hs.Speeds {
		equal = equal && s == hs.Speeds[0]
	}
	trustAll := loadshare.WeightParams{HalfLife: -1, MaxAge: -1}
	blind := loadshare.WeightParams{MaxAge: -1} // baselines ignore load and age
	cap := loadshare.Options{Weigh: loadshare.CapacityWeight, Params: blind}
	out := []PickerSpec{spec(RoleDefault, "default: "+loadshare.Default, loadshare.Default, loadshare.Options{}, 0)}
	if equal {
		out = append(out,
			spec(RoleRR, "rr: round-robin", loadshare.RoundRobin, loadshare.Options{Params: blind}, n),
			spec(RoleRandom, "random: uniform", loadshare.Random, loadshare.Options{Params: blind}, 0))
	} else {
		total := 0
		for _, s := range hs.Speeds {
			total += int(s + 0.5)
		}
		out = append(out,
			spec(RoleRR, "rr: swrr by capacity", loadshare.SmoothWeightedRoundRobin, cap, total),
			spec(RoleRandom, "random: wrandom by capacity", loadshare.WeightedRandom, cap, 0))
	}
	return append(out,
		spec("", "wrandom: Weight (blended)", loadshare.WeightedRandom, loadshare.Options{}, 0),
		spec(RoleFailure, "failure? least-loaded", loadshare.LeastLoaded, loadshare.Options{}, 0),
		spec(RoleFailure, "failure? wrandom stale spare", loadshare.WeightedRandom, loadshare.Options{Params: trustAll}, 0),
		spec("", "p2c trusting stale info", loadshare.PowerOfTwo, loadshare.Options{Params: trustAll, CompareHalfLife: -1}, 0),
	)
}
