package election

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
)

// ErrInvalidConfig is returned by New (wrapped, with the offending field and
// value) when a Config does not validate.
var ErrInvalidConfig = errors.New("election: invalid config")

// Config holds the settings of one Node. Every timeout is counted in ticks:
// the adapter decides how long a tick is (DefaultConfig's values assume a tick
// of 100 ms to 1 s). Flags, environment and files only fill a Config.
type Config struct {
	// Name is this node's name in the mesh. Required, at most MaxNameLen
	// bytes; it must be the name other members use for it in SetMembers.
	Name string

	// Priority is this node's priority (from a mesh tag). Rank is
	// (Priority, Name): higher priority wins, and between equal priorities
	// the lexicographically greater name wins.
	Priority int

	// Quorum is how many members (counting this node) must be seen alive
	// for this node to act as coordinator or to run an election. Zero
	// means a majority of the committed member set (see the package doc).
	// Set it to a majority of the expected mesh size when that size is
	// known: a node that boots on the wrong side of a partition can only
	// count what it has seen.
	Quorum int

	// Preempt lets a higher-ranked node that meets an established
	// coordinator (it joined or came back after the election) take over,
	// after PreemptDelay ticks and through a handover. When false, an
	// acting coordinator keeps the role until it leaves, fails or loses
	// its quorum.
	Preempt bool

	// PreemptDelay is how many ticks a higher-ranked node waits, seeing a
	// quorum throughout, before it preempts a lower coordinator. It damps
	// flapping: losing the quorum restarts the wait. Zero preempts at once.
	PreemptDelay int

	// AnswerTimeout is how many ticks a candidate waits for an Answer to a
	// Challenge before it asks again or moves down the list. Must be >= 1.
	AnswerTimeout int

	// ProbeAttempts is how many Challenges a candidate sends to one higher
	// rank before it falls back to the next one. Must be >= 1.
	ProbeAttempts int

	// ClaimTimeout is how many ticks a node waits for a claim from a higher
	// rank (after an Answer, or after the coordinator was lost), and how
	// long a claimant collects acknowledgements before it gives up and
	// tries again with a higher term. Must be > RetransmitTicks.
	ClaimTimeout int

	// ClaimAttempts is how many claims in a row may time out before the
	// node parks the election (it claims no more terms) until the
	// membership view changes or Request is called: a claim that keeps
	// failing means the members cannot acknowledge (they see no quorum),
	// and retrying on a timer would only add traffic. Must be >= 1.
	ClaimAttempts int

	// RetransmitTicks is the interval at which a claimant resends its claim
	// to alive members that have not acknowledged it, and the first
	// interval at which an acting coordinator re-announces itself to them
	// (the coordinator doubles it per attempt, up to 16 times). Must be >= 1.
	RetransmitTicks int

	// LeaseTicks (L) is how long a lease lasts. A coordinator acts only
	// within L ticks of a renewal that a quorum granted, counted from its
	// own tick when it sent the renewal (one whose lease ran out renews
	// for L more ticks before it steps down); members that hear no renewal
	// for RenewTicks + L ticks start an election; a member that granted a
	// lease grants no other holder for L + DriftTicks ticks after it did.
	// Must be >= 2.
	LeaseTicks int

	// RenewTicks is the interval at which a coordinator renews its lease
	// with every alive member (the renewal is also its heartbeat). Must be
	// >= 1 and < LeaseTicks; a third of it lets two renewals in a row be lost.
	RenewTicks int

	// DriftTicks is the margin a member adds to a lease it granted before
	// it acknowledges another holder: it covers the tick granularity and
	// the rate at which clocks of different machines drift apart. >= 1.
	DriftTicks int

	// Jitter is the largest random number of ticks added to each timeout,
	// so that nodes that lost the same coordinator do not move in step.
	// Zero disables it.
	Jitter int

	// Rand draws the jitter. Required when Jitter > 0; tests pass a seeded
	// source (rand.New(rand.NewPCG(seed, seed))). A Node is not safe for
	// concurrent use, and neither is Rand: do not share one between nodes
	// that run on different goroutines.
	Rand *rand.Rand

	// Restore is the HardState saved from an earlier run of this node
	// (Node.HardState). A node that restarts without it may acknowledge a
	// second holder for a term it already promised; see the package doc.
	Restore HardState

	// Logger receives debug records of state changes. Nil discards them.
	// New adds a component=election attribute.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with the defaults for a mesh whose adapter
// ticks every few hundred milliseconds. Name and Rand are left for the caller.
func DefaultConfig() Config {
	return Config{
		Preempt:         false,
		PreemptDelay:    10,
		AnswerTimeout:   3,
		ProbeAttempts:   2,
		ClaimTimeout:    16,
		ClaimAttempts:   3,
		RetransmitTicks: 4,
		LeaseTicks:      10,
		RenewTicks:      3,
		DriftTicks:      2,
		Jitter:          2,
	}
}

// FastConfig is DefaultConfig with short timeouts, for tests and
// simulations.
func FastConfig() Config {
	c := DefaultConfig()
	c.PreemptDelay = 3
	c.AnswerTimeout = 2
	c.ClaimTimeout = 10
	c.RetransmitTicks = 2
	c.LeaseTicks = 6
	c.RenewTicks = 3
	c.DriftTicks = 1
	c.Jitter = 1
	return c
}

func (c *Config) validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s is %v, want %s", ErrInvalidConfig, field, v, want)
	}
	switch {
	case c.Name == "":
		return bad("Name", `""`, "this node's mesh name")
	case len(c.Name) > MaxNameLen:
		return bad("Name", fmt.Sprintf("%d bytes long", len(c.Name)), fmt.Sprintf("at most %d bytes", MaxNameLen))
	case c.Quorum < 0:
		return bad("Quorum", c.Quorum, "0 (majority) or a positive count")
	case c.PreemptDelay < 0:
		return bad("PreemptDelay", c.PreemptDelay, ">= 0")
	case c.AnswerTimeout < 1:
		return bad("AnswerTimeout", c.AnswerTimeout, ">= 1")
	case c.ProbeAttempts < 1:
		return bad("ProbeAttempts", c.ProbeAttempts, ">= 1")
	case c.ClaimAttempts < 1:
		return bad("ClaimAttempts", c.ClaimAttempts, ">= 1")
	case c.RetransmitTicks < 1:
		return bad("RetransmitTicks", c.RetransmitTicks, ">= 1")
	case c.ClaimTimeout <= c.RetransmitTicks:
		return bad("ClaimTimeout", c.ClaimTimeout, fmt.Sprintf("> RetransmitTicks (%d)", c.RetransmitTicks))
	case c.LeaseTicks < 2:
		return bad("LeaseTicks", c.LeaseTicks, ">= 2")
	case c.RenewTicks < 1 || c.RenewTicks >= c.LeaseTicks:
		return bad("RenewTicks", c.RenewTicks, fmt.Sprintf(">= 1 and < LeaseTicks (%d)", c.LeaseTicks))
	case c.DriftTicks < 1:
		return bad("DriftTicks", c.DriftTicks, ">= 1")
	case c.ClaimTimeout <= c.LeaseTicks+c.DriftTicks:
		// Members hold a claim back until their grant to the lost
		// coordinator runs out: the claim must outlast that.
		return bad("ClaimTimeout", c.ClaimTimeout, fmt.Sprintf("> LeaseTicks+DriftTicks (%d)", c.LeaseTicks+c.DriftTicks))
	case c.Jitter < 0:
		return bad("Jitter", c.Jitter, ">= 0")
	case c.Jitter > 0 && c.Rand == nil:
		return bad("Rand", "nil", "a seeded *rand.Rand when Jitter > 0")
	case len(c.Restore.Holder) > MaxNameLen:
		return bad("Restore.Holder", fmt.Sprintf("%d bytes long", len(c.Restore.Holder)), fmt.Sprintf("at most %d bytes", MaxNameLen))
	}
	return c.Restore.Check()
}
