package loadshare

import (
	"fmt"
	"math"
	"time"
)

// Defaults for WeightParams.
const (
	// DefaultHalfLife is the age at which load information counts for half.
	DefaultHalfLife = 2 * time.Second
	// DefaultMaxAge is the age beyond which a member is skipped.
	DefaultMaxAge = 30 * time.Second
	// DefaultMinHeadroom is the headroom floor: a saturated member keeps a
	// trickle of work so that fresh figures keep coming from it.
	DefaultMinHeadroom = 0.05
)

// WeightParams tunes Weight and the pickers' treatment of stale information.
// The zero value means the defaults.
type WeightParams struct {
	// HalfLife is the age at which load information counts for half; older
	// information counts for less (Confidence). 0 means DefaultHalfLife; a
	// negative value trusts information of any age fully (for comparison
	// only: this is the setting that herds).
	HalfLife time.Duration
	// MaxAge is the age beyond which a member's information is too old and
	// the member is skipped. 0 means DefaultMaxAge; negative means no limit.
	MaxAge time.Duration
	// MinHeadroom is the smallest headroom a live member gets, in (0, 1).
	// 0 means DefaultMinHeadroom.
	MinHeadroom float64
}

func (p WeightParams) withDefaults() WeightParams {
	if p.HalfLife == 0 {
		p.HalfLife = DefaultHalfLife
	}
	if p.MaxAge == 0 {
		p.MaxAge = DefaultMaxAge
	}
	if p.MinHeadroom == 0 {
		p.MinHeadroom = DefaultMinHeadroom
	}
	return p
}

// Validate reports a parameter that cannot be used, naming its value.
func (p WeightParams) Validate() error {
	if !(p.MinHeadroom >= 0 && p.MinHeadroom < 1) {
		return fmt.Errorf("loadshare: MinHeadroom %v is outside [0, 1); use a small fraction such as %v", p.MinHeadroom, DefaultMinHeadroom)
	}
	return nil
}

// Confidence returns how much information of the given age counts, in
// [0, 1]: 1 when fresh, 1/2 at one half-life, 1/4 at two. It is 0 for
// information older than MaxAge, and 1 at any age when HalfLife is negative.
func Confidence(age time.Duration, p WeightParams) float64 {
	return confidence(age, p.withDefaults())
}

func confidence(age time.Duration, p WeightParams) float64 {
	if p.MaxAge > 0 && age > p.MaxAge {
		return 0
	}
	if p.HalfLife < 0 || age <= 0 {
		return 1
	}
	return math.Exp2(-float64(age) / float64(p.HalfLife))
}

// Eligible reports whether a candidate may be picked at all: it is alive and
// its information is no older than MaxAge.
func Eligible(c Candidate, p WeightParams) bool {
	return eligible(c, p.withDefaults())
}

func eligible(c Candidate, p WeightParams) bool {
	return c.Alive && (p.MaxAge < 0 || c.Age <= p.MaxAge)
}

// Headroom returns the fraction of the candidate's capacity that is spare,
// 1 − Load, floored at MinHeadroom; beyond saturation (Load > 1) it keeps
// falling as MinHeadroom/Load so that deeper queues still rank lower.
func Headroom(c Candidate, p WeightParams) float64 {
	return headroom(c, p.withDefaults())
}

func headroom(c Candidate, p WeightParams) float64 {
	l := Load(c)
	if l > 1 {
		return p.MinHeadroom / l
	}
	return math.Max(1-l, p.MinHeadroom)
}

// Weight returns how much work the candidate should get relative to others:
// its capacity times its headroom, with the headroom blended toward 1 (the
// capacity-only weight) as the information ages:
//
//	w = Cap · (1 − Confidence(Age)·(1 − Headroom))
//
// so fresh information is taken at face value, information one half-life old
// counts for half, and very old information leaves plain capacity. A member
// that is not alive, or whose information is older than MaxAge, weighs 0.
// Weight is pure.
func Weight(c Candidate, p WeightParams) float64 {
	return weight(c, p.withDefaults())
}

func weight(c Candidate, p WeightParams) float64 {
	if !eligible(c, p) {
		return 0
	}
	conf := confidence(c.Age, p)
	return c.Cap() * (1 - conf*(1-headroom(c, p)))
}

// CapacityWeight weighs a candidate by its capacity alone, ignoring load. It
// is the weight of the capacity-weighted baselines.
func CapacityWeight(c Candidate) float64 { return c.Cap() }
