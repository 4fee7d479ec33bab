// Package scale decides how many instances the mesh should have, and asks a
// provider for them.
//
// # The policy
//
// Policy is pure: no clock, goroutines or I/O. Each Evaluate call gets the
// time and an Input (the instance count and the aggregate of the watched
// metric, see Aggregate and ParseMetric) and returns a Decision with its
// reasons. In ModeTarget it uses the Kubernetes HPA's rule on the demand,
//
//	demand  = value × ready            (the load the serving instances carry)
//	desired = ceil(demand / target)    when |demand/(current × target) − 1| > tolerance
//
// where current counts booting instances and ready does not (Input.Ready,
// from a provider that is a ReadyReader, or estimated from the boot time),
// so capacity still booting is not scaled for twice (target.go):
//
//   - scale-up test (UpWindow, default 5 s): the median demand over the up
//     window or twice it, or its upper quartile over 4× or 8× it, must clear
//     the band's top by 2.5 standard errors of the measured noise; the step
//     is sized on that window's upper quartile; a cpu/mem figure pinned at
//     100% asks for twice the serving instances;
//   - trend (TrendWindow, 60 s): a significant, steady Theil–Sen rise
//     projected over the boot time + Lookahead + MetricLag past the band
//     scales up before the band is crossed, and holds scale-downs back;
//   - scale-down stabilization (DownWindow, default 300 s, as the HPA): the
//     highest recommendation over the window, once recommendations cover it;
//   - cooldowns: UpCooldown (15 s) and DownCooldown (60 s) after the last
//     action in either direction, so a new coordinator neither repeats nor
//     reverses its predecessor's action too soon;
//   - step limits per StepPeriod (count and percent, the larger wins, as
//     the HPA's selectPolicy Max); then Min and Max.
//
// ModeThresholds replaces the rule with fixed steps: "above 75% for 30s ->
// +1" (ParseThreshold). DryRun marks decisions as not to be applied.
//
// Record tells the policy an action happened (this node's, another
// coordinator's, or one read back from the History), so that cooldowns and
// step limits survive restarts and failover.
//
// # Providers
//
// Provider is the interface to what gets scaled (Current, Scale with the
// coordinator's fence.Lease); a ReadyReader also reports how many instances
// serve (Counts). Providers register by name with
// RegisterProvider and are built by NewProvider from a ProviderConfig; the
// dry-run, webhook, exec, AWS and Kubernetes ones live in scale/providers,
// which holds the SDKs: this package links only the standard library and
// package fence (deps_test.go). Every
// provider fences: FileFence admits a lease with fence.Fence.AdmitLease
// and persists it before acting.
//
// # Takeover
//
// A provider whose Current reads the resource says so (Authoritative). A
// new coordinator starts from that count; without one, from the newest
// action known anywhere, ordered by term (Ledger, Known.Newer): announced
// in the mesh, kept in the History, or in the provider's record
// (LastActionReader); never from a record of an older term because it is
// its own. Basis makes that choice; HoldWithoutFigures turns a bounds-only
// action on a guessed count into no decision; Policy.ResetWindows restarts
// the windows when a node starts acting. docs/scaling.md says what a user
// sets per provider for exactly-once actions.
//
// # History
//
// History appends every decision that led to a provider call, applied or
// refused and why, to a JSON-lines file (fsync per record); the agent reads
// it back at start.
//
// # Simulation
//
// sim.go runs a Scaler over a recorded Trace on simulated time (instances
// that boot, metrics dropouts) and measures it per episode; hpa.go is the
// Kubernetes HPA's algorithm (unready pods, stabilization, rate limits) to
// compare with. The policy tests and tools/cmd/shoal-scalebench use them.
package scale
