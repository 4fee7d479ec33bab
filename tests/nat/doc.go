// Package nat runs the p2p profile across real NATs (build tag "nat").
//
// Each test builds hosts out of Linux network namespaces: a "public"
// network (a bridge) with a relay agent on it, and two private networks,
// each behind a NAT router made of a namespace with iptables MASQUERADE and
// a firewall that drops unsolicited traffic from outside. Every address is
// in 198.18.0.0/15, the range set aside for network tests, and no
// namespace has a route out of what the test made:
//
//	198.18.1.2 h1 ── 198.18.1.1 nat1 198.18.0.1 ─┐
//	                                             ├─ br0 ── 198.18.0.10 relay
//	198.18.2.2 h2 ── 198.18.2.1 nat2 198.18.0.2 ─┘
//
// The agents are the real binary, started with `ip netns exec`, and are
// asked what they see with the real CLI (`shoal members --format json`,
// `shoal info`, `shoal leader --elect`).
//
// Two NAT kinds: "cone" keeps a host's port for every destination (what
// most home routers do), so the two hosts behind it hole punch and their
// connection upgrades to direct; "symmetric" (MASQUERADE --random-fully)
// picks a new port per destination, hole punching cannot work, and the
// gossip keeps flowing through the relay. A third test runs two agents on
// one LAN segment with mDNS and no join list.
//
// It needs root, iproute2 and iptables; it skips with the reason where
// namespaces cannot be made, and fails instead with SHOAL_REQUIRE_NETNS=1
// (scripts/nat-test sets it where they can).
package nat
