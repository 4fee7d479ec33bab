package agent

import (
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// shareMember is a member offering service at port 8000 (no service: ""),
// alive unless status says otherwise, with load confirmed at loadAt (zero:
// no load).
func shareMember(name, service, status string, loadAt time.Time) mesh.Member {
	m := mesh.Member{Name: name, Addr: "10.0.0.1", Status: status, Tags: map[string]string{}}
	if service != "" {
		m.Tags["service"], m.Tags["port"] = service, "8000"
	}
	m.Shoal = mesh.ParseTags(m.Tags)
	if !loadAt.IsZero() {
		m = m.WithLoad(metrics.Load{CPUPercent: 10, Cores: 2}, loadAt)
	}
	return m
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-9 }

func TestShareTimelineLifetimeAndRecent(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const w = 10 * time.Second
	tl := newTimeline(at(0), true)
	check := func(now int, lifetime, last float64) {
		t.Helper()
		if got := tl.ratio(at(now)); !near(got, lifetime) {
			t.Errorf("t=%d: lifetime %v, want %v", now, got, lifetime)
		}
		if got := tl.recent(at(now), w); !near(got, last) {
			t.Errorf("t=%d: recent %v, want %v", now, got, last)
		}
	}
	check(5, 1, 1) // up all along; the window is cut to "since first seen"
	tl.set(at(10), false, w)
	check(12, 10.0/12, 0.8) // [2,12]: up 2-10
	tl.set(at(15), true, w)
	check(20, 15.0/20, 0.5) // [10,20]: down 10-15, up 15-20
	tl.set(at(30), true, w)
	check(30, 25.0/30, 1) // [20,30]: up
	// A flapping member keeps at most timelineSpans changes: memory stays
	// bounded, and the recent window shortens to the changes kept.
	fl := newTimeline(at(0), true)
	for i := 1; i <= 10*timelineSpans; i++ {
		fl.set(at(0).Add(time.Duration(i)*time.Millisecond), i%2 == 0, time.Hour)
	}
	if len(fl.spans) > timelineSpans {
		t.Errorf("%d spans kept, want at most %d", len(fl.spans), timelineSpans)
	}
	if r := fl.recent(at(0).Add(time.Duration(10*timelineSpans)*time.Millisecond), time.Hour); r < 0.4 || r > 0.6 {
		t.Errorf("flapping half the time: recent %v, want about 0.5", r)
	}
}

// The tracker on hand-made Views and an injected clock: a service whose
// only member fails loses its availability for as long as it is down; a
// load that goes stale makes a member unhealthy at the moment observe
// named; members that are gone are forgotten.
func TestAvailabilityTrackerFollowsHealthyMembers(t *testing.T) {
	t0 := time.Unix(5000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	s := newShares(time.Minute)
	view := func(now int, ms ...mesh.Member) time.Time { return s.observe(ms, at(now)) }

	// g1 offers ghost but never sends load: ghost is never healthy, and
	// has no availability (its clock starts at its first healthy moment).
	g1 := shareMember("g1", "ghost", mesh.StatusAlive, time.Time{})
	next := view(0, shareMember("w1", "web", mesh.StatusAlive, at(0)), shareMember("c1", "cache", mesh.StatusAlive, at(0)),
		shareMember("x", "", mesh.StatusAlive, time.Time{}), g1)
	if want := at(0).Add(loadshare.DefaultMaxAge + time.Millisecond); !next.Equal(want) {
		t.Errorf("observe asks to look again at %v, want when the loads go stale, %v", next, want)
	}
	// c1 fails at 10 s; w1's load is confirmed at 10 s.
	view(10, shareMember("w1", "web", mesh.StatusAlive, at(10)), shareMember("c1", "cache", mesh.StatusFailed, at(0)),
		shareMember("x", "", mesh.StatusAlive, time.Time{}), g1)
	per, sum := s.measure([]mesh.Member{shareMember("w1", "web", mesh.StatusAlive, at(10)), shareMember("c1", "cache", mesh.StatusFailed, at(0)),
		shareMember("x", "", mesh.StatusAlive, time.Time{}), g1}, at(20))
	if u := per["c1"].Uptime; !near(u, 0.5) {
		t.Errorf("c1 alive 10 s of 20: uptime %v, want 0.5", u)
	}
	if u := per["w1"].Uptime; !near(u, 1) {
		t.Errorf("w1 uptime %v, want 1", u)
	}
	avail := map[string]float64{}
	for _, sm := range sum.Services {
		avail[sm.Service] = sm.Availability
	}
	if !near(avail["cache"], 0.5) || !near(avail["web"], 1) || avail[""] != -1 || avail["ghost"] != -1 {
		t.Errorf("availability %v, want cache 0.5 (its only member down half the time), web 1, no service and ghost -1", avail)
	}
	if sum.N != 3 || !near(sum.ModelShare, 1.0/3) || !near(sum.ModelAvailability, 2.0/3) {
		t.Errorf("model for n=%d: share %v availability %v, want n=3, 1/3, 2/3", sum.N, sum.ModelShare, sum.ModelAvailability)
	}
	if !near(sum.Availability, 1) {
		t.Errorf("mesh availability %v, want 1 (w1 had fresh load throughout)", sum.Availability)
	}

	// w1's load is not confirmed again: at 40.001 s it is stale, and web
	// is unavailable from then on.
	next = view(20, shareMember("w1", "web", mesh.StatusAlive, at(10)), shareMember("x", "", mesh.StatusAlive, time.Time{}))
	if want := at(10).Add(loadshare.DefaultMaxAge + time.Millisecond); !next.Equal(want) {
		t.Fatalf("look again at %v, want %v", next, want)
	}
	ms := []mesh.Member{shareMember("w1", "web", mesh.StatusAlive, at(10)), shareMember("x", "", mesh.StatusAlive, time.Time{})}
	next = s.observe(ms, next)
	if want := at(40).Add(time.Millisecond + shareStaleRecheck); !next.Equal(want) {
		t.Errorf("with a stale member alive, look again at %v, want %v", next, want)
	}
	_, sum = s.measure(ms, at(80))
	for _, sm := range sum.Services {
		if sm.Service == "web" && (sm.Healthy != 0 || !near(sm.Availability, 40.001/80)) {
			t.Errorf("web at 80 s: %d healthy, availability %v, want 0 and %v", sm.Healthy, sm.Availability, 40.001/80)
		}
	}
	if !near(sum.Availability, 40.001/80) {
		t.Errorf("mesh availability %v, want %v", sum.Availability, 40.001/80)
	}
	// c1 left the View at 20 s: forgotten, and so is its service once it
	// has been unavailable longer than forgetAfter.
	if _, ok := s.members["c1"]; ok {
		t.Errorf("c1 is still tracked after the View stopped listing it")
	}
	view(71, ms...)
	if _, ok := s.services["cache"]; ok {
		t.Errorf("service cache is still tracked 61 s after its last member went down (forget after 1m)")
	}
}

func TestShareTrackerIsBounded(t *testing.T) {
	old := shareMaxMembers
	shareMaxMembers = 8
	defer func() { shareMaxMembers = old }()
	s := newShares(time.Hour)
	now := time.Unix(100, 0)
	var ms []mesh.Member
	for i := range 6 {
		ms = append(ms, shareMember("down-"+strconv.Itoa(i), "", mesh.StatusAlive, time.Time{}))
	}
	s.observe(ms, now.Add(-time.Second))
	for i := range ms {
		ms[i].Status = mesh.StatusFailed
	}
	s.observe(ms, now)
	for i := range 20 {
		ms = append(ms, shareMember(fmt.Sprintf("up-%02d", i), "", mesh.StatusAlive, now))
	}
	s.observe(ms, now.Add(time.Second))
	if n := len(s.members); n != 8 {
		t.Fatalf("%d members tracked, want the cap 8", n)
	}
	for name, mt := range s.members {
		if !mt.downSince.IsZero() {
			t.Errorf("%s (down) is tracked while alive members were refused", name)
		}
	}
	// Counting a pick for a member beyond the cap is refused, not a panic.
	s.countPick("up-19", "")
	s.countPick("up-00", "")
	per, _ := s.measure(ms, now.Add(2*time.Second))
	if p := per["up-00"]; p == nil || p.Picks != 1 || p.PickShare != 1 {
		t.Errorf("up-00: %+v, want 1 pick, share 1", p)
	}
}

// A member still listed failed is forgotten once it has been down longer
// than forgetAfter, and not tracked again (with a fresh clock that would
// make it look down all along) until it is alive; one first seen failed is
// not tracked at all.
func TestShareForgetsMembersDownTooLong(t *testing.T) {
	t0 := time.Unix(9000, 0)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	s := newShares(30 * time.Second)
	s.observe([]mesh.Member{shareMember("m", "", mesh.StatusAlive, at(0))}, at(0))
	down := []mesh.Member{shareMember("m", "", mesh.StatusFailed, at(0)), shareMember("old", "", mesh.StatusFailed, time.Time{})}
	s.observe(down, at(10))
	per, _ := s.measure(down, at(20))
	if p := per["m"]; p == nil || !near(p.Uptime, 0.5) {
		t.Fatalf("m down 10 s of 20: %+v, want uptime 0.5", p)
	}
	if per["old"] != nil {
		t.Errorf("old, first seen failed, is tracked: %+v", per["old"])
	}
	s.observe(down, at(41))
	s.observe(down, at(42))
	if per, _ := s.measure(down, at(43)); per["m"] != nil {
		t.Errorf("m down 31 s (forget after 30 s) is still tracked: %+v", per["m"])
	}
	back := []mesh.Member{shareMember("m", "", mesh.StatusAlive, at(50))}
	s.observe(back, at(50))
	if per, _ := s.measure(back, at(60)); per["m"] == nil || per["m"].Uptime != 1 || per["m"].ObservedSeconds != 10 {
		t.Errorf("m back at 50 s: %+v, want tracked again from then, up", per["m"])
	}
}
