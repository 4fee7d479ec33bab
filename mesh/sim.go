package mesh

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// SimConfig describes a simulated mesh for the dissemination scheme. The
// simulation runs the real Table (Select, Merge) and the real packet
// encoding, so bytes and ages are those the agents would produce; only the
// network (random peer choice, loss, fixed latency) and time are modelled.
type SimConfig struct {
	Nodes          int
	GossipInterval time.Duration
	Fanout         int
	PacketBudget   int
	MaxForwardAge  time.Duration
	// Loss is the probability a packet is lost; Latency its one-way delay.
	Loss    float64
	Latency time.Duration
	// Duration is the simulated time; ages are measured after Warmup.
	Duration, Warmup time.Duration
	// Encrypted adds the AES-GCM framing overhead to every packet.
	Encrypted bool
	Seed      uint64
	// Rounds sets Table.Rounds (-1: plain freshest-first, 0: the default).
	Rounds int
	// FullRounds and FullEvery as in Config (0: the defaults; FullRounds
	// -1: every entry in full).
	FullRounds int
	FullEvery  int
	// ChangeRate is how often, per second, each node's load moves past a
	// bucket and it publishes a new state.
	ChangeRate float64
	// ProbeInterval, when set, models memberlist's probes: each node pings
	// one random member this often and the ack carries AckBudget bytes of
	// the probed node's entries (the pull half; it costs no extra packets).
	ProbeInterval time.Duration
	AckBudget     int
}

// SimResult holds the figures of one simulation.
type SimResult struct {
	// BytesPerNodePerSec is the mean bytes a node sends per second, packet
	// framing included, IP/UDP headers (28 bytes) included.
	BytesPerNodePerSec float64
	// AgeP50/P99/Max are over (observer, member) pairs sampled every
	// gossip interval after the warm-up.
	AgeP50, AgeP99, AgeMax time.Duration
	// Missing counts sampled pairs where the observer had no entry at all.
	Missing int
	// Wrong is the share of sampled pairs where the observer held a state
	// other than the member's current one.
	Wrong float64
}

// SimulateDissemination runs the load gossip of cfg.Nodes nodes.
func SimulateDissemination(cfg SimConfig) SimResult {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	n := cfg.Nodes
	names := make([]string, n)
	tables := make([]*Table, n)
	phase := make([]time.Duration, n)
	for i := range names {
		names[i] = nodeName(i)
		tables[i] = NewTable(names[i])
		switch {
		case cfg.FullRounds < 0:
			tables[i].FullRounds = 0
		case cfg.FullRounds > 0:
			tables[i].FullRounds = cfg.FullRounds
		}
		if cfg.Rounds != 0 {
			tables[i].Rounds = max(cfg.Rounds, 0)
		}
		phase[i] = time.Duration(rng.Int64N(int64(cfg.GossipInterval)))
	}
	// A date of this decade, so versions have their real size on the wire.
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	fullEvery := cfg.FullEvery
	if fullEvery == 0 {
		fullEvery = 10
	}
	mkState := func() []byte {
		return EncodeState(nil, metrics.Load{CPUPercent: float64(rng.IntN(10000)) / 100, MemPercent: 61, Cores: 8, Load1: 3.1, NetRxBps: 1.2e6, NetTxBps: 8e5, MemAvailable: 12 << 30})
	}
	current := make([][]byte, n)
	for i := range current {
		current[i] = mkState()
	}
	round := make([]int, n)
	version := make([]uint64, n) // each node's version clock
	probePhase := make([]time.Duration, n)
	if cfg.ProbeInterval > 0 {
		for i := range probePhase {
			probePhase[i] = time.Duration(rng.Int64N(int64(cfg.ProbeInterval)))
		}
	}
	wrong, sampled := 0, 0
	overhead := 3 + 28 // framing + label length byte + IP/UDP
	if cfg.Encrypted {
		overhead = 2 + nonceSize + 16 + 28
	}
	type delivery struct {
		at      time.Time
		to      int
		entries []Entry
	}
	var inflight []delivery
	var bytesSent int64
	step := cfg.GossipInterval / 20
	if step <= 0 {
		step = time.Millisecond
	}
	var ages []time.Duration
	missing := 0
	nextSample := start.Add(cfg.Warmup)
	for t := time.Duration(0); t < cfg.Duration; t += step {
		now := start.Add(t)
		// Deliver what has arrived.
		keep := inflight[:0]
		for _, d := range inflight {
			if d.at.After(now) {
				keep = append(keep, d)
				continue
			}
			arrived := now.Sub(d.at) // time spent waiting for this step
			for _, e := range d.entries {
				e.Age += cfg.Latency + arrived
				tables[d.to].Merge(e, now)
			}
		}
		inflight = keep
		// Nodes whose round falls in this step send.
		for i := 0; i < n; i++ {
			if (t-phase[i]+cfg.GossipInterval*1000)%cfg.GossipInterval >= step {
				continue
			}
			if cfg.ChangeRate > 0 && rng.Float64() < cfg.ChangeRate*cfg.GossipInterval.Seconds() {
				current[i] = mkState()
			}
			version[i] = max(version[i]+1, VersionAt(now))
			tables[i].SetSelf(current[i], version[i], now)
			round[i]++
			entries := tables[i].Select(now, cfg.PacketBudget, cfg.MaxForwardAge, nil, round[i]%fullEvery == 0)
			size := len(AppendEntries(nil, VersionAt(now), entries)) + overhead
			for f := 0; f < cfg.Fanout; f++ {
				j := rng.IntN(n - 1)
				if j >= i {
					j++
				}
				bytesSent += int64(size)
				if rng.Float64() < cfg.Loss {
					continue
				}
				inflight = append(inflight, delivery{at: now.Add(cfg.Latency), to: j, entries: entries})
			}
		}
		// Probes: the ack brings the probed node's entries back.
		for i := 0; cfg.ProbeInterval > 0 && i < n; i++ {
			if (t-probePhase[i]+cfg.ProbeInterval*1000)%cfg.ProbeInterval >= step {
				continue
			}
			j := rng.IntN(n - 1)
			if j >= i {
				j++
			}
			version[j] = max(version[j]+1, VersionAt(now))
			tables[j].SetSelf(current[j], version[j], now)
			entries := tables[j].Select(now, cfg.AckBudget, cfg.MaxForwardAge, nil, false)
			bytesSent += int64(len(AppendEntries(nil, VersionAt(now), entries)))
			if rng.Float64() < cfg.Loss {
				continue
			}
			inflight = append(inflight, delivery{at: now.Add(2 * cfg.Latency), to: i, entries: entries})
		}
		if !now.Before(nextSample) {
			nextSample = nextSample.Add(cfg.GossipInterval)
			for k := 0; k < 200; k++ {
				o, m := rng.IntN(n), rng.IntN(n)
				if o == m {
					continue
				}
				st, origin, ok := tables[o].Get(names[m])
				if !ok {
					missing++
					continue
				}
				sampled++
				if string(st) != string(current[m]) {
					wrong++
				}
				ages = append(ages, now.Sub(origin))
			}
		}
	}
	res := SimResult{BytesPerNodePerSec: float64(bytesSent) / float64(n) / cfg.Duration.Seconds(), Missing: missing}
	if sampled > 0 {
		res.Wrong = float64(wrong) / float64(sampled)
	}
	if len(ages) > 0 {
		slices.Sort(ages)
		res.AgeP50 = ages[len(ages)/2]
		res.AgeP99 = ages[len(ages)*99/100]
		res.AgeMax = ages[len(ages)-1]
	}
	return res
}

func nodeName(i int) string {
	const digits = "0123456789"
	b := []byte("node-0000")
	for k := 8; k >= 5; k-- {
		b[k] = digits[i%10]
		i /= 10
	}
	return string(b)
}
