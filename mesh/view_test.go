package mesh

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

func TestViewLookupAndAges(t *testing.T) {
	now := time.Now()
	a := Member{Name: "a", Status: StatusAlive, Tags: map[string]string{TagPriority: "3"}}
	a.Shoal = ParseTags(a.Tags)
	a = a.WithLoad(metrics.Load{CPUPercent: 40}, now.Add(-2*time.Second))
	v := NewView(7, []Member{{Name: "c", Self: true}, a, {Name: "b"}})
	if v.Version() != 7 || v.Len() != 3 {
		t.Fatalf("version %d len %d", v.Version(), v.Len())
	}
	if got := v.Members(); got[0].Name != "a" || got[1].Name != "b" || got[2].Name != "c" {
		t.Fatalf("members not sorted by name: %v", got)
	}
	if s, ok := v.Self(); !ok || s.Name != "c" {
		t.Errorf("Self = %v %v", s.Name, ok)
	}
	if _, ok := v.Member("zz"); ok {
		t.Error("found a member that is not there")
	}
	m, ok := v.Member("a")
	if !ok || m.Shoal.Priority != 3 || m.Load == nil || m.Load.CPUPercent != 40 {
		t.Fatalf("Member(a) = %+v %v", m, ok)
	}
	// Ages are taken at read time, never frozen in the View.
	if got := m.LoadAge(now); got != 2*time.Second {
		t.Errorf("age at build %v, want 2s", got)
	}
	if got := m.LoadAge(now.Add(3 * time.Second)); got != 5*time.Second {
		t.Errorf("age 3 s later %v, want 5s", got)
	}
	// A confirmation of the same state moves the time forward in the View
	// that is already held.
	m.heard.at.Store(now.UnixNano())
	if got, _ := v.Member("a"); got.LoadAge(now.Add(time.Second)) != time.Second {
		t.Errorf("after a confirmation: age %v, want 1s", got.LoadAge(now.Add(time.Second)))
	}
	if b, _ := v.Member("b"); b.Load != nil || b.LoadAge(now) != 0 || !b.LoadAt().IsZero() {
		t.Errorf("member without load: %+v age %v", b.Load, b.LoadAge(now))
	}
	select {
	case <-v.Changed():
		t.Error("change signal of an unpublished View is closed")
	default:
	}
}

func TestTagsParsedOnceAndReservedKeys(t *testing.T) {
	st := ScaleTag{Term: 4, Priority: 9, Time: time.Unix(0, 1234567890), From: 2, To: 5}
	got := ParseTags(map[string]string{TagShoal: "1", TagPriority: "7", TagService: "web", TagPort: "8080",
		TagCapacity: "2.5", TagScale: st.String(), "gpu": "3", "zone": "eu"})
	if !got.Agent || got.Priority != 7 || got.Service != "web" || got.Port != 8080 || got.Capacity != 2.5 {
		t.Errorf("parsed %+v", got)
	}
	if !got.ScaleOK || got.Scale != st {
		t.Errorf("scale tag %+v %v, want %+v", got.Scale, got.ScaleOK, st)
	}
	if got.Numeric["gpu"] != 3 || got.Numeric[TagPort] != 8080 {
		t.Errorf("numeric %v", got.Numeric)
	}
	if _, ok := got.Numeric["zone"]; ok {
		t.Error("zone=eu taken for a number")
	}
	bad := ParseTags(map[string]string{TagPort: "70000", TagCapacity: "-1", TagScale: "1/2/3", TagPriority: "x"})
	if bad.Agent || bad.Port != 0 || bad.Capacity != 0 || bad.ScaleOK || bad.Priority != 0 {
		t.Errorf("bad values read as %+v", bad)
	}
	if _, err := ParseScaleTag("1/2/x/4/5"); err == nil || !strings.Contains(err.Error(), `"1/2/x/4/5"`) {
		t.Errorf("error does not name the value: %v", err)
	}
	for _, k := range ReservedTags() {
		err := CheckUserTag(k)
		if !errors.Is(err, ErrReservedTag) || !strings.Contains(err.Error(), "reserved") || !strings.Contains(err.Error(), fmt.Sprintf("%q", k)) {
			t.Errorf("%s: %v", k, err)
		}
	}
	if err := CheckUserTag(TagService); err != nil {
		t.Errorf("service is a user tag: %v", err)
	}
	// The mesh refuses them too.
	_, err := New(Config{NodeName: "r1", BindAddr: "127.83.0.9", Profile: ProfileLocal, Tags: map[string]string{TagScale: "x"}})
	if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "reserved") || !strings.Contains(err.Error(), `"scale"`) {
		t.Errorf("mesh.New with tag scale=x: %v", err)
	}
}

func FuzzParseTags(f *testing.F) {
	f.Add("shoal", "1", "scale", "1/2/3/4/5")
	f.Add("port", "65536", "capacity", "NaN")
	f.Add("scale", "18446744073709551616/0/0/0/0", "priority", "-9")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		got := ParseTags(map[string]string{k1: v1, k2: v2})
		if got.Port < 0 || got.Port > 65535 || got.Capacity < 0 {
			t.Fatalf("out of range: %+v", got)
		}
		if got.ScaleOK {
			back, err := ParseScaleTag(got.Scale.String())
			if err != nil || back != got.Scale {
				t.Fatalf("scale tag %+v does not round-trip: %+v %v", got.Scale, back, err)
			}
		}
	})
}

// TestViewPublishedOnChange runs two real nodes: a View is published on a
// membership change, on a new load state and on a tag change, with the
// next version and its predecessor's change signal closed; an old View
// never changes; an idle mesh publishes nothing and decodes nothing, yet
// the ages it shows stay honest.
func TestViewPublishedOnChange(t *testing.T) {
	var cpuB atomic.Int64
	cpuB.Store(30)
	start := func(name, ip string, load func() (metrics.Load, bool)) *Mesh {
		m, err := New(Config{NodeName: name, BindAddr: ip, Profile: ProfileLocal, Load: load, Priority: 2})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Shutdown() })
		return m
	}
	a := start("va", "127.83.0.1", func() (metrics.Load, bool) { return metrics.Load{CPUPercent: 10, Cores: 1}, true })
	b := start("vb", "127.83.0.2", func() (metrics.Load, bool) {
		return metrics.Load{CPUPercent: float64(cpuB.Load()), Cores: 1}, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	v0 := a.View()
	if self, ok := v0.Self(); !ok || self.Name != "va" || !self.Shoal.Agent || self.Shoal.Priority != 2 {
		t.Fatalf("first View's self: %+v", self)
	}
	if _, err := b.Join([]string{addrOf(a)}); err != nil {
		t.Fatal(err)
	}
	v1, err := a.Wait(ctx, v0.Version())
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version() <= v0.Version() {
		t.Fatalf("Wait returned version %d after %d", v1.Version(), v0.Version())
	}
	select {
	case <-v0.Changed():
	default:
		t.Fatal("the older View's change signal is not closed")
	}
	n0 := v0.Len()
	waitFor(t, 20*time.Second, "va holds vb's load", func() error {
		if m, ok := a.View().Member("vb"); !ok || m.Load == nil || m.Load.CPUPercent != 30 {
			return fmt.Errorf("vb in va's View: %+v %v", m.Load, ok)
		}
		return nil
	})
	if v0.Len() != n0 {
		t.Fatalf("a published View changed: %d members, then %d", n0, v0.Len())
	}

	// Idle: both loads constant. Nothing is built or decoded, and vb's age
	// in the View held stays small although the View is not rebuilt.
	idle := a.View()
	builds, decodes := a.Stats().ViewBuilds.Load(), a.Stats().LoadDecodes.Load()
	// A confirmation every ConfirmIntervalFor(2, ...) (1 s), a few rounds
	// to arrive: a frozen age passes the limit within the watch.
	limit := ConfirmIntervalFor(2, 100*time.Millisecond) + 500*time.Millisecond
	worst := time.Duration(0)
	for time.Since(idle.Built()) < 2*limit {
		m, _ := idle.Member("vb")
		worst = max(worst, m.LoadAge(time.Now()))
		select {
		case <-idle.Changed():
			t.Fatalf("a View was published in an idle mesh (version %d)", a.View().Version())
		case <-time.After(50 * time.Millisecond):
		}
	}
	if worst > limit {
		t.Errorf("vb's load age reached %v in an idle mesh (limit %v): a View froze it", worst, limit)
	}
	if db, dd := a.Stats().ViewBuilds.Load()-builds, a.Stats().LoadDecodes.Load()-decodes; db != 0 || dd != 0 {
		t.Errorf("idle: %d builds, %d decodes", db, dd)
	}

	// A new load state: decoded once, one new View.
	cpuB.Store(60)
	waitFor(t, 20*time.Second, "va sees vb's new load", func() error {
		if m, _ := a.View().Member("vb"); m.Load == nil || m.Load.CPUPercent != 60 {
			return fmt.Errorf("vb at %+v", m.Load)
		}
		return nil
	})
	if dd := a.Stats().LoadDecodes.Load() - decodes; dd != 1 {
		t.Errorf("one new state from vb: va decoded %d", dd)
	}
	if old, _ := idle.Member("vb"); old.Load.CPUPercent != 30 {
		t.Errorf("the older View's load changed to %v", old.Load.CPUPercent)
	}

	// A tag change through the one owner of the node's tags.
	st := ScaleTag{Term: 3, Priority: 2, Time: time.Unix(100, 0), From: 1, To: 4}
	before := b.View().Version()
	if err := b.AnnounceScale(st); err != nil {
		t.Fatal(err)
	}
	if self, _ := b.View().Self(); !self.Shoal.ScaleOK || self.Shoal.Scale != st || b.View().Version() <= before {
		t.Errorf("vb's own View after AnnounceScale: %+v (version %d, was %d)", self.Shoal, b.View().Version(), before)
	}
	waitFor(t, 20*time.Second, "va reads vb's scale tag", func() error {
		if m, _ := a.View().Member("vb"); !m.Shoal.ScaleOK || m.Shoal.Scale != st || m.Tags[TagScale] != st.String() {
			return fmt.Errorf("vb's tags in va's View: %v", m.Tags)
		}
		return nil
	})
	if m, _ := a.View().Member("vb"); m.Shoal.Priority != 2 || !m.Shoal.Agent {
		t.Errorf("announcing lost the other tags: %v", m.Tags)
	}

	// Wait ends with the mesh.
	b.Shutdown()
	if _, err := b.Wait(ctx, b.View().Version()); !errors.Is(err, ErrClosed) {
		t.Errorf("Wait on a shut-down mesh: %v", err)
	}
}
