// Package nemesis is Shoal's randomized fault test (build tag "nemesis"):
// 5-7 real `shoal agent` processes, each in a network namespace of its own
// on one bridge, under a seeded schedule of faults (kill -9, kill and
// restart within 1-3 s, SIGSTOP/SIGCONT of one node and of a majority,
// partitions both ways and one way, graceful leave and rejoin) while
// synthetic load makes the scaler act, through the exec provider (a
// command that appends each action to one shared log, the stand-in for
// the real resource) or the webhook provider (a receiver in the test that
// refuses stale terms).
//
// The checker (checker.go, untagged and unit-tested on synthetic logs)
// asserts over all logs: (a) acting intervals of different holders never
// overlap; (b) the shared log is a chain, each action's from equal to the
// previous to, none repeated, terms never decreasing; (c) after each fault
// heals, a coordinator acts within the liveness bound; (d) no action while
// leaving; (e) a side without quorum stops acting within the lease.
//
// Why namespaces and not 127.x.y.z addresses with iptables on lo: the
// mesh's TCP dials (push/pull, fallback probes) do not bind the gossip
// address, so on loopback their source is 127.0.0.1 and a rule by source
// cannot tell which agent opened a connection; a partition would leak over
// TCP. In a namespace each agent has one address, and a cut is a DROP rule
// in the sender's own namespace, gone with it.
//
// scripts/nemesis-test runs the short form (CI) and, with -seed and
// -duration, the long form.
package nemesis
