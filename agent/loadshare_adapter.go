package agent

// The load-sharing adapter: it turns the mesh View into loadshare
// candidates, answers GET /v1/pick, and runs the forwarding proxy
// (--proxy-listen, --proxy-service, --proxy-strategy).
//
// The proxy's fast signal. Gossiped load (CPU, run queue) reaches the proxy
// seconds after it changes, and describes the host, not the service: a
// backend that is slow because it queues behind its own concurrency limit
// barely shows in its host's CPU. So the proxy also counts its own requests
// in flight to each member and adds them to the member's run queue
// (Candidate.LoadAvg = gossiped load1 + requests in flight from this proxy).
// The count is exact and instant; with the default picker (p2c) a member that
// answers slowly accumulates requests in flight and stops winning
// comparisons within a few requests. --proxy-inflight-count=false turns the
// count off (gossip alone), for comparison in tools/cmd/shoal-proxybench.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoalmesh/shoal/client"
	prometheus "github.com/shoalmesh/shoal/internal/prom"
	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
)

// MaxPickN bounds /v1/pick's n.
const MaxPickN = 100

// noLoadAge is the Age of a member whose load has not arrived yet: older
// than any MaxAge, so it is never picked.
const noLoadAge = time.Duration(math.MaxInt64)

// Candidate turns one member into a load-sharing candidate, its load's age
// taken at now. Addr is the member's address joined with its "port" tag;
// portOK is false (and Addr the bare host) when the tag is missing or not a
// port number.
func Candidate(m mesh.Member, now time.Time) (c loadshare.Candidate, portOK bool) {
	c = loadshare.Candidate{
		Name:  m.Name,
		Addr:  m.Addr,
		Tags:  m.Tags,
		Alive: m.Status == mesh.StatusAlive,
		Local: m.Self,
		Age:   noLoadAge,
	}
	if p := m.Shoal.Port; p != 0 {
		c.Addr = net.JoinHostPort(m.Addr, strconv.Itoa(p))
		portOK = true
	}
	c.Capacity = m.Shoal.Capacity
	if l := m.Load; l != nil {
		c.CPUPercent = l.CPUPercent
		c.MemPercent = l.MemPercent
		c.Cores = l.Cores
		c.LoadAvg = l.Load1
		c.NetRxBps = l.NetRxBps
		c.NetTxBps = l.NetTxBps
		c.Age = m.LoadAge(now)
	}
	return c, portOK
}

// Candidates turns the mesh's members into load-sharing candidates. With a
// service, only members tagged service=<service> that carry a port tag are
// returned, addressed at that port; with none, every member is returned.
// Members that are not alive or whose load is missing or too old are kept
// (the pickers skip them), so that callers can tell why nothing is eligible.
func Candidates(ms []mesh.Member, service string, now time.Time) []loadshare.Candidate {
	out := make([]loadshare.Candidate, 0, len(ms))
	for _, m := range ms {
		if service != "" && m.Shoal.Service != service {
			continue
		}
		c, portOK := Candidate(m, now)
		if service != "" && !portOK {
			continue
		}
		out = append(out, c)
	}
	return out
}

// pickError is a /v1/pick failure with its HTTP status.
type pickError struct {
	code int
	err  error
}

func (e *pickError) Error() string { return e.err.Error() }

// pickCandidates returns the eligible candidates for a pick, or a pickError
// saying why there are none: 404 when no member offers the service at all,
// 503 when some do but none is eligible now.
func pickCandidates(ms []mesh.Member, service string, tags map[string]string, now time.Time) ([]loadshare.Candidate, error) {
	var offering, notAlive, noPort, noLoad, stale, tagMiss int
	var cands []loadshare.Candidate
	services := map[string]bool{}
	for _, m := range ms {
		if s := m.Shoal.Service; s != "" {
			services[s] = true
		}
		if service != "" && m.Shoal.Service != service {
			continue
		}
		offering++
		c, portOK := Candidate(m, now)
		match := true
		for k, v := range tags {
			if m.Tags[k] != v {
				match = false
			}
		}
		switch {
		case !match:
			tagMiss++
		case !c.Alive:
			notAlive++
		case service != "" && !portOK:
			noPort++
		case m.Load == nil:
			noLoad++
		case !loadshare.Eligible(c, loadshare.WeightParams{}):
			stale++
		default:
			cands = append(cands, c)
		}
	}
	if len(cands) > 0 {
		return cands, nil
	}
	if service != "" && offering == 0 {
		names := make([]string, 0, len(services))
		for s := range services {
			names = append(names, s)
		}
		sort.Strings(names)
		offered := "none"
		if len(names) > 0 {
			offered = strings.Join(names, ", ")
		}
		return nil, &pickError{http.StatusNotFound, fmt.Errorf("unknown service %q: no member has the tag %s=%s (services offered: %s)", service, mesh.TagService, service, offered)}
	}
	what := "members"
	if service != "" {
		what = fmt.Sprintf("members offering service %q", service)
	}
	var why []string
	for _, r := range []struct {
		n    int
		text string
	}{
		{tagMiss, "do not match the tag filter " + fmtTagFilter(tags)},
		{notAlive, "are not alive"},
		{noPort, "have no numeric " + mesh.TagPort + " tag"},
		{noLoad, "have not sent their load yet"},
		{stale, fmt.Sprintf("have load information older than %v", loadshare.DefaultMaxAge)},
	} {
		if r.n > 0 {
			why = append(why, fmt.Sprintf("%d %s", r.n, r.text))
		}
	}
	return nil, &pickError{http.StatusServiceUnavailable, fmt.Errorf("no eligible member: none of the %d %s can take work (%s)", offering, what, strings.Join(why, "; "))}
}

func fmtTagFilter(tags map[string]string) string {
	parts := make([]string, 0, len(tags))
	for k, v := range tags {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// pickers keeps one picker per (strategy, service, tags), so that stateful
// pickers (round-robin, swrr) cycle across requests.
type pickers struct {
	mu   sync.Mutex
	m    map[string]loadshare.Picker
	seed atomic.Uint64
}

const maxCachedPickers = 256

func (p *pickers) get(strategy, key string) (loadshare.Picker, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := strategy + "\x00" + key
	if pk, ok := p.m[k]; ok {
		return pk, nil
	}
	pk, err := loadshare.New(strategy, loadshare.Options{Rand: newRand(p.seed.Add(1))})
	if err != nil {
		return nil, err
	}
	if p.m == nil || len(p.m) >= maxCachedPickers {
		p.m = map[string]loadshare.Picker{}
	}
	p.m[k] = pk
	return pk, nil
}

func newRand(salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), salt))
}

// loadshareDeps is what GET /v1/pick, the forwarding proxy and its
// collector need from the agent, and all they reach: the agent builds it in
// one place (agentLoadshareDeps).
type loadshareDeps struct {
	// view returns the mesh's current View.
	view func() *mesh.View
	// countPick counts a pick of a member, countProxied a proxied request
	// a member answered; service is the member's service tag (share.go).
	countPick, countProxied func(name, service string)
	// proxy returns the forwarding proxy, nil when none runs.
	proxy func() *proxyRunner
}

// agentLoadshareDeps wires the pick handler, the proxy and its collector
// to the agent's mesh, share tracker and proxy. They are read at each call:
// the handler may be built before Start makes them.
func agentLoadshareDeps(a *Agent) loadshareDeps {
	return loadshareDeps{
		view:         func() *mesh.View { return a.mesh.View() },
		countPick:    func(name, service string) { a.shares.countPick(name, service) },
		countProxied: func(name, service string) { a.shares.countProxied(name, service) },
		proxy:        func() *proxyRunner { return a.proxy },
	}
}

func handlePick(deps loadshareDeps, pks *pickers, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n := 1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > MaxPickN {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("n %q: want a whole number from 1 to %d", s, MaxPickN))
			return
		}
		n = v
	}
	tags := map[string]string{}
	for _, t := range q["tag"] {
		k, v, ok := strings.Cut(t, "=")
		if !ok || k == "" {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("tag filter %q: want key=value", t))
			return
		}
		tags[k] = v
	}
	strategy, service := q.Get("strategy"), q.Get("service")
	pk, err := pks.get(strategy, service+"\x00"+fmtTagFilter(tags))
	if err != nil {
		writeErr(w, http.StatusBadRequest, fmt.Errorf("strategy %q is unknown; valid strategies are %s", strategy, strings.Join(loadshare.Strategies(), ", ")))
		return
	}
	cands, err := pickCandidates(deps.view().Members(), service, tags, time.Now())
	if err != nil {
		var pe *pickError
		if errors.As(err, &pe) {
			if pe.code == http.StatusServiceUnavailable {
				w.Header().Set("Retry-After", "1")
			}
			writeErr(w, pe.code, pe.err)
			return
		}
		writeErr(w, http.StatusInternalServerError, err)
		return
	}
	picked, err := loadshare.PickN(pk, cands, n)
	if len(picked) == 0 {
		w.Header().Set("Retry-After", "1")
		writeErr(w, http.StatusServiceUnavailable, fmt.Errorf("no eligible member: %v", err))
		return
	}
	out := make([]client.Picked, len(picked))
	for i, c := range picked {
		deps.countPick(c.Name, c.Tags[mesh.TagService]) // share.go
		out[i] = client.Picked{
			Name: c.Name, Addr: c.Addr, Self: c.Local,
			Weight:   loadshare.Weight(c, loadshare.WeightParams{}),
			Load:     loadshare.Load(c),
			Capacity: c.Cap(),
		}
		out[i].LoadAgeSeconds = -1
		if c.Age != noLoadAge {
			out[i].LoadAgeSeconds = c.Age.Seconds()
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *Agent) registerPickRoutes(mux *http.ServeMux, reg *prometheus.Registry) {
	deps, pks := agentLoadshareDeps(a), &pickers{}
	mux.HandleFunc("GET /v1/pick", func(w http.ResponseWriter, r *http.Request) { handlePick(deps, pks, w, r) })
	reg.MustRegister(&proxyCollector{proxy: deps.proxy}, newShareCollector(agentShareCollectorDeps(a))) // share.go
}

// proxyRunner runs the forwarding proxy.
type proxyRunner struct {
	service  string
	proxy    *loadshare.Proxy
	srv      *http.Server
	ln       net.Listener
	tr       *http.Transport
	flight   *inflight
	useCount bool
	deps     loadshareDeps // the View, and where answered requests are counted
	snap     atomic.Pointer[candSnapshot]
}

// candSnapshot is the service's candidates from one View, and the members
// they came from (for their load's age, which moves without a new View).
type candSnapshot struct {
	view   *mesh.View
	cands  []loadshare.Candidate
	mems   []mesh.Member
	byAddr map[string]int // candidate index by address
}

// snapshot returns the candidates of the current View, made again only
// when the View changes.
func (pr *proxyRunner) snapshot(now time.Time) *candSnapshot {
	v := pr.deps.view()
	s := pr.snap.Load()
	if s == nil || s.view != v {
		s = &candSnapshot{view: v, byAddr: map[string]int{}}
		for _, m := range v.Members() {
			if m.Shoal.Service != pr.service && pr.service != "" {
				continue
			}
			if c, portOK := Candidate(m, now); portOK || pr.service == "" {
				s.byAddr[c.Addr] = len(s.cands)
				s.cands, s.mems = append(s.cands, c), append(s.mems, m)
			}
		}
		pr.snap.Store(s)
	}
	return s
}

// answered counts a proxied request for the member at addr, which gave a
// response (share.go).
func (pr *proxyRunner) answered(addr string) {
	s := pr.snap.Load()
	if s == nil {
		return
	}
	if i, ok := s.byAddr[addr]; ok {
		pr.deps.countProxied(s.mems[i].Name, s.mems[i].Shoal.Service)
	}
}

// members returns the service's candidates with this proxy's requests in
// flight added to their run queue. They are made again only when the View
// changes; the ages are taken now.
func (pr *proxyRunner) members() []loadshare.Candidate {
	now := time.Now()
	s := pr.snapshot(now)
	out := make([]loadshare.Candidate, len(s.cands))
	copy(out, s.cands)
	for i := range out {
		if s.mems[i].Load != nil {
			out[i].Age = s.mems[i].LoadAge(now)
		}
		if pr.useCount {
			out[i].LoadAvg += float64(pr.flight.get(out[i].Addr))
		}
	}
	return out
}

// ProxyAddr returns the proxy's bound address ("" when no proxy runs).
func (a *Agent) ProxyAddr() string {
	if a.proxy == nil || a.proxy.ln == nil {
		return ""
	}
	return a.proxy.ln.Addr().String()
}

func (a *Agent) startProxy(ctx context.Context) error {
	cfg := a.cfg
	if cfg.ProxyListen == "" {
		return nil
	}
	picker, err := loadshare.New(cfg.ProxyStrategy, loadshare.Options{Rand: newRand(1)})
	if err != nil {
		return fmt.Errorf("%w: proxy-strategy: %v", ErrConfig, err)
	}
	timing := cfg.preset()
	pr := &proxyRunner{
		service:  cfg.ProxyService,
		flight:   &inflight{m: map[string]*atomic.Int64{}},
		useCount: cfg.ProxyInflightCount,
		deps:     agentLoadshareDeps(a),
	}
	pr.tr = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: timing.ProxyDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timing.ProxyResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	pr.proxy, err = loadshare.NewProxy(loadshare.ProxyConfig{
		Members:   pr.members,
		Picker:    picker,
		Transport: &countingTransport{next: pr.tr, f: pr.flight, answered: pr.answered},
		Logger:    a.log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.ProxyListen)
	if err != nil {
		return fmt.Errorf("proxy-listen %s: %w", cfg.ProxyListen, err)
	}
	pr.ln = ln
	pr.srv = &http.Server{Handler: pr.proxy, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	a.proxy = pr
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := pr.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("proxy stopped", "err", err)
		}
	}()
	a.log.Info("proxy started", "listen", ln.Addr().String(), "service", cfg.ProxyService,
		"strategy", cmpOr(cfg.ProxyStrategy, loadshare.Default), "inflight_signal", pr.useCount)
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func (a *Agent) stopProxy() {
	pr := a.proxy
	if pr == nil || pr.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := pr.srv.Shutdown(ctx); err != nil {
		_ = pr.srv.Close()
	}
	pr.tr.CloseIdleConnections()
}

// inflight counts this proxy's requests in flight per member address.
type inflight struct {
	mu sync.RWMutex
	m  map[string]*atomic.Int64
}

func (f *inflight) counter(addr string) *atomic.Int64 {
	f.mu.RLock()
	c := f.m[addr]
	f.mu.RUnlock()
	if c != nil {
		return c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c = f.m[addr]; c == nil {
		c = new(atomic.Int64)
		f.m[addr] = c
	}
	return c
}

func (f *inflight) get(addr string) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if c := f.m[addr]; c != nil {
		return c.Load()
	}
	return 0
}

func (f *inflight) each(fn func(addr string, n int64)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for a, c := range f.m {
		fn(a, c.Load())
	}
}

// countingTransport counts a request in flight from the moment it is sent
// until its response body is closed (or the attempt fails).
type countingTransport struct {
	next http.RoundTripper
	f    *inflight
	// answered, when set, is told the address of each member that gave a
	// response.
	answered func(addr string)
}

func (t *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c := t.f.counter(req.URL.Host)
	c.Add(1)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		c.Add(-1)
		return nil, err
	}
	if t.answered != nil {
		t.answered(req.URL.Host)
	}
	if resp.StatusCode == http.StatusSwitchingProtocols || resp.Body == nil {
		c.Add(-1) // an upgraded connection is not a request waiting for service
		return resp, nil
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, c: c}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	c    *atomic.Int64
	once sync.Once
}

func (b *countedBody) Close() error {
	b.once.Do(func() { b.c.Add(-1) })
	return b.ReadCloser.Close()
}

// proxyCollector exports the proxy's requests in flight and cool-offs.
type proxyCollector struct {
	proxy func() *proxyRunner // nil result: no proxy runs
}

var (
	descInflight = prometheus.NewDesc("shoal_proxy_inflight_requests", "Requests the forwarding proxy has in flight, per member address.", []string{"addr"}, nil)
	descCooling  = prometheus.NewDesc("shoal_proxy_members_cooling_off", "Members the forwarding proxy leaves out after a failure.", nil, nil)
)

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descInflight
	ch <- descCooling
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	pr := c.proxy()
	if pr == nil || pr.proxy == nil {
		return
	}
	pr.flight.each(func(addr string, n int64) {
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(n), addr)
	})
	ch <- prometheus.MustNewConstMetric(descCooling, prometheus.GaugeValue, float64(len(pr.proxy.CoolingOff())))
}
