// Package loadshare decides where a piece of work goes in a Shoal mesh: it
// turns the gossiped load table into weights, picks members with one of
// several strategies, and forwards HTTP requests to the picked member.
//
// It imports the standard library only (the proxy uses net/http and
// net/http/httputil), and it knows nothing of serf, libp2p or the agent: the
// caller hands it a []Candidate built from the mesh View, and a seeded
// *rand.Rand. That keeps it testable, and lets package sim run the same code
// in a simulation of a hundred hosts.
//
// # Load, weight and staleness
//
// A Candidate carries a member's capacity (the "capacity" tag, else its
// cores), its CPU, memory and network figures, its run queue, and the Age of
// those figures. Load is the fraction of capacity in use (the largest of CPU,
// run queue per core, memory and network); Headroom is 1 − Load with a floor;
// Share is the service rate new work can expect (Cap / (1 + Cap·Load)).
//
// Old information counts for less. Weight blends the load-based weight
// toward the capacity-only weight with a half-life (WeightParams.HalfLife):
//
//	Weight = Cap · (1 − 2^(−Age/HalfLife) · (1 − Headroom))
//
// and a member whose information is older than MaxAge, or that is not
// alive, weighs 0 and is never picked.
//
// # Strategies
//
//   - "p2c" (the default): power-of-two-choices. Two distinct members are
//     sampled in proportion to capacity; the one with the higher Share wins.
//     The comparison is trusted with probability 2^(−age/CompareHalfLife),
//     otherwise the first sample is kept (capacity-weighted random). A
//     member must be sampled before it can win, so however stale the
//     information its share of work is at most twice its capacity share:
//     stale information cannot herd everyone onto one member.
//   - "weighted-random": random in proportion to Weight.
//   - "swrr": nginx's smooth weighted round-robin over Weight.
//   - "local-first": the local member while its Load is below a threshold,
//     else p2c over the others.
//   - "round-robin", "random", "least-loaded": baselines. Least-loaded herds
//     on stale information: every sender sends to the member that looked
//     idle.
//
// Package sim measures them all against each other with stale information;
// run (cd tools && go run ./cmd/lssim) for the table.
//
// # Concurrency
//
// Every Picker returned by New is safe for concurrent use; a mutex serialises
// picks. Weight, Load, Share, Headroom, Confidence and Filter are pure. A
// Proxy is safe for concurrent use.
//
// # Usage
//
//	p, err := loadshare.New(loadshare.Default, loadshare.Options{
//		Rand: rand.New(rand.NewPCG(seed, 0)),
//	})
//	if err != nil { ... }
//	cands := loadshare.Filter(fromView(view), loadshare.HasTag("service", "api"), loadshare.IsAlive)
//	c, err := p.Pick(cands)
//	if errors.Is(err, loadshare.ErrNoCandidate) { ... }
//	send(c.Addr)
//
//	three, err := loadshare.PickN(p, cands, 3) // three distinct members
//
//	proxy, err := loadshare.NewProxy(loadshare.ProxyConfig{
//		Members: func() []loadshare.Candidate { return apiMembers(view) },
//		Picker:  p,
//	})
//	http.ListenAndServe("127.0.0.1:8080", proxy)
//
// The proxy answers 503 when no member is eligible and 502 when every member
// it tried failed; a member that refuses a connection is left out for
// ProxyConfig.CoolOff.
package loadshare
