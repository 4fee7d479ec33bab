package mesh

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// Member statuses as shown to people and in the API.
const (
	StatusAlive   = "alive"
	StatusLeaving = "leaving"
	StatusLeft    = "left"
	StatusFailed  = "failed"
)

// Member is one member as a View shows it. A Member taken from a View is
// shared with every other reader of that View: its Tags map and Load are
// read-only.
type Member struct {
	Name   string
	Addr   string
	Port   uint16
	Status string
	// Tags are the member's serf tags (read-only).
	Tags map[string]string
	// Shoal is Shoal's reading of Tags, parsed once per tag change.
	Shoal ShoalTags
	Self  bool
	// Load is the member's last known load, decoded once when the state
	// arrived (read-only); nil when none has arrived.
	Load  *metrics.Load
	heard *heard
}

// heard is one received load state: its decoded load, and when its origin
// last published or confirmed it (local clock, Unix nanoseconds). A
// confirmation of the same state moves at forward without a new View, so
// that ages stay honest without rebuilding anything; a new state gets a new
// heard, so an older View keeps the time its own state was last confirmed.
type heard struct {
	load  metrics.Load
	state []byte // the encoded state (set by the mesh; nil outside one)
	at    atomic.Int64
}

func newHeard(l metrics.Load, at time.Time) *heard {
	h := &heard{load: l}
	h.load.Taken = at
	h.at.Store(at.UnixNano())
	return h
}

// LoadAt is when the member last published or confirmed its load (local
// clock); zero without load.
func (m Member) LoadAt() time.Time {
	if m.heard == nil {
		return time.Time{}
	}
	return time.Unix(0, m.heard.at.Load())
}

// LoadAge is how long before now the member last published or confirmed its
// load; 0 without load (check Load first).
func (m Member) LoadAge(now time.Time) time.Duration {
	if m.heard == nil {
		return 0
	}
	return max(now.Sub(m.LoadAt()), 0)
}

// WithLoad returns m holding load l, last confirmed at at: for building
// members outside a mesh (tests, synthetic members).
func (m Member) WithLoad(l metrics.Load, at time.Time) Member {
	m.heard = newHeard(l, at)
	m.Load = &m.heard.load
	return m
}

// View is an immutable snapshot of the mesh as this node sees it: members
// sorted by name, their status, Shoal's parsed tags and their decoded load.
// The mesh publishes a new View, with the next version, when something
// changes: a membership event, a tag change, or a new load state that the
// table accepted. Consumers hold the latest one (Mesh.View), and wait for
// the next with Changed or Mesh.Wait; nobody decodes gossip on their own.
//
// The one thing that moves inside a View is the time each load was last
// confirmed (Member.LoadAt): a confirmation of an unchanged load is not a
// change, yet ages must stay honest, so a consumer computes an age at read
// time (Member.LoadAge(now)) instead of reading one frozen at build time.
type View struct {
	version uint64
	built   time.Time
	members []Member
	next    chan struct{}
}

// NewView builds a View of the given members (sorted here) outside a mesh:
// for tests and fakes of a view source.
func NewView(version uint64, members []Member) *View {
	ms := append([]Member(nil), members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	return &View{version: version, built: time.Now(), members: ms, next: make(chan struct{})}
}

// Version increases by one with every View a mesh publishes.
func (v *View) Version() uint64 { return v.version }

// Built is when the View was published.
func (v *View) Built() time.Time { return v.built }

// Changed is closed when a newer View is published.
func (v *View) Changed() <-chan struct{} { return v.next }

// Members returns the members sorted by name. The slice is shared by every
// reader of this View: do not modify it.
func (v *View) Members() []Member { return v.members }

// Len is the number of members.
func (v *View) Len() int { return len(v.members) }

// Member returns the named member.
func (v *View) Member(name string) (Member, bool) {
	i := sort.Search(len(v.members), func(i int) bool { return v.members[i].Name >= name })
	if i < len(v.members) && v.members[i].Name == name {
		return v.members[i], true
	}
	return Member{}, false
}

// Self returns this node's own member.
func (v *View) Self() (Member, bool) {
	for _, m := range v.members {
		if m.Self {
			return m, true
		}
	}
	return Member{}, false
}

// View returns the latest View. It never blocks and never copies.
func (m *Mesh) View() *View {
	m.stats.ViewReads.Add(1)
	return m.view.Load()
}

// Wait returns the first View newer than version after, waiting until one
// is published, ctx ends (its error) or the mesh shuts down (ErrClosed).
func (m *Mesh) Wait(ctx context.Context, after uint64) (*View, error) {
	for {
		v := m.View()
		if v.version > after {
			return v, nil
		}
		select {
		case <-v.next:
		case <-ctx.Done():
			return v, ctx.Err()
		case <-m.stop:
			return v, ErrClosed
		}
	}
}

// publishLocked builds and publishes a new View from the member states and
// the load cells. Called with m.mu held, once per batch of changes.
func (m *Mesh) publishLocked(now time.Time) {
	ms := make([]Member, 0, len(m.members))
	for name, st := range m.members {
		mem := st.mem
		if h := m.heard[name]; h != nil {
			mem.heard, mem.Load = h, &h.load
		}
		ms = append(ms, mem)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
	old := m.view.Load()
	v := &View{built: now, members: ms, next: make(chan struct{}), version: 1}
	if old != nil {
		v.version = old.version + 1
	}
	m.view.Store(v)
	m.loadsDirty = false
	m.stats.ViewBuilds.Add(1)
	if old != nil {
		close(old.next)
	}
}
