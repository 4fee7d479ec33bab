package providers

import (
	"context"
	"log/slog"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
)

// DryRunName is the dry-run provider's name.
const DryRunName = "dry-run"

// DryRun calls nothing: it logs each decision, fences it like a real
// provider, and keeps a simulated instance count in its fence file (option
// initial sets the count before the first action; without it Current
// returns scale.ErrCountUnknown and the agent counts the mesh). Options:
// initial, fence_file.
type DryRun struct {
	fence   *scale.FileFence
	initial int
	log     *slog.Logger
}

var (
	_ scale.Provider         = (*DryRun)(nil)
	_ scale.LastActionReader = (*DryRun)(nil)
)

// NewDryRun is the dry-run provider's factory.
func NewDryRun(cfg scale.ProviderConfig) (scale.Provider, error) {
	if err := cfg.CheckOptions("initial", OptFenceFile); err != nil {
		return nil, err
	}
	initial, err := OptInt(cfg, "initial", -1, 0)
	if err != nil {
		return nil, err
	}
	f, err := OpenFence(cfg)
	if err != nil {
		return nil, err
	}
	return &DryRun{fence: f, initial: initial, log: cfg.Logger.With("component", "scale-dry-run")}, nil
}

// Name returns "dry-run".
func (p *DryRun) Name() string { return DryRunName }

// Authoritative is false: the simulated count is this node's fence's
// (shared only when every node points fence_file at one file).
func (p *DryRun) Authoritative() bool { return false }

// Current returns the simulated count.
func (p *DryRun) Current(ctx context.Context) (int, error) {
	st, err := p.fence.Read()
	if err != nil {
		return 0, err
	}
	switch {
	case st.Known:
		return st.Count, nil
	case p.initial >= 0:
		return p.initial, nil
	}
	return 0, scale.ErrCountUnknown
}

// Scale fences the lease, logs the decision and sets the simulated count.
func (p *DryRun) Scale(ctx context.Context, desired int, lease fence.Lease, d scale.Decision) error {
	return p.fence.Do(lease, func(st *scale.FenceState) error {
		from := d.Current
		if st.Known {
			from = st.Count
		}
		p.log.Info("dry-run: would scale", "from", from, "to", desired, "term", lease.Term, "holder", lease.Holder, "reason", d.Reason())
		st.Count, st.Known = desired, true
		st.Last = &scale.Applied{Time: ActionTime(d), From: from, To: desired, Lease: lease}
		return nil
	})
}

// LastAction returns the last simulated action.
func (p *DryRun) LastAction(ctx context.Context) (scale.Applied, bool, error) {
	st, err := p.fence.Read()
	if err != nil {
		return scale.Applied{}, false, err
	}
	a, ok := LastFromState(st)
	return a, ok, nil
}
