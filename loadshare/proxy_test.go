package loadshare

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// refusingAddr returns a loopback address nobody listens on.
func refusingAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// backend is an httptest server that counts requests and echoes what it saw.
type backend struct {
	*httptest.Server
	hits atomic.Int64
}

func newBackend(t *testing.T, name string) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Backend", name)
		w.Header().Set("X-Seen-For", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Host", r.Header.Get("X-Forwarded-Host"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Write(body)
	}))
	t.Cleanup(b.Close)
	return b
}

func addrOf(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

type members struct {
	mu    sync.Mutex
	cands []Candidate
}

func (m *members) get() []Candidate {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Candidate(nil), m.cands...)
}

func newTestProxy(t *testing.T, m *members, clock *fakeClock, cfg ProxyConfig) *httptest.Server {
	t.Helper()
	cfg.Members = m.get
	cfg.Now = clock.Now
	if cfg.Picker == nil {
		cfg.Picker = mustNew(t, RoundRobin, Options{})
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := NewProxy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return front
}

func do(t *testing.T, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestProxyForwardsWithHeaders(t *testing.T) {
	good := newBackend(t, "good")
	m := &members{cands: []Candidate{{Name: "good", Addr: addrOf(good.Server), Alive: true}}}
	front := newTestProxy(t, m, &fakeClock{}, ProxyConfig{})
	resp, body := do(t, "POST", front.URL+"/x?y=1", "hello")
	if resp.StatusCode != 200 || body != "hello" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Seen-For"); got != "127.0.0.1" {
		t.Errorf("X-Forwarded-For %q, want 127.0.0.1", got)
	}
	if got := resp.Header.Get("X-Seen-Host"); got != addrOf(front) {
		t.Errorf("X-Forwarded-Host %q, want %q", got, addrOf(front))
	}
	if got := resp.Header.Get("X-Seen-Proto"); got != "http" {
		t.Errorf("X-Forwarded-Proto %q, want http", got)
	}
}

func TestProxyRetriesRefusingMemberAndCoolsItOff(t *testing.T) {
	good := newBackend(t, "good")
	clock := &fakeClock{now: time.Unix(1000, 0)}
	m := &members{cands: []Candidate{
		{Name: "refusing", Addr: refusingAddr(t), Alive: true},
		{Name: "good", Addr: addrOf(good.Server), Alive: true},
	}}
	front := newTestProxy(t, m, clock, ProxyConfig{CoolOff: time.Minute})
	// A POST goes to the refusing member first (round-robin); nothing was
	// sent, so it is retried on the good one with its body intact.
	resp, body := do(t, "POST", front.URL, "payload")
	if resp.StatusCode != 200 || body != "payload" || resp.Header.Get("X-Backend") != "good" {
		t.Fatalf("status %d body %q backend %q", resp.StatusCode, body, resp.Header.Get("X-Backend"))
	}
	for range 10 {
		if resp, _ := do(t, "GET", front.URL, ""); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := good.hits.Load(); n != 11 {
		t.Errorf("good member served %d requests, want 11", n)
	}
	// After the cool-off the member is tried again, fails again, and the
	// request still succeeds.
	clock.Advance(2 * time.Minute)
	for range 4 {
		if resp, _ := do(t, "GET", front.URL, ""); resp.StatusCode != 200 {
			t.Fatalf("after cool-off: status %d", resp.StatusCode)
		}
	}
}

func TestProxyAllRefusing(t *testing.T) {
	m := &members{cands: []Candidate{
		{Name: "r1", Addr: refusingAddr(t), Alive: true},
		{Name: "r2", Addr: refusingAddr(t), Alive: true},
	}}
	front := newTestProxy(t, m, &fakeClock{}, ProxyConfig{})
	resp, body := do(t, "GET", front.URL, "")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "all 2 members tried failed") {
		t.Fatalf("status %d body %q, want 502 naming both members", resp.StatusCode, body)
	}
	// Both are now cooling off: nothing is eligible.
	resp, body = do(t, "GET", front.URL, "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "2 cooling off") {
		t.Fatalf("status %d body %q, want 503 with 2 cooling off", resp.StatusCode, body)
	}
}

func TestProxyNoEligibleMember(t *testing.T) {
	m := &members{cands: []Candidate{{Name: "dead", Addr: "127.0.0.1:1", Alive: false}}}
	front := newTestProxy(t, m, &fakeClock{}, ProxyConfig{})
	resp, body := do(t, "GET", front.URL, "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no eligible member: 1 known") {
		t.Fatalf("status %d body %q, want 503", resp.StatusCode, body)
	}
	m.cands = nil
	if resp, _ := do(t, "GET", front.URL, ""); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("no members: status %d, want 503", resp.StatusCode)
	}
}

func TestProxyHungMemberTimesOut(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		<-release
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })
	good := newBackend(t, "good")
	m := &members{cands: []Candidate{
		{Name: "hung", Addr: addrOf(hung), Alive: true},
		{Name: "good", Addr: addrOf(good.Server), Alive: true},
	}}
	front := newTestProxy(t, m, &fakeClock{}, ProxyConfig{ResponseHeaderTimeout: 100 * time.Millisecond})
	// GET is idempotent: retried on the good member.
	resp, _ := do(t, "GET", front.URL, "")
	if resp.StatusCode != 200 || resp.Header.Get("X-Backend") != "good" {
		t.Fatalf("GET: status %d backend %q", resp.StatusCode, resp.Header.Get("X-Backend"))
	}
	// A POST whose body was sent is not retried: 502, promptly.
	m.mu.Lock()
	m.cands = m.cands[:1]
	m.mu.Unlock()
	front2 := newTestProxy(t, m, &fakeClock{}, ProxyConfig{ResponseHeaderTimeout: 100 * time.Millisecond})
	resp, body := do(t, "POST", front2.URL, "not twice")
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "timeout") {
		t.Fatalf("POST: status %d body %q, want 502 naming the timeout", resp.StatusCode, body)
	}
}

func TestNewProxyErrors(t *testing.T) {
	m := func() []Candidate { return nil }
	for _, tc := range []struct {
		cfg  ProxyConfig
		want string
	}{
		{ProxyConfig{}, "Members is nil"},
		{ProxyConfig{Members: m, Scheme: "ftp"}, `"ftp"`},
		{ProxyConfig{Members: m, CoolOff: -time.Second}, "CoolOff -1s"},
		{ProxyConfig{Members: m, MaxAttempts: -2}, "MaxAttempts -2"},
	} {
		if _, err := NewProxy(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewProxy: %v, want an error containing %s", err, tc.want)
		}
	}
	var nm *NoMemberError
	if !errors.As(error(&NoMemberError{Err: ErrNoCandidate}), &nm) || !errors.Is(nm, ErrNoCandidate) {
		t.Error("NoMemberError does not unwrap to ErrNoCandidate")
	}
}
