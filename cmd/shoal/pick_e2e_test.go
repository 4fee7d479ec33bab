package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
)

// e2eBackend is a small HTTP backend on one loopback address that answers
// with its name and records the X-Forwarded-For header it saw.
type e2eBackend struct {
	name string
	port int
	mu   sync.Mutex
	hits int
	xff  map[string]int
}

func startBackend(t *testing.T, name, ip string) *e2eBackend {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	b := &e2eBackend{name: name, port: ln.Addr().(*net.TCPAddr).Port, xff: map[string]int{}}
	srv := &http.Server{Handler: b}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return b
}

func (b *e2eBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	b.hits++
	b.xff[r.Header.Get("X-Forwarded-For")]++
	b.mu.Unlock()
	io.WriteString(w, b.name)
}

// TestPickAndProxyProcesses: three agent processes on loopback, two offering
// service web with live backends (the first also runs the proxy), one
// offering service ghost at a port that refuses connections (and running a
// proxy for it). Picks go through /v1/pick and 'shoal pick'; requests go
// through the proxies; bad input gets a clear status and message, fast.
func TestPickAndProxyProcesses(t *testing.T) {
	b1 := startBackend(t, "web-1", "127.0.0.71")
	b2 := startBackend(t, "web-2", "127.0.0.72")
	ghostPort := freePort(t, "127.0.0.73")
	proxyWeb := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	proxyGhost := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	a := startAgent(t, "web-1", "127.0.0.71", "", "--tag", "service=web", "--tag", "port="+strconv.Itoa(b1.port), "--tag", "region=eu",
		"--proxy-listen", proxyWeb, "--proxy-service", "web", "--proxy-strategy", "p2c")
	startAgent(t, "web-2", "127.0.0.72", a.gossip, "--tag", "service=web", "--tag", "port="+strconv.Itoa(b2.port), "--tag", "region=us")
	g := startAgent(t, "ghost-1", "127.0.0.73", a.gossip, "--tag", "service=ghost", "--tag", "port="+strconv.Itoa(ghostPort),
		"--proxy-listen", proxyGhost, "--proxy-service", "ghost")

	poll(t, 15*time.Second, "both web members pickable", func() error {
		ps, err := cliJSON[[]client.Picked](a.http, "pick", "--service", "web", "--n", "2")
		if err != nil {
			return err
		}
		if len(ps) != 2 || ps[0].Name == ps[1].Name {
			return fmt.Errorf("picked %+v", ps)
		}
		return nil
	})

	// 'shoal pick' in each format.
	ps, err := cliJSON[[]client.Picked](a.http, "pick", "--service", "web", "--tag", "region=us", "--strategy", "round-robin")
	if err != nil || len(ps) != 1 || ps[0].Name != "web-2" || ps[0].Addr != fmt.Sprintf("127.0.0.72:%d", b2.port) {
		t.Fatalf("pick region=us: %+v %v", ps, err)
	}
	code, out, stderr := runCLI(t, "pick", "--http-addr", a.http, "--service", "web", "--n", "2")
	if code != 0 || !strings.HasPrefix(out, "NAME") || !strings.Contains(out, "web-1*") || !strings.Contains(out, fmt.Sprintf("127.0.0.72:%d", b2.port)) {
		t.Errorf("pick table: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "pick", "--http-addr", a.http, "--service", "web", "--tag", "region=eu", "--format", "addr")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprintf("127.0.0.71:%d", b1.port) {
		t.Errorf("pick --format addr: exit %d %q", code, out)
	}
	code, out, stderr = runCLI(t, "pick", "--http-addr", a.http, "--service", "web", "--n", "3", "--format", "addr")
	if code != 0 || len(strings.Fields(out)) != 2 || !strings.Contains(stderr, "only 2 eligible") {
		t.Errorf("pick --n 3 of 2: exit %d %q %q", code, out, stderr)
	}

	// Bad input through the CLI: one clear line, the right exit code, fast.
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown strategy", []string{"--service", "web", "--strategy", "fastest"}, 2, `"fastest" is unknown; valid strategies are p2c, weighted-random, swrr`},
		{"unknown service", []string{"--service", "mail"}, 1, `(404): unknown service "mail": no member has the tag service=mail (services offered: ghost, web)`},
		{"no eligible member", []string{"--service", "web", "--tag", "region=mars"}, 1, "(503): no eligible member: none of the 2 members offering service \"web\" can take work (2 do not match the tag filter region=mars)"},
		{"bad n", []string{"--service", "web", "--n", "0"}, 2, "--n 0"},
		{"bad format", []string{"--service", "web", "--format", "xml"}, 2, `"xml"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, _, stderr := runCLI(t, append([]string{"pick", "--http-addr", a.http}, c.args...)...)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if code != c.code || !strings.Contains(lines[len(lines)-1], c.want) {
				t.Errorf("exit %d (want %d); stderr %q should contain %q", code, c.code, stderr, c.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// The API's own answer to an unknown strategy (the CLI checks first).
	resp, err := http.Get("http://" + a.http + "/v1/pick?service=web&strategy=fastest")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(body), "least-loaded") {
		t.Errorf("/v1/pick strategy=fastest: %d %s", resp.StatusCode, body)
	}

	// Through the web proxy: 200s from web backends, X-Forwarded-For set.
	// (Which backend: p2c on two members with the same host load and no
	// requests in flight may well prefer one every time, so the spread is
	// not asserted here; shoal-proxybench measures it under load.)
	hc := &http.Client{Timeout: 10 * time.Second}
	seen := map[string]int{}
	for i := 0; i < 40; i++ {
		resp, err := hc.Get("http://" + proxyWeb + "/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("proxy request %d: %d %s", i, resp.StatusCode, b)
		}
		seen[string(b)]++
	}
	if seen["web-1"]+seen["web-2"] != 40 {
		t.Errorf("proxy answers: %v; want all 40 from web-1 or web-2", seen)
	}
	for _, b := range []*e2eBackend{b1, b2} {
		b.mu.Lock()
		if b.xff["127.0.0.1"] != b.hits {
			t.Errorf("%s: X-Forwarded-For seen %v over %d hits; want 127.0.0.1 on every one", b.name, b.xff, b.hits)
		}
		b.mu.Unlock()
	}

	// The ghost proxy: its one member refuses connections. 502 naming it,
	// then 503 while it cools off; neither waits. First, ghost-1 must hold
	// its own load (its first sample), or it has no eligible member yet.
	poll(t, 15*time.Second, "ghost-1 can pick itself", func() error {
		ps, err := cliJSON[[]client.Picked](g.http, "pick", "--service", "ghost")
		if err == nil && len(ps) != 1 {
			err = fmt.Errorf("picked %+v", ps)
		}
		return err
	})
	for i, want := range []struct {
		code  int
		words string
	}{
		{502, "member ghost-1 at 127.0.0.73:" + strconv.Itoa(ghostPort)},
		{503, "1 cooling off after failures"},
	} {
		start := time.Now()
		resp, err := hc.Get("http://" + proxyGhost + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want.code || !strings.Contains(string(b), want.words) {
			t.Errorf("ghost request %d: %d %q; want %d saying %q", i, resp.StatusCode, b, want.code, want.words)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("ghost request %d took %v", i, d)
		}
	}
}

func TestAgentProxyFlagsBadInput(t *testing.T) {
	base := []string{"agent", "--profile", "local", "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--bind", "127.0.0.31:0"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown proxy strategy", []string{"--proxy-listen", "127.0.0.1:0", "--proxy-service", "web", "--proxy-strategy", "fastest"},
			`proxy-strategy "fastest" is unknown; valid strategies are p2c, weighted-random, swrr, local-first, round-robin, random, least-loaded`},
		{"proxy without service", []string{"--proxy-listen", "127.0.0.1:0"}, "needs proxy-service"},
		{"service without proxy", []string{"--proxy-service", "web"}, "proxy-listen is not"},
		{"bad proxy address", []string{"--proxy-listen", "localhost:99999", "--proxy-service", "web"}, `proxy-listen "localhost:99999": port must be 0–65535`},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, append(base, c.args...)...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d (want 2: usage); stderr %q should contain %q", code, stderr, c.want)
			}
		})
	}
}
