package agent

import (
	"time"

	"github.com/shoalmesh/shoal/client"
	prometheus "github.com/shoalmesh/shoal/internal/prom"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// descMaker returns a constructor of metric descriptions named prefix+name.
func descMaker(prefix string) func(name, help string, labels ...string) *prometheus.Desc {
	return func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prefix+name, help, labels, nil)
	}
}

// collectorDeps is what collector reads from the agent at scrape time, and
// all it reaches: the agent builds it in one place (agentCollectorDeps).
type collectorDeps struct {
	// node and profile label shoal_build_info.
	node    func() string
	profile string
	// view returns the mesh's current View, nil while there is no mesh
	// (then only shoal_build_info is collected); stats the mesh's gossip
	// counters, read only when view is not nil.
	view  func() *mesh.View
	stats func() *mesh.Stats
	// latest returns the monitor's smoothed sample of this node (ok false
	// before the first); sampleErrors counts the samples that failed.
	latest       func() (metrics.Load, bool)
	sampleErrors func() uint64
}

// agentCollectorDeps wires collector to the agent's mesh and monitor. They
// are read at each scrape: the handler may be built before Start makes
// them, and on p2p Start renames the node.
func agentCollectorDeps(a *Agent) collectorDeps {
	return collectorDeps{
		node:         func() string { return a.cfg.NodeName },
		profile:      a.cfg.Profile,
		view:         a.meshView,
		stats:        func() *mesh.Stats { return a.mesh.Stats() },
		latest:       func() (metrics.Load, bool) { return a.monitor.Latest() },
		sampleErrors: func() uint64 { return a.monitor.Errors() },
	}
}

// collector reads the mesh and the monitor at scrape time: no goroutine,
// no copies of state between scrapes.
type collector struct {
	deps                                  collectorDeps
	members, cpu, mem, age, netRx, netTx  *prometheus.Desc
	selfCPU, selfMem, selfCores, selfLoad *prometheus.Desc
	pkts, bytes, loadPkts, loadBytes      *prometheus.Desc
	dropped, sendErr, sampleErr, info     *prometheus.Desc
	stale, rounds, rejoins                *prometheus.Desc
}

func newCollector(deps collectorDeps) *collector {
	d := descMaker("shoal_")
	return &collector{
		deps:      deps,
		members:   d("members", "Members this agent knows, by status.", "status"),
		cpu:       d("member_cpu_percent", "Last gossiped CPU busy percent of each member.", "member"),
		mem:       d("member_memory_percent", "Last gossiped memory used percent of each member.", "member"),
		netRx:     d("member_network_receive_bytes_per_second", "Last gossiped network receive rate of each member.", "member"),
		netTx:     d("member_network_transmit_bytes_per_second", "Last gossiped network transmit rate of each member.", "member"),
		age:       d("member_load_age_seconds", "Age of the load information held for each member.", "member"),
		selfCPU:   d("cpu_percent", "This node's smoothed CPU busy percent."),
		selfMem:   d("memory_percent", "This node's smoothed memory used percent."),
		selfCores: d("cores", "CPU this node may use, in cores."),
		selfLoad:  d("load1", "This node's 1-minute load average."),
		pkts:      d("gossip_packets_total", "Packets through the gossip port (memberlist's and Shoal's).", "direction"),
		bytes:     d("gossip_bytes_total", "Bytes through the gossip port, streams included.", "direction"),
		loadPkts:  d("gossip_load_packets_total", "Shoal load packets through the gossip port.", "direction"),
		loadBytes: d("gossip_load_bytes_total", "Bytes of Shoal load packets through the gossip port.", "direction"),
		dropped: d("gossip_dropped_total", "Packets and streams dropped at the gossip port (Shoal's and memberlist's), by reason: "+
			"decrypt (not sealed with an installed key), label (another mesh's label), decode (malformed), oversize, "+
			"not_member (an election message from a non-member), replay (an election message refused as replayed or stale; also in gossip_stale_total{kind=\"election\"}), "+
			"queue_full (memberlist's handler queue or push/pull limit), timeout (a stream that stalled).", "reason"),
		sendErr: d("gossip_send_errors_total", "Packets the gossip port failed to send."),
		rounds: d("gossip_rounds_total", "Rounds of the load relay (GossipInterval): run (state=run), or slept through "+
			"with nothing to pass on, confirm or ask for (state=slept).", "state"),
		rejoins: d("gossip_rejoins_total", "Push-pulls started with a member held failed because a packet came from it "+
			"(a healed partition), by result: joined or failed (unreachable still, as after a one-way cut).", "result"),
		stale: d("gossip_stale_total", "Gossip refused as not new: load entries older than (kind=load_older) or the same version as (load_same) the one held, "+
			"election messages replayed or stale (election). Late copies count too; a replay shows as a rise.", "kind"),
		sampleErr: d("sample_errors_total", "Load samples that failed."),
		info:      d("build_info", "Build and node information.", "version", "node", "profile"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.cpu, c.mem, c.age, c.netRx, c.netTx, c.selfCPU, c.selfMem, c.selfCores, c.selfLoad, c.pkts, c.bytes, c.loadPkts, c.loadBytes, c.dropped, c.sendErr, c.sampleErr, c.info, c.stale, c.rounds, c.rejoins} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	deps := c.deps
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	ctr := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g(c.info, 1, Version, deps.node(), deps.profile)
	v := deps.view()
	if v == nil {
		return
	}
	counts := map[string]int{mesh.StatusAlive: 0, mesh.StatusLeaving: 0, mesh.StatusLeft: 0, mesh.StatusFailed: 0}
	now := time.Now()
	for _, m := range v.Members() {
		counts[m.Status]++
		if m.Load != nil && m.Status == mesh.StatusAlive {
			g(c.cpu, m.Load.CPUPercent, m.Name)
			g(c.mem, m.Load.MemPercent, m.Name)
			g(c.netRx, m.Load.NetRxBps, m.Name)
			g(c.netTx, m.Load.NetTxBps, m.Name)
			g(c.age, m.LoadAge(now).Seconds(), m.Name)
		}
	}
	for s, n := range counts {
		g(c.members, float64(n), s)
	}
	if l, ok := deps.latest(); ok {
		g(c.selfCPU, l.CPUPercent)
		g(c.selfMem, l.MemPercent)
		g(c.selfCores, l.Cores)
		g(c.selfLoad, l.Load1)
	}
	s := deps.stats()
	ctr(c.pkts, s.PacketsIn.Load(), "in")
	ctr(c.pkts, s.PacketsOut.Load(), "out")
	ctr(c.bytes, s.BytesIn.Load(), "in")
	ctr(c.bytes, s.BytesOut.Load(), "out")
	ctr(c.loadPkts, s.ShoalPacketsIn.Load(), "in")
	ctr(c.loadPkts, s.ShoalPacketsOut.Load(), "out")
	ctr(c.loadBytes, s.ShoalBytesIn.Load(), "in")
	ctr(c.loadBytes, s.ShoalBytesOut.Load(), "out")
	for r := range mesh.NumDropReasons {
		ctr(c.dropped, s.DroppedBy[r].Load(), mesh.DropReason(r).String())
	}
	ctr(c.sendErr, s.SendErrors.Load())
	ctr(c.rounds, s.Rounds.Load(), "run")
	ctr(c.rounds, s.RoundsSlept.Load(), "slept")
	failed := s.RejoinsFailed.Load()
	ctr(c.rejoins, s.Rejoins.Load()-min(failed, s.Rejoins.Load()), "joined")
	ctr(c.rejoins, failed, "failed")
	ctr(c.stale, s.StaleEntries.Load(), "load_older")
	ctr(c.stale, s.SameEntries.Load(), "load_same")
	ctr(c.stale, s.StaleElections.Load(), "election")
	ctr(c.sampleErr, deps.sampleErrors())
}

// operatorCollectorDeps is what operatorCollector reads from the agent at
// scrape time, and all it reaches: the agent builds it in one place
// (agentOperatorCollectorDeps).
type operatorCollectorDeps struct {
	// view returns the mesh's current View, nil while there is no mesh.
	view func() *mesh.View
	// leader returns this node's view of the election, nil without one.
	leader func() *client.Leader
	// stream is the monitor stream (events_stream.go), whose listeners
	// and counts are exported.
	stream *broadcaster
}

// agentOperatorCollectorDeps wires operatorCollector to the agent's mesh,
// election and monitor stream; the mesh and the election are read at each
// scrape.
func agentOperatorCollectorDeps(a *Agent) operatorCollectorDeps {
	return operatorCollectorDeps{view: a.meshView, leader: a.leader, stream: a.dashState().stream}
}

// operatorCollector has the figures the dashboard and the example alert
// rules (deploy/prometheus/alerts.yml) lean on, beyond collector's.
type operatorCollector struct {
	deps                                operatorCollectorDeps
	lastHeard, coordKnown, monListeners *prometheus.Desc
	monPublished, monDropped            *prometheus.Desc
}

func newOperatorCollector(deps operatorCollectorDeps) *operatorCollector {
	return &operatorCollector{
		deps:         deps,
		lastHeard:    prometheus.NewDesc("shoal_member_last_heard_seconds", "Time since the newest information from each member was published (any status; grows while a member is silent).", []string{"member"}, nil),
		coordKnown:   prometheus.NewDesc("shoal_coordinator_known", "1 while this agent names a coordinator.", nil, nil),
		monListeners: prometheus.NewDesc("shoal_monitor_listeners", "Clients streaming this agent's log and events (shoal monitor).", nil, nil),
		monPublished: prometheus.NewDesc("shoal_monitor_entries_total", "Log records and events streamed to monitor clients.", nil, nil),
		monDropped:   prometheus.NewDesc("shoal_monitor_dropped_total", "Monitor entries dropped because a client fell behind.", nil, nil),
	}
}

func (c *operatorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.lastHeard, c.coordKnown, c.monListeners, c.monPublished, c.monDropped} {
		ch <- d
	}
}

func (c *operatorCollector) Collect(ch chan<- prometheus.Metric) {
	if v := c.deps.view(); v != nil {
		now := time.Now()
		for _, m := range v.Members() {
			if m.Load != nil && !m.Self {
				ch <- prometheus.MustNewConstMetric(c.lastHeard, prometheus.GaugeValue, m.LoadAge(now).Seconds(), m.Name)
			}
		}
	}
	if l := c.deps.leader(); l != nil {
		known := 0.0
		if l.Coordinator != "" {
			known = 1
		}
		ch <- prometheus.MustNewConstMetric(c.coordKnown, prometheus.GaugeValue, known)
	}
	b := c.deps.stream
	ch <- prometheus.MustNewConstMetric(c.monListeners, prometheus.GaugeValue, float64(b.n.Load()))
	ch <- prometheus.MustNewConstMetric(c.monPublished, prometheus.CounterValue, float64(b.published.Load()))
	ch <- prometheus.MustNewConstMetric(c.monDropped, prometheus.CounterValue, float64(b.dropped.Load()))
}

// p2pCollectorDeps is what p2pCollector reads from the mesh at scrape
// time, and all it reaches: the agent builds it in one place
// (agentP2PCollectorDeps).
type p2pCollectorDeps struct {
	// stats returns the p2p transport's counters, nil on another transport.
	stats func() *mesh.P2PStats
	// view returns the mesh's current View.
	view func() *mesh.View
	// peerConn says how this node reaches the member named name:
	// mesh.ConnDirect, mesh.ConnRelayed, mesh.ConnIdle or mesh.ConnNone
	// ("" off p2p).
	peerConn func(name string) string
}

// agentP2PCollectorDeps wires p2pCollector to the agent's mesh, which runs
// by then: the collector is registered only when it does, on p2p.
func agentP2PCollectorDeps(a *Agent) p2pCollectorDeps {
	m := a.mesh
	return p2pCollectorDeps{stats: m.P2PStats, view: m.View, peerConn: m.PeerConn}
}

// p2pCollector has the p2p transport's counters and how members are
// reached; registered only on the p2p profile.
type p2pCollector struct {
	deps                              p2pCollectorDeps
	refused, drops, dialFail, bootErr *prometheus.Desc
	packets, punches, upgrades, peers *prometheus.Desc
	retries, trims                    *prometheus.Desc
}

func newP2PCollector(deps p2pCollectorDeps) *p2pCollector {
	d := descMaker("shoal_p2p_")
	return &p2pCollector{
		deps:     deps,
		refused:  d("refused_total", "Peers refused: reason=key (could not prove the mesh key), gater (refused lately or not on the allow-list).", "reason"),
		drops:    d("queue_drops_total", "Packets dropped because a peer's send queue was full."),
		dialFail: d("dial_failures_total", "Failed attempts to open a stream to a peer."),
		bootErr:  d("bootstrap_failures_total", "Failed attempts to reach a bootstrap peer (retried with backoff)."),
		packets:  d("packets_sent_total", "Packets written, by connection: direct or relayed (through a circuit relay).", "conn"),
		punches:  d("hole_punches_total", "Hole-punch attempts finished, by result: direct or failed.", "result"),
		upgrades: d("upgrades_total", "Packet streams moved from a relayed connection to a direct one."),
		peers:    d("members", "Alive members by how this node reaches them: direct, relayed, idle (connection closed as idle, --p2p-idle-conn-timeout; the next packet reconnects) or none.", "conn"),
		retries:  d("punch_retries_total", "Relayed connections closed so that a new one starts another hole punch."),
		trims:    d("conns_trimmed_total", "Direct connections closed as unused, by reason: idle (no packet either way for a while, with more peers connected than the working set) or duplicate (a second connection to a peer that carried no stream).", "reason"),
	}
}

func (c *p2pCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.refused, c.drops, c.dialFail, c.bootErr, c.packets, c.punches, c.upgrades, c.peers, c.retries, c.trims} {
		ch <- d
	}
}

func (c *p2pCollector) Collect(ch chan<- prometheus.Metric) {
	ps := c.deps.stats()
	if ps == nil {
		return
	}
	ctr := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	ctr(c.refused, ps.AuthRefused.Load(), "key")
	ctr(c.refused, ps.GaterRefused.Load(), "gater")
	ctr(c.drops, ps.QueueDrops.Load())
	ctr(c.dialFail, ps.DialFailures.Load())
	ctr(c.bootErr, ps.BootstrapFailures.Load())
	ctr(c.packets, ps.PacketsDirect.Load(), mesh.ConnDirect)
	ctr(c.packets, ps.PacketsRelayed.Load(), mesh.ConnRelayed)
	punches, direct := ps.HolePunches.Load(), ps.HolePunchesDirect.Load()
	ctr(c.punches, direct, "direct")
	ctr(c.punches, punches-min(direct, punches), "failed")
	ctr(c.upgrades, ps.Upgrades.Load())
	ctr(c.retries, ps.PunchRetries.Load())
	ctr(c.trims, ps.IdleTrims.Load(), "idle")
	ctr(c.trims, ps.DuplicateTrims.Load(), "duplicate")
	conns := map[string]int{mesh.ConnDirect: 0, mesh.ConnRelayed: 0, mesh.ConnIdle: 0, mesh.ConnNone: 0}
	for _, m := range c.deps.view().Members() {
		if m.Self || m.Status != mesh.StatusAlive {
			continue
		}
		if k := c.deps.peerConn(m.Name); k != "" {
			conns[k]++
		}
	}
	for k, n := range conns {
		ch <- prometheus.MustNewConstMetric(c.peers, prometheus.GaugeValue, float64(n), k)
	}
}
