package agent

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/mesh"
	"github.com/shoalmesh/shoal/metrics"
)

// metricValue reads one sample of a /metrics text: name{labels} value.
func shareMetricValue(text, name, labels string) (float64, bool) {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name+"{"+labels+"}") + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	return v, err == nil
}

// TestShareAndAvailabilityInProcess runs four agents: three offer web with
// capacities 1, 2 and 3 (and live backends), one alone offers cache. The
// first runs the proxy (smooth weighted round-robin). Picks through the Go
// client and requests through the proxy are shared as the weights say, and
// the shares sum to 1; when the cache member dies, its uptime and cache's
// availability fall below 1 on /v1/load and /metrics while web stays at 1.
func TestShareAndAvailabilityInProcess(t *testing.T) {
	var ports [3]int
	var backends [3]*backend
	for i := range 3 {
		backends[i] = &backend{name: fmt.Sprintf("s%d", i+1)}
		_, ports[i] = serveOn(t, fmt.Sprintf("127.0.0.%d", 141+i), backends[i])
	}
	web := func(i int) map[string]string {
		return map[string]string{"service": "web", "port": strconv.Itoa(ports[i]), "capacity": strconv.Itoa(i + 1)}
	}
	a1 := startTestAgent(t, "s1", "127.0.0.141", "", web(0), func(c *Config) {
		c.ProxyListen = "127.0.0.1:0"
		c.ProxyService = "web"
		c.ProxyStrategy = "swrr"
	})
	join := a1.cfg.Bind
	a2 := startTestAgent(t, "s2", "127.0.0.142", join, web(1), nil)
	a3 := startTestAgent(t, "s3", "127.0.0.143", join, web(2), nil)
	a4 := startTestAgent(t, "c1", "127.0.0.144", join, map[string]string{"service": "cache", "port": "6379"}, nil)
	// Idle and alike: every member's load is 0, so its weight is its
	// capacity whatever the age of its load.
	idle := metrics.Load{Cores: 2}
	for _, a := range []*Agent{a1, a2, a3, a4} {
		a.Monitor().Override(&idle)
	}
	c := client.New(a1.HTTPAddr(), "")
	ctx := context.Background()
	pollFor(t, 15*time.Second, "s1 sees four members alive with idle load", func() error {
		n := 0
		for _, m := range a1.mesh.View().Members() {
			if m.Status == mesh.StatusAlive && m.Load != nil && m.Load.CPUPercent == 0 && m.Load.MemPercent == 0 {
				n++
			}
		}
		return expect(n == 4, "%d of 4", n)
	})
	pollFor(t, 15*time.Second, "three web members eligible", func() error {
		got, err := c.Pick(ctx, client.PickRequest{Service: "web", N: 3})
		return expect(err == nil && len(got) == 3, "%v %v", got, err)
	})

	const picks = 600
	weights := map[string]float64{"s1": 1.0 / 6, "s2": 2.0 / 6, "s3": 3.0 / 6}
	for range picks {
		if _, err := c.Pick(ctx, client.PickRequest{Service: "web", Strategy: "swrr"}); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	const proxied = 300
	for i := range proxied {
		resp, err := hc.Get("http://" + a1.ProxyAddr() + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("proxied request %d: %d", i, resp.StatusCode)
		}
	}

	rep, err := c.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Measured == nil {
		t.Fatal("/v1/load has no measured figures")
	}
	var pickSum, proxySum float64
	var pickCount uint64
	for _, m := range rep.Members {
		s := m.Share
		if s == nil {
			t.Fatalf("%s has no share in /v1/load", m.Name)
		}
		if s.Uptime != 1 || s.UptimeRecent != 1 {
			t.Errorf("%s uptime %v (recent %v), want 1: nothing has failed", m.Name, s.Uptime, s.UptimeRecent)
		}
		w, isWeb := weights[m.Name]
		if !isWeb {
			if s.PickShare != -1 || s.Service != "cache" {
				t.Errorf("%s: %+v, want service cache without picks", m.Name, s)
			}
			continue
		}
		pickSum += s.PickShare
		proxySum += s.ProxyShare
		pickCount += s.Picks
		// The warm-up picks (n=3) count one for each member; swrr follows
		// the weights to within a pick or two.
		if math.Abs(s.PickShare-w) > 0.02 || math.Abs(s.ProxyShare-w) > 0.02 {
			t.Errorf("%s: pick share %.3f, proxy share %.3f (%d requests); want its weight %.3f", m.Name, s.PickShare, s.ProxyShare, s.ProxyRequests, w)
		}
	}
	if math.Abs(pickSum-1) > 1e-9 || math.Abs(proxySum-1) > 1e-9 {
		t.Errorf("web's shares sum to %v (picks) and %v (proxy), want 1", pickSum, proxySum)
	}
	if pickCount < picks || rep.Measured.Picks != pickCount || rep.Measured.ProxyRequests != proxied {
		t.Errorf("counted %d picks (total %d), %d proxied; want at least %d picks and %d proxied",
			pickCount, rep.Measured.Picks, rep.Measured.ProxyRequests, picks, proxied)
	}
	svc := map[string]client.ServiceMeasured{}
	for _, s := range rep.Measured.Services {
		svc[s.Service] = s
	}
	if w := svc["web"]; w.N != 3 || w.Healthy != 3 || w.Availability != 1 || math.Abs(w.ModelShare-1.0/3) > 1e-9 ||
		w.PickShareMin < 1.0/6-0.02 || w.PickShareMax > 0.5+0.02 {
		t.Errorf("web: %+v", w)
	}
	if rep.Measured.N != 4 || math.Abs(rep.Measured.ModelAvailability-0.75) > 1e-9 {
		t.Errorf("n=%d, model availability %v; want 4 and 0.75", rep.Measured.N, rep.Measured.ModelAvailability)
	}

	// The cache's only member dies.
	a4.Stop(false)
	pollFor(t, 30*time.Second, "s1 sees c1 down: c1's uptime and cache's availability fall, web's stays", func() error {
		rep, err := c.Load(ctx)
		if err != nil {
			return err
		}
		var c1 *client.MemberShare
		for _, m := range rep.Members {
			if m.Name == "c1" {
				if m.Status == mesh.StatusAlive {
					return fmt.Errorf("c1 still alive")
				}
				c1 = m.Share
			}
		}
		if c1 == nil || !(c1.Uptime < 1 && c1.UptimeRecent < 1) {
			return fmt.Errorf("c1 share %+v", c1)
		}
		for _, s := range rep.Measured.Services {
			switch s.Service {
			case "cache":
				if !(s.Availability < 1) || s.Healthy != 0 || s.N != 0 {
					return fmt.Errorf("cache %+v", s)
				}
			case "web":
				if s.Availability != 1 {
					return fmt.Errorf("web %+v", s)
				}
			}
		}
		return nil
	})
	text := scrape(t, a1.HTTPAddr())
	for _, c := range []struct {
		name, labels string
		check        func(float64) bool
		want         string
	}{
		{"shoal_member_uptime_ratio", `member="c1",window="lifetime"`, func(v float64) bool { return v > 0 && v < 1 }, "in (0, 1)"},
		{"shoal_member_uptime_ratio", `member="s2",window="recent"`, func(v float64) bool { return v == 1 }, "1"},
		{"shoal_service_availability_ratio", `service="cache",window="lifetime"`, func(v float64) bool { return v > 0 && v < 1 }, "in (0, 1)"},
		{"shoal_service_availability_ratio", `service="web",window="lifetime"`, func(v float64) bool { return v == 1 }, "1"},
		{"shoal_service_healthy_members", `service="web"`, func(v float64) bool { return v == 3 }, "3"},
		{"shoal_picks_total", `member="s3",service="web"`, func(v float64) bool { return v >= picks/2 }, fmt.Sprintf(">= %d", picks/2)},
		{"shoal_proxy_requests_total", `member="s1",service="web"`, func(v float64) bool { return v > 0 && v < proxied/3 }, fmt.Sprintf("in (0, %d)", proxied/3)},
		{"shoal_mesh_availability_ratio", `window="lifetime"`, func(v float64) bool { return v == 1 }, "1"},
	} {
		v, ok := shareMetricValue(text, c.name, c.labels)
		if !ok || !c.check(v) {
			t.Errorf("/metrics %s{%s} = %v (present %v), want %s", c.name, c.labels, v, ok, c.want)
		}
	}
	if strings.Contains(text, `shoal_member_uptime_ratio{member="",`) {
		t.Errorf("/metrics has an uptime without a member name")
	}
}
