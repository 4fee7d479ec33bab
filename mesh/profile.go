package mesh

import (
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// profile is one profile's timings, all in one place: memberlist's failure
// detector and gossip, serf's where the profile changes them, and the
// interval of Shoal's own load packets. The agent's presets
// (agent/profile.go) name a row of this table for the mesh and add the
// agent's own timings (election tick, proxy).
type profile struct {
	// memberlist returns memberlist's config for cfg, and adjusts serf's
	// sc to go with it.
	memberlist func(cfg Config, sc *serf.Config) *memberlist.Config
	// gossipInterval is the load relay's round (Config.GossipInterval)
	// when Config.GossipInterval is 0: a round passes on one step of each
	// broadcast, so it sets how fast a load crosses the mesh (about
	// log2(n) rounds), not how many bytes a node sends.
	gossipInterval time.Duration
	// deadNodeReclaim: a node that comes back at a new address (a
	// rescheduled pod) may reclaim its name once its old self has been dead
	// this long.
	deadNodeReclaim time.Duration
}

var profiles = map[string]profile{
	// memberlist's and serf's own defaults, so that a stock serf agent on
	// the same profile can share the pool.
	ProfileLAN: {memberlist: lanTimings, gossipInterval: 100 * time.Millisecond, deadNodeReclaim: 30 * time.Second},
	ProfileWAN: {memberlist: wanTimings, gossipInterval: 250 * time.Millisecond, deadNodeReclaim: 30 * time.Second},
	// Tests and dev meshes on one machine.
	ProfileLocal: {memberlist: localTimings, gossipInterval: 100 * time.Millisecond, deadNodeReclaim: time.Second},
	// lan's, with stream timeouts for relays and NATs (or local's with
	// P2PConfig.FastTimings).
	ProfileP2P: {memberlist: p2pTimings, gossipInterval: 100 * time.Millisecond, deadNodeReclaim: 30 * time.Second},
}

// ValidProfile reports whether name is a profile: lan, wan, local or p2p.
func ValidProfile(name string) bool {
	_, ok := profiles[name]
	return ok
}

func lanTimings(Config, *serf.Config) *memberlist.Config { return memberlist.DefaultLANConfig() }

func wanTimings(Config, *serf.Config) *memberlist.Config { return memberlist.DefaultWANConfig() }

func localTimings(_ Config, sc *serf.Config) *memberlist.Config {
	mc := fastTimings(sc)
	sc.TombstoneTimeout = 30 * time.Second
	sc.ReconnectTimeout = 30 * time.Second
	// A leave waits until its message is out (or this long), then lets
	// it spread; shorter cut it off on a loaded machine, and the others
	// took the leaving node for failed.
	sc.BroadcastTimeout = 3 * time.Second
	sc.LeavePropagateDelay = 500 * time.Millisecond
	return mc
}

func p2pTimings(cfg Config, sc *serf.Config) *memberlist.Config {
	if p, ok := cfg.Transport.(p2pSpec); ok && p.cfg.FastTimings {
		mc := fastTimings(sc)
		// A first stream to a peer is a QUIC handshake, Noise and
		// identify, not a loopback TCP connect: 500 ms failed every
		// join under the race detector on a loaded machine.
		mc.TCPTimeout = 5 * time.Second
		sc.BroadcastTimeout = time.Second
		sc.LeavePropagateDelay = 200 * time.Millisecond
		return mc
	}
	mc := memberlist.DefaultLANConfig()
	// Streams cross relays and NATs: give them WAN's time.
	mc.TCPTimeout = 10 * time.Second
	return mc
}

// fastTimings is the local profile's memberlist config (tests, dev meshes),
// and sets serf's reap and reconnect intervals to match.
func fastTimings(sc *serf.Config) *memberlist.Config {
	mc := memberlist.DefaultLocalConfig()
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.GossipInterval = 50 * time.Millisecond
	mc.SuspicionMult = 2
	mc.PushPullInterval = 5 * time.Second
	// memberlist's local default (2) sends a broadcast twice a node below
	// ten members: a join then missed a member in about one run of four
	// of five nodes, which waited for push-pull (5-10 s to converge
	// instead of 60 ms). LAN's 4 makes such a miss rare.
	mc.RetransmitMult = 4
	mc.TCPTimeout = 500 * time.Millisecond
	sc.ReapInterval = time.Second
	sc.ReconnectInterval = time.Second
	return mc
}
