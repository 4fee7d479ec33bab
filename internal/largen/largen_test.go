package largen

import (
	"context"
	"testing"
	"time"
)

// TestBoundedLargeMesh is the bounded form of `shoal-scenario large`: 100
// real Shoal stacks (serf, memberlist, the load relay; lan profile,
// memberlist's LAN timings) in this process on the in-memory network, each
// link 1-50 ms one way with 1% loss, 2% of the hosts starved (their packets
// wait up to 150 ms more). It asserts what a user of the mesh would check,
// with bounds a loaded 2-core CI machine holds:
//
//   - every node lists all alive, and a killed node is marked failed
//     by every survivor, a joined node listed alive by all;
//   - no node marks a live member failed, during the idle window or
//     anywhere in the run;
//   - every node holds every member's load (a sampled pair lacks it at
//     most 0.1% of the time), p99 age at most 3 s;
//   - at most 10 KB/s on the wire per node (the N=1,000 target).
//
// scripts/test runs it without the race detector, one package at a time
// (beside the sims); under the race detector (raceSize) the same run has
// 30 nodes. Issue 14 asks for N >= 200 here; measured on the 2-core machine
// this was written on, shared with another engineer's builds (load
// average 3-5), that does not hold: 50 stacks under -race passed alone in
// about 55 s (p99 age 1.2 s, 2.3 KB/s per node) but, run beside the mesh
// and agent packages' tests, saw 99 false failures; 30 pass beside them
// (54 s, p99 1.0 s, 2.0 KB/s); 100 under -race left no core
// idle, memberlist's timers ran late everywhere and live members were
// marked failed by the thousand (4,193 events); without -race, 200 Shoal
// stacks flapped through a whole minute of joins, and so did 200 stacks of
// stock serf alone, so the size is what the machine carries, not what
// Shoal's gossip costs (docs/benchmarks.md, issue 14).
func TestBoundedLargeMesh(t *testing.T) {
	cfg := Defaults()
	cfg.N = 100
	if raceEnabled {
		cfg.N = raceSize
	}
	// Starved hosts late by up to 150 ms each way, not the scenario's
	// 300 ms: a round trip through one then stays inside memberlist's
	// 500 ms probe timeout, and a false failure means the stack, not the
	// emulated host, went wrong (the scenario reports 300 ms's as they come).
	cfg.StarvedJitter = 150 * time.Millisecond
	cfg.JoinBatch = 25
	cfg.Settle = 10 * time.Second
	cfg.Idle = 30 * time.Second
	cfg.KillTrials, cfg.JoinTrials = 1, 1
	cfg.Timeout = 2 * time.Minute
	cfg.Logf = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("N=%d: converged %v; join %v; detect first %v all %v; %.0f B/s/node (load %.0f, push/pull %.0f), %.1f packets/s; age p50/p99/max %v/%v/%v over %d pairs, %d without load; false failures %d (idle %d); heap %.2f MB/node; load average %s -> %s",
		res.N, res.Converged.Round(time.Millisecond), res.Join, res.DetectFirst, res.DetectAll, res.BytesOut, res.LoadBytes, res.StreamBytes, res.PacketsOut,
		res.AgeP50, res.AgeP99, res.AgeMax, res.AgePairs, res.AgeMissing, res.FalseFailures, res.FalseIdle, res.HeapMB, res.LoadAvg[0], res.LoadAvg[1])
	if res.FalseFailures > 0 {
		t.Errorf("%d failed events about %d live members (%d in the idle window)", res.FalseFailures, res.FalseMembers, res.FalseIdle)
	}
	if res.AgePairs == 0 {
		t.Fatal("no load age sampled")
	}
	// A pair may lack a load for a moment (a member that flapped, or one
	// whose state the observer must fetch in full): at most 0.1% of the
	// samples (a 100-node run without -race had 8 of 59,400).
	if all := res.AgePairs + res.AgeMissing; res.AgeMissing*1000 > all {
		t.Errorf("%d of %d sampled (observer, member) pairs without load", res.AgeMissing, all)
	}
	if res.AgeP99 > 3*time.Second {
		t.Errorf("load age p99 %v, above 3 s", res.AgeP99)
	}
	if res.BytesOut > 10_000 {
		t.Errorf("%.0f B/s per node on the wire, above 10,000", res.BytesOut)
	}
	if len(res.DetectAll) != 1 || len(res.Join) != 1 {
		t.Errorf("%d kills timed, %d joins timed; want 1 each", len(res.DetectAll), len(res.Join))
	}
}
