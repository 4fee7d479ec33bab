package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testbin"
	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

func TestCandidateFromMember(t *testing.T) {
	load := metrics.Load{CPUPercent: 40, MemPercent: 20, NetRxBps: 100, NetTxBps: 200, Load1: 1.5, Cores: 4}
	now := time.Now()
	m := mesh.Member{Name: "w1", Addr: "10.0.0.5", Port: 7946, Status: mesh.StatusAlive, Self: true,
		Tags: map[string]string{"service": "web", "port": "8080", "capacity": "2.5"}}
	m.Shoal = mesh.ParseTags(m.Tags)
	m = m.WithLoad(load, now.Add(-1500*time.Millisecond))
	c, portOK := Candidate(m, now)
	want := loadshare.Candidate{Name: "w1", Addr: "10.0.0.5:8080", Tags: m.Tags, Alive: true, Local: true,
		CPUPercent: 40, MemPercent: 20, Cores: 4, Capacity: 2.5, LoadAvg: 1.5, NetRxBps: 100, NetTxBps: 200, Age: 1500 * time.Millisecond}
	if !portOK || fmt.Sprint(c) != fmt.Sprint(want) {
		t.Fatalf("Candidate = %+v, %v\nwant        %+v", c, portOK, want)
	}
	if c.Cap() != 2.5 {
		t.Errorf("Cap = %v, want the capacity tag 2.5", c.Cap())
	}

	cases := []struct {
		name     string
		edit     func(*mesh.Member)
		check    func(loadshare.Candidate, bool) error
		eligible bool
	}{
		{"failed is not alive", func(m *mesh.Member) { m.Status = mesh.StatusFailed }, func(c loadshare.Candidate, _ bool) error {
			return expect(!c.Alive, "Alive = true")
		}, false},
		{"left is not alive", func(m *mesh.Member) { m.Status = mesh.StatusLeft }, func(c loadshare.Candidate, _ bool) error {
			return expect(!c.Alive, "Alive = true")
		}, false},
		{"no load yet: never eligible", func(m *mesh.Member) { m.Load = nil }, func(c loadshare.Candidate, _ bool) error {
			return expect(c.Cores == 0 && c.Age > loadshare.DefaultMaxAge, "Cores %v Age %v", c.Cores, c.Age)
		}, false},
		{"stale load", func(m *mesh.Member) { *m = m.WithLoad(*m.Load, now.Add(-time.Hour)) }, func(c loadshare.Candidate, _ bool) error {
			return expect(c.Age == time.Hour, "Age %v", c.Age)
		}, false},
		{"non-numeric capacity: cores count", func(m *mesh.Member) { m.Tags = with(m.Tags, "capacity", "big") }, func(c loadshare.Candidate, _ bool) error {
			return expect(c.Capacity == 0 && c.Cap() == 4, "Capacity %v Cap %v", c.Capacity, c.Cap())
		}, true},
		{"negative capacity: cores count", func(m *mesh.Member) { m.Tags = with(m.Tags, "capacity", "-3") }, func(c loadshare.Candidate, _ bool) error {
			return expect(c.Capacity == 0, "Capacity %v", c.Capacity)
		}, true},
		{"infinite capacity: cores count", func(m *mesh.Member) { m.Tags = with(m.Tags, "capacity", "+Inf") }, func(c loadshare.Candidate, _ bool) error {
			return expect(c.Capacity == 0, "Capacity %v", c.Capacity)
		}, true},
		{"no port tag: bare host", func(m *mesh.Member) { m.Tags = with(m.Tags, "port", "") }, func(c loadshare.Candidate, ok bool) error {
			return expect(!ok && c.Addr == "10.0.0.5", "portOK %v Addr %q", ok, c.Addr)
		}, true},
		{"port out of range", func(m *mesh.Member) { m.Tags = with(m.Tags, "port", "70000") }, func(c loadshare.Candidate, ok bool) error {
			return expect(!ok, "portOK for port 70000")
		}, true},
		{"IPv6 address", func(m *mesh.Member) { m.Addr = "fd00::1" }, func(c loadshare.Candidate, ok bool) error {
			return expect(ok && c.Addr == "[fd00::1]:8080", "Addr %q", c.Addr)
		}, true},
		{"remote member", func(m *mesh.Member) { m.Self = false }, func(c loadshare.Candidate, _ bool) error {
			return expect(!c.Local, "Local = true")
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mm := m
			mm.Tags = with(m.Tags, "", "")
			tc.edit(&mm)
			mm.Shoal = mesh.ParseTags(mm.Tags)
			c, ok := Candidate(mm, now)
			if err := tc.check(c, ok); err != nil {
				t.Error(err)
			}
			if got := loadshare.Eligible(c, loadshare.WeightParams{}); got != tc.eligible {
				t.Errorf("Eligible = %v, want %v", got, tc.eligible)
			}
		})
	}
}

func expect(ok bool, format string, args ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf(format, args...)
}

// with returns a copy of tags with k=v set (removed when v is "").
func with(tags map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for a, b := range tags {
		out[a] = b
	}
	if k != "" {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func TestCandidatesByService(t *testing.T) {
	now := time.Now()
	l := metrics.Load{Cores: 2}
	ms := []mesh.Member{
		{Name: "a", Addr: "127.0.0.1", Status: mesh.StatusAlive, Tags: map[string]string{"service": "web", "port": "81"}},
		{Name: "b", Addr: "127.0.0.2", Status: mesh.StatusAlive, Tags: map[string]string{"service": "web"}},
		{Name: "c", Addr: "127.0.0.3", Status: mesh.StatusFailed, Tags: map[string]string{"service": "web", "port": "83"}},
		{Name: "d", Addr: "127.0.0.4", Status: mesh.StatusAlive, Tags: map[string]string{"service": "db", "port": "84"}},
	}
	for i := range ms {
		ms[i].Shoal = mesh.ParseTags(ms[i].Tags)
		ms[i] = ms[i].WithLoad(l, now)
	}
	names := func(cs []loadshare.Candidate) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Name+"@"+c.Addr)
		}
		return strings.Join(s, " ")
	}
	if got := names(Candidates(ms, "web", now)); got != "a@127.0.0.1:81 c@127.0.0.3:83" {
		t.Errorf("web: %s", got)
	}
	if got := names(Candidates(ms, "", now)); got != "a@127.0.0.1:81 b@127.0.0.2 c@127.0.0.3:83 d@127.0.0.4:84" {
		t.Errorf("all: %s", got)
	}

	// Why nothing is eligible, in words and status codes.
	for _, tc := range []struct {
		service string
		tags    map[string]string
		code    int
		words   []string
	}{
		{"mail", nil, 404, []string{`unknown service "mail"`, "services offered: db, web"}},
		{"web", map[string]string{"region": "eu"}, 503, []string{"3 do not match the tag filter region=eu"}},
		{"db", map[string]string{"region": "eu"}, 503, []string{"none of the 1 members offering service \"db\""}},
	} {
		_, err := pickCandidates(ms, tc.service, tc.tags, now)
		var pe *pickError
		if !errors.As(err, &pe) || pe.code != tc.code {
			t.Errorf("%s %v: err %v, want status %d", tc.service, tc.tags, err, tc.code)
			continue
		}
		for _, w := range tc.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.service, err, w)
			}
		}
	}
	ms[0].Status = mesh.StatusFailed
	_, err := pickCandidates(ms, "web", nil, now)
	if err == nil || !strings.Contains(err.Error(), "2 are not alive; 1 have no numeric port tag") {
		t.Errorf("web with a and c failed: %v", err)
	}
}

func TestInflightCountsUntilBodyClosed(t *testing.T) {
	addr, _ := serveOn(t, "127.0.0.1", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	f := &inflight{m: map[string]*atomic.Int64{}}
	ht := &http.Transport{}
	defer ht.CloseIdleConnections() // its keep-alive connection's goroutines would outlive the test
	tr := &countingTransport{next: ht, f: f}
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if n := f.get(addr); n != 1 {
		t.Errorf("in flight before the body is closed: %d, want 1", n)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp.Body.Close() // twice: counted once
	if n := f.get(addr); n != 0 {
		t.Errorf("in flight after close: %d, want 0", n)
	}
	// A refused connection is not left counted.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	req, _ = http.NewRequest("GET", "http://"+dead+"/", nil)
	if _, err := tr.RoundTrip(req); err == nil {
		t.Fatal("a closed port answered")
	}
	if n := f.get(dead); n != 0 {
		t.Errorf("in flight after a refused connection: %d, want 0", n)
	}
}

// serveOn runs an HTTP server on ip (any port) until the test ends.
func serveOn(t *testing.T, ip string, h http.Handler) (addr string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), ln.Addr().(*net.TCPAddr).Port
}

// freePort asks the kernel for a free TCP port on ip.
func freePort(t *testing.T, ip string) int { return testbin.FreePort(t, ip) }

// startTestAgent starts an in-process agent on ip (local profile).
func startTestAgent(t *testing.T, name, ip, join string, tags map[string]string, edit func(*Config)) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.Bind = fmt.Sprintf("%s:%d", ip, freePort(t, ip))
	cfg.Profile = mesh.ProfileLocal
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.SampleInterval = Duration(200 * time.Millisecond)
	cfg.LogLevel = "error"
	cfg.Tags = tags
	if join != "" {
		cfg.Join = []string{join}
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg, WithLogger(NewLogger(io.Discard, "error", false)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(false) })
	return a
}

// backend answers with its name and records the X-Forwarded-For it saw.
type backend struct {
	name string
	mu   sync.Mutex
	xff  []string
	hits int
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits++
	b.xff = append(b.xff, r.Header.Get("X-Forwarded-For"))
	b.mu.Unlock()
	w.Header().Set("X-Backend", b.name)
	io.WriteString(w, b.name)
}

func getJSON(t *testing.T, url string, out any) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v: %s", url, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// TestPickAndProxyInProcess runs three agents in one process: two offer
// service web with live backends, one offers web at a port that refuses
// connections. The first runs the proxy.
func TestPickAndProxyInProcess(t *testing.T) {
	b1, b2 := &backend{name: "w1"}, &backend{name: "w2"}
	_, p1 := serveOn(t, "127.0.0.61", b1)
	_, p2 := serveOn(t, "127.0.0.62", b2)
	p3 := freePort(t, "127.0.0.63") // nothing listens: connections are refused
	a1 := startTestAgent(t, "w1", "127.0.0.61", "", map[string]string{"service": "web", "port": strconv.Itoa(p1), "region": "eu"}, func(c *Config) {
		c.ProxyListen = "127.0.0.1:0"
		c.ProxyService = "web"
	})
	join := a1.cfg.Bind
	a2 := startTestAgent(t, "w2", "127.0.0.62", join, map[string]string{"service": "web", "port": strconv.Itoa(p2), "region": "us"}, nil)
	a3 := startTestAgent(t, "w3", "127.0.0.63", join, map[string]string{"service": "web", "port": strconv.Itoa(p3), "region": "us"}, nil)
	api := "http://" + a1.HTTPAddr()
	// One host's load read by three agents at different moments differs by
	// chance, and p2c then sends every request to the less loaded one: give
	// them the same load, so that the proxy check below can ask for both.
	same := metrics.Load{CPUPercent: 20, MemPercent: 30, Cores: 2}
	for _, a := range []*Agent{a1, a2, a3} {
		a.Monitor().Override(&same)
	}
	pollFor(t, 15*time.Second, "w1 holds the same load for w1 and w2", func() error {
		for _, m := range a1.mesh.View().Members() {
			if (m.Name == "w1" || m.Name == "w2") && (m.Load == nil || m.Load.CPUPercent != same.CPUPercent) {
				return fmt.Errorf("%s load %+v", m.Name, m.Load)
			}
		}
		return nil
	})

	pollFor(t, 15*time.Second, "three web members eligible", func() error {
		var got []client.Picked
		if code, body := getJSON(t, api+"/v1/pick?service=web&n=3", &got); code != 200 || len(got) != 3 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})

	var got []client.Picked
	code, body := getJSON(t, api+"/v1/pick?service=web&n=2&strategy=swrr&tag=region=us", &got)
	if code != 200 || len(got) != 2 {
		t.Fatalf("n=2 region=us: %d %s", code, body)
	}
	for _, p := range got {
		if p.Name == "w1" || !strings.HasPrefix(p.Addr, "127.0.0.6") || p.Weight <= 0 || p.LoadAgeSeconds < 0 {
			t.Errorf("picked %+v", p)
		}
	}
	if got[0].Name == got[1].Name {
		t.Errorf("n=2 picked %s twice", got[0].Name)
	}

	for _, tc := range []struct {
		query string
		code  int
		words string
	}{
		{"service=web&strategy=fastest", 400, `strategy "fastest" is unknown; valid strategies are p2c, weighted-random`},
		{"service=mail", 404, `unknown service "mail"`},
		{"service=web&tag=region=mars", 503, "no eligible member"},
		{"service=web&n=0", 400, `n "0": want a whole number from 1 to 100`},
		{"service=web&n=two", 400, `n "two"`},
		{"service=web&tag=region", 400, `tag filter "region": want key=value`},
	} {
		code, raw := getJSON(t, api+"/v1/pick?"+tc.query, nil)
		var eb client.ErrorBody
		_ = json.Unmarshal([]byte(raw), &eb)
		body := eb.Error
		if code != tc.code || !strings.Contains(body, tc.words) {
			t.Errorf("%s: %d %s; want %d saying %q", tc.query, code, body, tc.code, tc.words)
		}
	}

	// Through the proxy: every request lands on a live backend, even those
	// first sent to w3 (refused, retried elsewhere, w3 cooled off at once).
	hc := &http.Client{Timeout: 10 * time.Second}
	proxy := "http://" + a1.ProxyAddr()
	for i := 0; i < 40; i++ {
		resp, err := hc.Get(proxy + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || (string(b) != "w1" && string(b) != "w2") {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, b)
		}
	}
	b1.mu.Lock()
	h1 := b1.hits
	b1.mu.Unlock()
	b2.mu.Lock()
	h2 := b2.hits
	b2.mu.Unlock()
	if h1 == 0 || h2 == 0 {
		t.Errorf("hits w1 %d w2 %d: want both used", h1, h2)
	}
	for _, b := range []*backend{b1, b2} {
		b.mu.Lock()
		for _, x := range b.xff {
			if x != "127.0.0.1" {
				t.Errorf("%s saw X-Forwarded-For %q, want 127.0.0.1", b.name, x)
			}
		}
		b.mu.Unlock()
	}
	if c := a1.proxy.proxy.CoolingOff(); len(c) != 1 || c[0] != "w3" {
		t.Errorf("cooling off: %v, want [w3]", c)
	}
	if n := a1.proxy.flight.get(fmt.Sprintf("127.0.0.61:%d", p1)); n != 0 {
		t.Errorf("w1 still has %d requests in flight", n)
	}
	// /metrics shows the proxy's gauges.
	_, metricsText := getJSON(t, api+"/metrics", nil)
	if !strings.Contains(metricsText, "shoal_proxy_members_cooling_off 1") {
		t.Errorf("/metrics lacks shoal_proxy_members_cooling_off 1")
	}
}

// TestProxyNoLiveBackend: a proxy whose only member refuses connections
// answers 502 naming it, then 503 while it cools off; never a hang.
func TestProxyNoLiveBackend(t *testing.T) {
	port := freePort(t, "127.0.0.64")
	a := startTestAgent(t, "g1", "127.0.0.64", "", map[string]string{"service": "ghost", "port": strconv.Itoa(port)}, func(c *Config) {
		c.ProxyListen = "127.0.0.1:0"
		c.ProxyService = "ghost"
	})
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func() (int, string, time.Duration) {
		start := time.Now()
		resp, err := hc.Get("http://" + a.ProxyAddr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), time.Since(start)
	}
	// Before the member's own load is in the View, nothing is eligible: 503.
	pollFor(t, 10*time.Second, "ghost member eligible", func() error {
		if code, body, _ := get(); code != 502 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	code, body, took := get()
	if code != 503 || !strings.Contains(body, "1 cooling off after failures") || took > 2*time.Second {
		t.Errorf("while cooling off: %d %q after %v", code, body, took)
	}
}
