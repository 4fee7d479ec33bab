package agent

import (
	"strings"
	"time"

	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
)

// Preset is what a profile (--profile) sets, in one place: the mesh's
// timings, the election's tick, the proxy's timeouts and what the profile
// turns on. Settings given explicitly win over the preset's (Config.preset).
type Preset struct {
	// Name is the --profile value.
	Name string
	// Summary says what the profile is for (docs/config.md).
	Summary string
	// Mesh is the mesh profile (mesh.Config.Profile) whose memberlist and
	// serf timings the agent runs: probe and gossip intervals, suspicion,
	// reap and reconnect times (mesh/profile.go holds them; the same name
	// serves callers of the mesh package directly).
	Mesh string
	// P2P carries memberlist over libp2p: the --p2p-* settings apply, the
	// node name becomes the peer ID, and the mesh checks the gossip key.
	P2P bool
	// ElectionTick is the election's tick. The lease is LeaseTicks (10)
	// ticks, renewed every RenewTicks (3), with a margin of DriftTicks (2)
	// that covers the tick granularity and clock rate drift up to 10%: a
	// coordinator acts within 10 ticks of a quorum's grant, members that
	// hear no renewal for that long after the renewal they missed (13
	// ticks) elect another, a side without a quorum stops acting within
	// it, and a coordinator stopped for less than it keeps its role.
	ElectionTick time.Duration
	// ProxyDialTimeout bounds the forwarding proxy's connect to a member;
	// ProxyResponseHeaderTimeout its wait for the member's response headers.
	ProxyDialTimeout           time.Duration
	ProxyResponseHeaderTimeout time.Duration
	// DebugHooks serves the test hooks (POST /v1/debug/load,
	// POST /v1/leader/act) without --enable-debug.
	DebugHooks bool
}

// presets is the table of profiles.
var presets = []Preset{
	{Name: mesh.ProfileLAN, Mesh: mesh.ProfileLAN, Summary: "a LAN or a data centre: memberlist's and serf's own LAN timings (a stock serf agent can share the pool)",
		ElectionTick:     100 * time.Millisecond,
		ProxyDialTimeout: loadshare.DefaultDialTimeout, ProxyResponseHeaderTimeout: loadshare.DefaultResponseHeaderTimeout},
	{Name: mesh.ProfileWAN, Mesh: mesh.ProfileWAN, Summary: "members across regions: memberlist's and serf's WAN timings",
		ElectionTick:     500 * time.Millisecond,
		ProxyDialTimeout: loadshare.DefaultDialTimeout, ProxyResponseHeaderTimeout: loadshare.DefaultResponseHeaderTimeout},
	{Name: mesh.ProfileLocal, Mesh: mesh.ProfileLocal, Summary: "tests and dev meshes on one host: fast timings; serves the test hooks",
		ElectionTick:     100 * time.Millisecond,
		ProxyDialTimeout: loadshare.DefaultDialTimeout, ProxyResponseHeaderTimeout: loadshare.DefaultResponseHeaderTimeout,
		DebugHooks: true},
	{Name: mesh.ProfileP2P, Mesh: mesh.ProfileP2P, P2P: true, Summary: "memberlist over libp2p (QUIC/TCP, NAT traversal, relays): LAN timings with longer stream timeouts; the node name is the peer ID",
		ElectionTick:     200 * time.Millisecond,
		ProxyDialTimeout: loadshare.DefaultDialTimeout, ProxyResponseHeaderTimeout: loadshare.DefaultResponseHeaderTimeout},
}

// Presets returns the profiles' presets.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// LookupPreset returns the preset of a profile.
func LookupPreset(name string) (Preset, bool) {
	for _, p := range presets {
		if p.Name == name {
			return p, true
		}
	}
	return Preset{}, false
}

// profileNames is "lan, wan, local or p2p".
func profileNames() string {
	var names []string
	for _, p := range presets {
		names = append(names, p.Name)
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// preset is c's profile's preset with the explicit settings over it
// (--enable-debug turns the test hooks on on any profile). Validate refuses
// an unknown profile; a Config that skipped it gets lan's.
func (c *Config) preset() Preset {
	p, ok := LookupPreset(c.Profile)
	if !ok {
		p = presets[0]
	}
	if c.EnableDebug {
		p.DebugHooks = true
	}
	return p
}
