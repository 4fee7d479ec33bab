package agent

// The dashboard: the embedded page (ui/), one JSON snapshot the page polls
// (GET /v1/dashboard: members with load and weight, the aggregate, the
// coordinator), and a ring buffer of aggregate samples (GET /v1/history) for
// its chart. The page itself (GET /, GET /ui/...) is served without the API
// token, since it holds no data; every data call carries the token.

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/client"
	prometheus "github.com/shoalmesh/shoal/internal/prom"
	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

//go:embed ui
var uiFiles embed.FS

// History sampling: every 2 s, 10 minutes kept. Variables so tests can
// shorten them.
var (
	historyInterval = 2 * time.Second
	historySize     = 300
)

// dashboard is the agent's dashboard and monitor state.
type dashboard struct {
	deps      dashDeps
	stream    *broadcaster // events_stream.go
	synthetic int          // test hook: synthetic members added to the dashboard's view

	mu   sync.Mutex
	hist []HistorySample // ring
	next int
	full bool
}

func newDashboard() *dashboard { return &dashboard{stream: newBroadcaster()} }

// dashDeps is what the dashboard's report, its history sampler and its
// election watcher need from the agent, and all they reach: the agent
// builds it in one place (agentDashDeps).
type dashDeps struct {
	// node is this agent's name.
	node func() string
	// members returns the mesh View's members (shared: copy to modify).
	members func() []mesh.Member
	// leader returns this node's view of the election, nil without one.
	leader func() *client.Leader
	// coordinator returns the coordinator this node names ("" for none),
	// its term, and a channel closed when either may have changed; ok is
	// false when no election runs.
	coordinator func() (name string, term uint64, changed <-chan struct{}, ok bool)
	// measure reports the measured shares and availability beside the
	// model's for the members ms (share.go).
	measure func(ms []mesh.Member, now time.Time) (map[string]*client.MemberShare, *client.Measured)
	// addEvent records an event and streams it to monitors.
	addEvent func(Event)
}

// agentDashDeps wires the dashboard to the agent's mesh, election, share
// tracker and event log. They are read at each call: the dashboard is made
// in New, the mesh and the election in Start.
func agentDashDeps(a *Agent) dashDeps {
	return dashDeps{
		node:    func() string { return a.cfg.NodeName },
		members: func() []mesh.Member { return a.mesh.View().Members() },
		leader:  a.leader,
		coordinator: func() (string, uint64, <-chan struct{}, bool) {
			r := a.runner()
			if r == nil {
				return "", 0, nil, false
			}
			s, ch := r.snapshot()
			return s.status.Coordinator, s.status.Term, ch, true
		},
		measure: func(ms []mesh.Member, now time.Time) (map[string]*client.MemberShare, *client.Measured) {
			return a.shares.measure(ms, now) // share.go
		},
		addEvent: a.addEvent,
	}
}

func (a *Agent) dashState() *dashboard {
	if a.dash == nil {
		a.dash = newDashboard()
	}
	return a.dash
}

// WithSyntheticMembers adds n synthetic members with changing load to the
// dashboard's view (GET /v1/dashboard and /v1/history): a test hook to
// see how the page copes with a large mesh. Not for production.
func WithSyntheticMembers(n int) Option {
	return func(a *Agent) { a.dashState().synthetic = n }
}

// HistorySample is one aggregate sample of the mesh (GET /v1/history).
type HistorySample struct {
	// Time is Unix milliseconds.
	Time        int64   `json:"t"`
	CPUMean     float64 `json:"cpu_mean"`
	CPUMax      float64 `json:"cpu_max"`
	MemMean     float64 `json:"mem_mean"`
	MemMax      float64 `json:"mem_max"`
	NetRxBps    float64 `json:"net_rx_bps"`
	NetTxBps    float64 `json:"net_tx_bps"`
	WithLoad    int     `json:"with_load"`
	Alive       int     `json:"alive"`
	Failed      int     `json:"failed"`
	Coordinator string  `json:"coordinator,omitempty"`
	Term        uint64  `json:"term,omitempty"`
}

// HistoryReport answers GET /v1/history.
type HistoryReport struct {
	IntervalSeconds float64         `json:"interval_seconds"`
	Samples         []HistorySample `json:"samples"`
}

// DashMember is one member row of the dashboard, in a compact form.
type DashMember struct {
	Name        string            `json:"name"`
	Addr        string            `json:"addr"`
	Status      string            `json:"status"`
	Self        bool              `json:"self,omitempty"`
	Coordinator bool              `json:"coordinator,omitempty"`
	HasLoad     bool              `json:"has_load"`
	CPU         float64           `json:"cpu"`
	Mem         float64           `json:"mem"`
	NetRx       float64           `json:"net_rx"`
	NetTx       float64           `json:"net_tx"`
	Cores       float64           `json:"cores"`
	Load1       float64           `json:"load1"`
	Load        float64           `json:"load"`   // fraction of capacity in use (loadshare.Load)
	Weight      float64           `json:"weight"` // loadshare.Weight with default parameters
	Age         float64           `json:"age"`    // seconds; -1 without load
	Tags        map[string]string `json:"tags,omitempty"`
	// Share is the member's measured share of picks and proxied requests
	// and its uptime (share.go); nil for a member the agent does not track.
	Share *client.MemberShare `json:"share,omitempty"`
}

// DashboardReport answers GET /v1/dashboard.
type DashboardReport struct {
	Node      string           `json:"node"`
	Version   string           `json:"version"`
	Time      string           `json:"time"`
	Members   []DashMember     `json:"members"`
	Counts    map[string]int   `json:"counts"`
	Aggregate client.Aggregate `json:"aggregate"`
	Leader    *client.Leader   `json:"leader,omitempty"`
	Synthetic int              `json:"synthetic,omitempty"`
	// Measured puts the measured shares and availability beside the model
	// P = N/n, A = 1 - 1/n for the current n (share.go).
	Measured *client.Measured `json:"measured,omitempty"`
}

// initDashboard is called by New once options are applied: it wires the
// dashboard to the agent and tees the agent's logger into the monitor
// stream (events_stream.go).
func (a *Agent) initDashboard() {
	d := a.dashState()
	d.deps = agentDashDeps(a)
	a.log = teeLogger(a.log, d.stream, a.cfg.NodeName)
}

// dashboardPublic reports whether r asks for the page itself, which is
// served without the API token (it holds no data).
func dashboardPublic(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	p := r.URL.Path
	return p == "/" || p == "/favicon.ico" || len(p) > 4 && p[:4] == "/ui/"
}

func (a *Agent) registerDashboardRoutes(mux *http.ServeMux, reg *prometheus.Registry) {
	d := a.dashState()
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err)
	}
	index, _ := fs.ReadFile(sub, "index.html")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(index)
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	mux.Handle("GET /ui/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	mux.HandleFunc("GET /v1/dashboard", d.handleDashboard)
	mux.HandleFunc("GET /v1/history", d.handleHistory)
	mon := agentMonitorDeps(a) // events_stream.go
	mux.HandleFunc("GET /v1/monitor", func(w http.ResponseWriter, r *http.Request) { handleMonitor(mon, w, r) })
	reg.MustRegister(newOperatorCollector(agentOperatorCollectorDeps(a))) // prom.go
}

// startDashboard runs the history sampler and the election watcher until
// ctx (the agent's Start context) ends; Stop cancels it and waits for them.
func (a *Agent) startDashboard(ctx context.Context) {
	d := a.dashState()
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		d.sampleHistory(ctx)
	}()
	go func() {
		defer a.wg.Done()
		d.watchElection(ctx)
	}()
}

// viewMembers is the View's members plus the synthetic ones (test hook).
// The View's slice is shared: append to a copy.
func (d *dashboard) viewMembers(now time.Time) []mesh.Member {
	ms := d.deps.members()
	if n := d.synthetic; n > 0 {
		ms = append(append([]mesh.Member(nil), ms...), syntheticMembers(n, now)...)
	}
	return ms
}

// syntheticMembers makes n members whose load moves with time: a few are
// failed, a few have no load yet, the rest vary smoothly.
func syntheticMembers(n int, now time.Time) []mesh.Member {
	out := make([]mesh.Member, n)
	t := float64(now.UnixMilli()) / 1000
	for i := range out {
		f := float64(i)
		m := mesh.Member{
			Name:   fmt.Sprintf("synthetic-%04d", i),
			Addr:   fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
			Port:   7946,
			Status: mesh.StatusAlive,
			Tags:   map[string]string{"role": []string{"web", "db", "cache", "batch"}[i%4], "zone": "z" + strconv.Itoa(i%3)},
		}
		m.Shoal = mesh.ParseTags(m.Tags)
		switch {
		case i%97 == 13:
			m.Status = mesh.StatusFailed
		case i%211 == 7:
			out[i] = m
			continue // no load yet
		}
		cpu := 50 + 45*math.Sin(t/7+f*0.37)
		l := metrics.Load{CPUPercent: cpu, MemPercent: 30 + 25*math.Sin(t/11+f*0.11) + 20,
			NetRxBps: 1e5 * (1 + math.Sin(t/5+f)), NetTxBps: 5e4 * (1 + math.Cos(t/5+f)),
			Load1: cpu / 25, Cores: float64(int(2) << (i % 3))}
		age := time.Duration((i%20)*100) * time.Millisecond
		if m.Status == mesh.StatusFailed {
			age = 30*time.Second + time.Duration(i)*time.Millisecond
		}
		out[i] = m.WithLoad(l, now.Add(-age))
	}
	return out
}

func toDashMember(m mesh.Member, coord string, now time.Time) DashMember {
	dm := DashMember{Name: m.Name, Addr: m.Addr, Status: m.Status, Self: m.Self, Coordinator: coord != "" && m.Name == coord,
		Tags: m.Tags, Age: -1}
	c, _ := Candidate(m, now)
	if l := m.Load; l != nil {
		dm.HasLoad = true
		dm.CPU, dm.Mem, dm.NetRx, dm.NetTx, dm.Cores, dm.Load1 = l.CPUPercent, l.MemPercent, l.NetRxBps, l.NetTxBps, l.Cores, l.Load1
		dm.Age = m.LoadAge(now).Seconds()
		dm.Load = loadshare.Load(c)
	}
	if m.Status == mesh.StatusAlive {
		w := loadshare.Weight(c, loadshare.WeightParams{})
		if !math.IsNaN(w) && !math.IsInf(w, 0) {
			dm.Weight = w
		}
	}
	return dm
}

// leader returns this agent's view of the election, nil without one.
func (a *Agent) leader() *client.Leader {
	r := a.runner()
	if r == nil {
		return nil
	}
	l := r.leaderView()
	return &l
}

func (d *dashboard) handleDashboard(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	ms := d.viewMembers(now)
	rep := DashboardReport{Node: d.deps.node(), Version: Version, Time: now.UTC().Format(time.RFC3339Nano),
		Members: make([]DashMember, len(ms)), Counts: map[string]int{}, Aggregate: Aggregate(ms, now), Leader: d.deps.leader(),
		Synthetic: d.synthetic}
	coord := ""
	if rep.Leader != nil {
		coord = rep.Leader.Coordinator
	}
	per, measured := d.deps.measure(ms, now)
	rep.Measured = measured
	for i, m := range ms {
		rep.Members[i] = toDashMember(m, coord, now)
		rep.Members[i].Share = per[m.Name]
		rep.Counts[m.Status]++
	}
	writeJSON(w, http.StatusOK, rep)
}

func (d *dashboard) handleHistory(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	var out []HistorySample
	if d.full {
		out = append(append(out, d.hist[d.next:]...), d.hist[:d.next]...)
	} else {
		out = append(out, d.hist[:d.next]...)
	}
	d.mu.Unlock()
	if out == nil {
		out = []HistorySample{}
	}
	writeJSON(w, http.StatusOK, HistoryReport{IntervalSeconds: historyInterval.Seconds(), Samples: out})
}

// sampleHistory records an aggregate sample every historyInterval until
// ctx ends.
func (d *dashboard) sampleHistory(ctx context.Context) {
	t := time.NewTicker(historyInterval)
	defer t.Stop()
	for {
		d.record(d.historySample(time.Now()))
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

func (d *dashboard) historySample(now time.Time) HistorySample {
	ms := d.viewMembers(now)
	ag := Aggregate(ms, now)
	s := HistorySample{Time: now.UnixMilli(), CPUMean: ag.CPUMean, CPUMax: ag.CPUMax, MemMean: ag.MemMean, MemMax: ag.MemMax,
		NetRxBps: ag.NetRxBps, NetTxBps: ag.NetTxBps, WithLoad: ag.Members}
	for _, m := range ms {
		switch m.Status {
		case mesh.StatusAlive:
			s.Alive++
		case mesh.StatusFailed:
			s.Failed++
		}
	}
	if l := d.deps.leader(); l != nil {
		s.Coordinator, s.Term = l.Coordinator, l.Term
	}
	return s
}

func (d *dashboard) record(s HistorySample) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.hist == nil {
		d.hist = make([]HistorySample, historySize)
	}
	d.hist[d.next] = s
	d.next = (d.next + 1) % len(d.hist)
	if d.next == 0 {
		d.full = true
	}
}

// watchElection turns changes of the named coordinator into events
// ("coordinator": a coordinator is named or replaced; "coordinator-lost":
// none is named any more), for /v1/events, the dashboard and the monitor,
// until ctx ends.
func (d *dashboard) watchElection(ctx context.Context) {
	if _, _, _, ok := d.deps.coordinator(); !ok {
		return
	}
	var coord string
	var term uint64
	for {
		c, t, ch, _ := d.deps.coordinator()
		switch {
		case c != "" && (c != coord || t != term):
			d.deps.addEvent(Event{Time: time.Now(), Type: "coordinator", Member: c, Detail: "term " + strconv.FormatUint(t, 10)})
		case c == "" && coord != "":
			d.deps.addEvent(Event{Time: time.Now(), Type: "coordinator-lost", Member: coord, Detail: "term " + strconv.FormatUint(term, 10)})
		}
		coord, term = c, t
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// addEvent records an event and streams it to monitors.
func (a *Agent) addEvent(e Event) {
	a.events.add(e)
	a.publishEvent(e)
}
