package agent

// Shares and availability: what the agent measures where the simple model
// of a cluster of n interchangeable nodes gives formulas. The model says
// each node takes P = N/n of N requests and the cluster is available
// A = 1 - 1/n of the time; the agent counts instead
//
//   - picks: each member GET /v1/pick returned (client.Pick and 'shoal pick'
//     go through it; n=3 counts once for each of the three members);
//   - proxied requests: each request the forwarding proxy sent to a member
//     and got a response for (any status; an attempt that failed to connect
//     and was retried elsewhere counts for the member that answered);
//   - member uptime: the fraction of the time since this agent first saw a
//     member alive during which the View listed it alive, over that whole
//     time ("lifetime") and over the last shareRecent ("recent"). A member
//     first seen down (a failed one from the snapshot) is tracked from the
//     moment it is alive;
//   - service availability: the fraction of the time since this agent
//     first saw a service healthy during which at least one of its members
//     was healthy, over the same two windows. The clock starts at the first
//     healthy moment, not at the first sighting: when an agent starts, no
//     member has a load sample yet (its own takes a sample interval, the
//     others' a gossip round), and that start-up is not the service's
//     downtime. A service never seen healthy has no availability (-1). A member is healthy for service S
//     when GET /v1/pick?service=S could return it: it carries the tag
//     service=S, is alive, has a numeric port tag and a load sample no older
//     than loadshare.DefaultMaxAge (30 s). The mesh's availability is the
//     same for GET /v1/pick without a service: some member alive with a
//     load sample no older than 30 s.
//
// Shares are taken within a service: counts are kept per member and per the
// member's service tag at the time of the pick ("" for members without
// one), and a member's share is its count over its service's total, so the
// shares of a service's members sum to 1.
//
// The tracker (shares) is logic without I/O: observe takes the View's
// members and the time, and returns when it must look again although the
// View has not changed (the moment the freshest load that keeps something
// healthy goes stale). watchShares is the loop: it observes each new View
// (View.Changed) and wakes at that moment, never on a fixed tick.
//
// Memory is bounded: a member is forgotten once the View no longer lists it
// (serf reaped it) or once it has been down longer than the reconnect
// timeout (and, being down, is not tracked again until it is alive), and at
// most shareMaxMembers members are tracked (beyond that,
// the member down longest is forgotten first, and an alive newcomer is not
// tracked while every tracked member is alive). A member's recent window
// keeps at most timelineSpans state changes; a member flapping faster than
// that has its recent window shortened to the changes kept. On /metrics the
// member label takes the tracked members' names and the service label the
// services they offer, so series are bounded by shareMaxMembers.

import (
	"context"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	prometheus "github.com/shoalmesh/shoal/internal/prom"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
)

// The recent window, the tracking cap and the re-check interval while an
// alive member's load is stale. Variables so tests can shorten them.
var (
	shareRecent     = 5 * time.Minute
	shareMaxMembers = 4096
	// shareStaleRecheck: a load that went stale comes back fresh when its
	// member confirms it, which moves the load's time inside the View
	// without publishing a new one; while an alive member is stale, the
	// watcher looks again this often.
	shareStaleRecheck = time.Second
)

// timelineSpans bounds the state changes a timeline keeps for its recent
// window.
const timelineSpans = 32

// span is a state (up or down) from at until the next span.
type span struct {
	at time.Time
	up bool
}

// timeline accumulates the time something was up: since first seen, and
// over a recent window.
type timeline struct {
	first    time.Time
	up       bool
	since    time.Time     // when the current state began
	upBefore time.Duration // time up in [first, since)
	spans    []span        // spans[0] may begin before the recent window
}

func newTimeline(now time.Time, up bool) timeline {
	return timeline{first: now, up: up, since: now, spans: []span{{now, up}}}
}

// set records the state at now.
func (tl *timeline) set(now time.Time, up bool, window time.Duration) {
	if up != tl.up {
		if tl.up {
			tl.upBefore += now.Sub(tl.since)
		}
		tl.up, tl.since = up, now
		tl.spans = append(tl.spans, span{now, up})
	}
	ws := now.Add(-window)
	i := 0
	for i+1 < len(tl.spans) && !tl.spans[i+1].at.After(ws) {
		i++
	}
	if n := len(tl.spans) - timelineSpans; n > i {
		i = n
	}
	if i > 0 {
		tl.spans = append(tl.spans[:0], tl.spans[i:]...)
	}
}

// ratio is the fraction of [first, now] that was up.
func (tl *timeline) ratio(now time.Time) float64 {
	total := now.Sub(tl.first)
	up := tl.upBefore
	if tl.up {
		up += now.Sub(tl.since)
	}
	return fraction(up, total, tl.up)
}

// recent is the fraction of the last window (or since first, if later)
// that was up.
func (tl *timeline) recent(now time.Time, window time.Duration) float64 {
	ws := now.Add(-window)
	if ws.Before(tl.first) {
		ws = tl.first
	}
	if len(tl.spans) > 0 && ws.Before(tl.spans[0].at) {
		ws = tl.spans[0].at // more changes than kept: a shorter window
	}
	var up time.Duration
	for i, s := range tl.spans {
		end := now
		if i+1 < len(tl.spans) {
			end = tl.spans[i+1].at
		}
		start := s.at
		if start.Before(ws) {
			start = ws
		}
		if s.up && end.After(start) {
			up += end.Sub(start)
		}
	}
	return fraction(up, now.Sub(ws), tl.up)
}

// fraction is up/total in [0, 1]; over no time at all, 1 if up now.
func fraction(up, total time.Duration, upNow bool) float64 {
	if total <= 0 {
		if upNow {
			return 1
		}
		return 0
	}
	return math.Min(1, math.Max(0, float64(up)/float64(total)))
}

// shareCounts are one member's counts within one service.
type shareCounts struct {
	picks, proxied atomic.Uint64
}

type memberTrack struct {
	service   string // the member's service tag when last observed
	up        timeline
	downSince time.Time // zero while alive
	epoch     uint64    // the observation that last listed it
	counts    map[string]*shareCounts
}

type serviceTrack struct {
	avail     timeline
	downSince time.Time
}

// shares is the tracker. Safe for concurrent use: counting takes the read
// lock (and the write lock only for a member's first count in a service),
// observe and the reports take the write lock and the read lock.
type shares struct {
	recent      time.Duration
	forgetAfter time.Duration
	maxMembers  int

	mu       sync.RWMutex
	epoch    uint64
	started  bool
	members  map[string]*memberTrack
	services map[string]*serviceTrack
	mesh     timeline
}

func newShares(forgetAfter time.Duration) *shares {
	return &shares{recent: shareRecent, forgetAfter: forgetAfter, maxMembers: shareMaxMembers,
		members: map[string]*memberTrack{}, services: map[string]*serviceTrack{}}
}

// healthy reports whether GET /v1/pick could return m: for a service, with
// service set (the port tag is needed), or for a pick without one.
func healthy(m mesh.Member, now time.Time, service bool) bool {
	if m.Load == nil {
		return false
	}
	c, portOK := Candidate(m, now)
	return (portOK || !service) && loadshare.Eligible(c, loadshare.WeightParams{})
}

// observe records the members' states at now and returns when it must look
// again without a new View (zero: only on a new View).
func (s *shares) observe(ms []mesh.Member, now time.Time) (next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	healthyBy := map[string]int{}
	meshUp := false
	for _, m := range ms {
		alive := m.Status == mesh.StatusAlive
		mt := s.members[m.Name]
		if mt == nil {
			if !alive {
				continue // tracked from the first time it is seen alive
			}
			if mt = s.track(m.Name, now); mt == nil {
				continue
			}
		}
		mt.epoch, mt.service = s.epoch, m.Shoal.Service
		mt.up.set(now, alive, s.recent)
		switch {
		case alive:
			mt.downSince = time.Time{}
		case mt.downSince.IsZero():
			mt.downSince = now
		}
		if svc := m.Shoal.Service; svc != "" {
			if _, ok := healthyBy[svc]; !ok {
				healthyBy[svc] = 0
			}
		}
		if !alive || m.Load == nil {
			continue
		}
		if !healthy(m, now, false) {
			next = earliest(next, now.Add(shareStaleRecheck))
			continue
		}
		meshUp = true
		next = earliest(next, m.LoadAt().Add(loadshare.DefaultMaxAge+time.Millisecond))
		if svc := m.Shoal.Service; svc != "" && healthy(m, now, true) {
			healthyBy[svc]++
		}
	}
	for name, mt := range s.members {
		if mt.epoch != s.epoch {
			delete(s.members, name) // reaped: the View no longer lists it
		} else if !mt.downSince.IsZero() && now.Sub(mt.downSince) > s.forgetAfter {
			delete(s.members, name)
		}
	}
	for svc, n := range healthyBy {
		st := s.services[svc]
		if st == nil {
			if n == 0 || len(s.services) >= s.maxMembers {
				continue // its clock starts when it is first healthy
			}
			st = &serviceTrack{avail: newTimeline(now, n > 0)}
			s.services[svc] = st
		}
		st.avail.set(now, n > 0, s.recent)
		if n > 0 {
			st.downSince = time.Time{}
		} else if st.downSince.IsZero() {
			st.downSince = now
		}
	}
	for svc, st := range s.services {
		if _, offered := healthyBy[svc]; offered {
			continue
		}
		st.avail.set(now, false, s.recent)
		if st.downSince.IsZero() {
			st.downSince = now
		}
		if now.Sub(st.downSince) > s.forgetAfter {
			delete(s.services, svc)
		}
	}
	if !s.started && meshUp {
		s.mesh, s.started = newTimeline(now, true), true
	}
	if s.started {
		s.mesh.set(now, meshUp, s.recent)
	}
	return next
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// track starts tracking a member seen alive (write lock held); nil when the
// cap is reached and no tracked member is down.
func (s *shares) track(name string, now time.Time) *memberTrack {
	if len(s.members) >= s.maxMembers {
		var victim string
		var since time.Time
		for n, mt := range s.members {
			if !mt.downSince.IsZero() && (victim == "" || mt.downSince.Before(since)) {
				victim, since = n, mt.downSince
			}
		}
		if victim == "" {
			return nil
		}
		delete(s.members, victim)
	}
	mt := &memberTrack{up: newTimeline(now, true), epoch: s.epoch, counts: map[string]*shareCounts{}}
	s.members[name] = mt
	return mt
}

// counts returns the member's counters in service, creating them; nil for
// a member that is not tracked (a pick can come before the View that lists
// the member has been observed: it is tracked from then on, as alive).
func (s *shares) counts(name, service string) *shareCounts {
	if s == nil {
		return nil
	}
	s.mu.RLock()
	var c *shareCounts
	if mt := s.members[name]; mt != nil {
		c = mt.counts[service]
	}
	s.mu.RUnlock()
	if c != nil {
		return c
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mt := s.members[name]
	if mt == nil {
		if mt = s.track(name, time.Now()); mt == nil {
			return nil
		}
	}
	if c = mt.counts[service]; c == nil {
		c = &shareCounts{}
		mt.counts[service] = c
	}
	return c
}

// countPick counts one pick of the member, whose service tag is service.
func (s *shares) countPick(name, service string) {
	if c := s.counts(name, service); c != nil {
		c.picks.Add(1)
	}
}

// countProxied counts one proxied request answered by the member.
func (s *shares) countProxied(name, service string) {
	if c := s.counts(name, service); c != nil {
		c.proxied.Add(1)
	}
}

// measure reports the tracked figures beside the model's for the members
// ms (the View the report shows), at now: per member (by name) and the
// summary. A nil tracker reports nothing.
func (s *shares) measure(ms []mesh.Member, now time.Time) (map[string]*client.MemberShare, *client.Measured) {
	if s == nil {
		return nil, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	type group struct {
		picks, proxied uint64
		n, healthy     int
		offered        bool
	}
	groups := map[string]*group{}
	grp := func(svc string) *group {
		g := groups[svc]
		if g == nil {
			g = &group{}
			groups[svc] = g
		}
		return g
	}
	for _, mt := range s.members {
		for svc, c := range mt.counts {
			g := grp(svc)
			g.picks += c.picks.Load()
			g.proxied += c.proxied.Load()
		}
	}
	out := &client.Measured{RecentSeconds: s.recent.Seconds(), Availability: -1, AvailabilityRecent: -1, Services: []client.ServiceMeasured{}}
	per := map[string]*client.MemberShare{}
	var upSum, recentSum float64
	var tracked int
	for _, m := range ms {
		alive := m.Status == mesh.StatusAlive
		g := grp(m.Shoal.Service)
		g.offered = true
		if alive {
			out.N++
			g.n++
			if m.Shoal.Service != "" && healthy(m, now, true) {
				g.healthy++
			}
		}
		mt := s.members[m.Name]
		if mt == nil {
			continue
		}
		sh := &client.MemberShare{Service: m.Shoal.Service, PickShare: -1, ProxyShare: -1,
			Uptime: mt.up.ratio(now), UptimeRecent: mt.up.recent(now, s.recent), ObservedSeconds: now.Sub(mt.up.first).Seconds()}
		if c := mt.counts[m.Shoal.Service]; c != nil {
			sh.Picks, sh.ProxyRequests = c.picks.Load(), c.proxied.Load()
		}
		if g.picks > 0 {
			sh.PickShare = float64(sh.Picks) / float64(g.picks)
		}
		if g.proxied > 0 {
			sh.ProxyShare = float64(sh.ProxyRequests) / float64(g.proxied)
		}
		per[m.Name] = sh
		upSum += sh.Uptime
		recentSum += sh.UptimeRecent
		tracked++
	}
	out.ModelShare, out.ModelAvailability = model(out.N)
	if tracked > 0 {
		out.UptimeMean, out.UptimeRecentMean = upSum/float64(tracked), recentSum/float64(tracked)
	}
	if s.started {
		out.Availability, out.AvailabilityRecent = s.mesh.ratio(now), s.mesh.recent(now, s.recent)
	}
	names := make([]string, 0, len(groups))
	for svc, g := range groups {
		out.Picks += g.picks
		out.ProxyRequests += g.proxied
		if g.offered || g.picks > 0 || g.proxied > 0 {
			names = append(names, svc)
		}
	}
	sort.Strings(names)
	for _, svc := range names {
		g := groups[svc]
		sm := client.ServiceMeasured{Service: svc, N: g.n, Healthy: g.healthy, Availability: -1, AvailabilityRecent: -1,
			Picks: g.picks, ProxyRequests: g.proxied, PickShareMin: -1, PickShareMax: -1, ProxyShareMin: -1, ProxyShareMax: -1}
		sm.ModelShare, sm.ModelAvailability = model(g.n)
		if st := s.services[svc]; st != nil && svc != "" {
			sm.Availability, sm.AvailabilityRecent = st.avail.ratio(now), st.avail.recent(now, s.recent)
		}
		for _, m := range ms {
			p := per[m.Name]
			if p == nil || m.Shoal.Service != svc || m.Status != mesh.StatusAlive {
				continue
			}
			if p.PickShare >= 0 {
				sm.PickShareMin, sm.PickShareMax = minShare(sm.PickShareMin, p.PickShare), math.Max(sm.PickShareMax, p.PickShare)
			}
			if p.ProxyShare >= 0 {
				sm.ProxyShareMin, sm.ProxyShareMax = minShare(sm.ProxyShareMin, p.ProxyShare), math.Max(sm.ProxyShareMax, p.ProxyShare)
			}
		}
		out.Services = append(out.Services, sm)
	}
	return per, out
}

// model is the simple model's share (P/N = 1/n) and availability (1 - 1/n).
func model(n int) (share, avail float64) {
	if n <= 0 {
		return 0, 0
	}
	return 1 / float64(n), 1 - 1/float64(n)
}

func minShare(cur, v float64) float64 {
	if cur < 0 || v < cur {
		return v
	}
	return cur
}

// forgetAfter is how long a down member stays tracked: the reconnect
// timeout the mesh runs with (mesh.New: 30 s on local, serf's 24 h else).
func (a *Agent) shareForgetAfter() time.Duration {
	if d := time.Duration(a.cfg.ReconnectTimeout); d > 0 {
		return d
	}
	if a.cfg.Profile == mesh.ProfileLocal {
		return 30 * time.Second
	}
	return 24 * time.Hour
}

// startShares creates the tracker and runs its watcher until ctx ends.
func (a *Agent) startShares(ctx context.Context) {
	s := newShares(a.shareForgetAfter())
	a.shares = s
	m := a.mesh
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		watchShares(ctx, m, s)
	}()
}

// watchShares observes every new View, and wakes between Views only when a
// load goes stale (or, while one is stale, to see it confirmed).
func watchShares(ctx context.Context, m *mesh.Mesh, s *shares) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		v := m.View()
		next := s.observe(v.Members(), time.Now())
		t.Stop()
		var wake <-chan time.Time
		if !next.IsZero() {
			t.Reset(max(time.Until(next), 0))
			wake = t.C
		}
		select {
		case <-v.Changed():
		case <-wake:
		case <-ctx.Done():
			return
		}
	}
}

// addMeasured fills a load report's shares and measured figures.
func (a *Agent) addMeasured(rep *client.LoadReport, ms []mesh.Member, now time.Time) {
	per, sum := a.shares.measure(ms, now)
	for i := range rep.Members {
		rep.Members[i].Share = per[rep.Members[i].Name]
	}
	rep.Measured = sum
}

// shareCollectorDeps is what shareCollector reads from the agent at scrape
// time, and all it reaches: the agent builds it in one place
// (agentShareCollectorDeps).
type shareCollectorDeps struct {
	// tracker returns the share tracker, nil before Start makes it.
	tracker func() *shares
	// view returns the mesh's current View, nil while there is no mesh.
	view func() *mesh.View
}

// agentShareCollectorDeps wires shareCollector to the agent's tracker and
// mesh, read at each scrape: the handler may be built before Start.
func agentShareCollectorDeps(a *Agent) shareCollectorDeps {
	return shareCollectorDeps{tracker: func() *shares { return a.shares }, view: a.meshView}
}

// shareCollector exports the tracker on /metrics.
type shareCollector struct {
	deps                                shareCollectorDeps
	picks, proxied, uptime, avail, mesh *prometheus.Desc
	healthy                             *prometheus.Desc
}

func newShareCollector(deps shareCollectorDeps) *shareCollector {
	d := descMaker("shoal_")
	return &shareCollector{
		deps:    deps,
		picks:   d("picks_total", "Times GET /v1/pick on this agent returned the member, by the member's service tag (\"\" for none).", "member", "service"),
		proxied: d("proxy_requests_total", "Requests this agent's proxy forwarded to the member and got a response for, by the member's service tag.", "member", "service"),
		uptime: d("member_uptime_ratio", "Fraction of the time since this agent first saw the member alive that it was alive; "+
			"window=lifetime (since first seen) or recent (the last 5 minutes).", "member", "window"),
		avail: d("service_availability_ratio", "Fraction of the time since this agent first saw the service healthy that at least one member was healthy "+
			"(alive, numeric port tag, load sample at most 30 s old); window=lifetime or recent (the last 5 minutes).", "service", "window"),
		healthy: d("service_healthy_members", "Members GET /v1/pick?service=S could return now (alive, numeric port tag, load at most 30 s old).", "service"),
		mesh: d("mesh_availability_ratio", "Fraction of the time since a member first was alive with a load sample at most 30 s old that one was "+
			"(what GET /v1/pick without a service needs); window=lifetime or recent (the last 5 minutes).", "window"),
	}
}

func (c *shareCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.picks, c.proxied, c.uptime, c.avail, c.healthy, c.mesh} {
		ch <- d
	}
}

func (c *shareCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.deps.tracker()
	if s == nil {
		return
	}
	v := c.deps.view()
	if v == nil {
		return
	}
	now := time.Now()
	ms := v.Members()
	_, sum := s.measure(ms, now)
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	s.mu.RLock()
	for name, mt := range s.members {
		for svc, n := range mt.counts {
			ch <- prometheus.MustNewConstMetric(c.picks, prometheus.CounterValue, float64(n.picks.Load()), name, svc)
			ch <- prometheus.MustNewConstMetric(c.proxied, prometheus.CounterValue, float64(n.proxied.Load()), name, svc)
		}
		g(c.uptime, mt.up.ratio(now), name, "lifetime")
		g(c.uptime, mt.up.recent(now, s.recent), name, "recent")
	}
	s.mu.RUnlock()
	for _, sm := range sum.Services {
		if sm.Service == "" || sm.Availability < 0 {
			continue
		}
		g(c.avail, sm.Availability, sm.Service, "lifetime")
		g(c.avail, sm.AvailabilityRecent, sm.Service, "recent")
		g(c.healthy, float64(sm.Healthy), sm.Service)
	}
	if sum.Availability >= 0 {
		g(c.mesh, sum.Availability, "lifetime")
		g(c.mesh, sum.AvailabilityRecent, "recent")
	}
}
