package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
)

// TestLoadShowsSharesUptimeAndTheModel: two agent processes offer web;
// after picks through the first, 'shoal load' has PICK%, PROXY% and UP%
// columns with the measured figures, and a footer with the model for n=2
// beside the measured availability; --format json carries the same.
func TestLoadShowsSharesUptimeAndTheModel(t *testing.T) {
	a := startAgent(t, "ld-1", "127.0.0.151", "", "--tag", "service=web", "--tag", "port=8001")
	startAgent(t, "ld-2", "127.0.0.152", a.gossip, "--tag", "service=web", "--tag", "port=8002")
	c := client.New(a.http, "")
	ctx := context.Background()
	poll(t, 15*time.Second, "both web members eligible", func() error {
		got, err := c.Pick(ctx, client.PickRequest{Service: "web", N: 2})
		if err == nil && len(got) != 2 {
			err = fmt.Errorf("picked %d", len(got))
		}
		return err
	})
	for range 40 {
		if _, err := c.Pick(ctx, client.PickRequest{Service: "web", Strategy: "swrr"}); err != nil {
			t.Fatal(err)
		}
	}

	code, out, stderr := runCLI(t, "load", "--http-addr", a.http)
	if code != 0 {
		t.Fatalf("shoal load: exit %d: %s", code, stderr)
	}
	lines := strings.Split(out, "\n")
	head := strings.Fields(lines[0])
	if n := len(head); n < 3 || strings.Join(head[n-3:], " ") != "PICK% PROXY% UP%" {
		t.Errorf("header %q does not end with PICK%% PROXY%% UP%%", lines[0])
	}
	picks := map[string]float64{}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 12 || !strings.HasPrefix(f[0], "ld-") {
			continue
		}
		pick, proxy, up := f[len(f)-3], f[len(f)-2], f[len(f)-1]
		v, err := strconv.ParseFloat(strings.TrimSuffix(pick, "%"), 64)
		if err != nil {
			t.Errorf("%s: PICK%% %q", f[0], pick)
		}
		picks[f[0]] = v
		if proxy != "-" || up != "100.0%" {
			t.Errorf("%s: PROXY%% %q UP%% %q; want - (no proxy) and 100.0%%", f[0], proxy, up)
		}
	}
	// The warm-up picks both; how the 40 after it split depends on the
	// host's real load (the agent test TestShareAndAvailabilityInProcess
	// checks that they follow the weights).
	if len(picks) != 2 || math.Abs(picks["ld-1"]+picks["ld-2"]-100) > 0.15 || picks["ld-1"] <= 0 || picks["ld-2"] <= 0 {
		t.Errorf("PICK%% %v: want two shares above 0 summing to 100%%\n%s", picks, out)
	}
	for _, want := range []string{"n=2: model P=N/2 (50.0% each), A=1-1/2=0.50; measured: uptime 100.0% mean (last 5m 100.0%), available 100.0%",
		"service web, n=2: model P=N/2 (50.0% each), A=1-1/2=0.50; measured: available 100.0% (last 5m 100.0%), 2 healthy, picks "} {
		if !strings.Contains(out, want) {
			t.Errorf("shoal load lacks %q:\n%s", want, out)
		}
	}

	rep, err := cliJSON[client.LoadReport](a.http, "load")
	if err != nil {
		t.Fatal(err)
	}
	if m := rep.Measured; m == nil || m.N != 2 || m.ModelAvailability != 0.5 || m.Picks < 42 || len(m.Services) != 1 || m.Services[0].Availability != 1 {
		t.Errorf("--format json measured: %+v", rep.Measured)
	}
	for _, m := range rep.Members {
		if m.Share == nil || m.Share.Uptime != 1 || m.Share.PickShare <= 0 || m.Share.ProxyShare != -1 {
			t.Errorf("--format json %s share: %+v", m.Name, m.Share)
		}
	}
}

// The footer for a canned report: a failed member's uptime, a service with
// no healthy member, members without a service, and "-" where nothing was
// measured.
func TestLoadFooterPutsTheModelBesideTheMeasured(t *testing.T) {
	rep := client.LoadReport{
		Members: []client.Member{
			{Name: "a", Status: "alive", Load: &client.Load{CPUPercent: 10, Cores: 2}, Share: &client.MemberShare{Service: "web", Picks: 30, PickShare: 0.3, ProxyShare: -1, Uptime: 1}},
			{Name: "b", Status: "failed", LoadAgeSeconds: -1, Share: &client.MemberShare{Service: "db", PickShare: -1, ProxyShare: -1, Uptime: 0.25}},
			{Name: "c", Status: "alive", LoadAgeSeconds: -1},
		},
		Measured: &client.Measured{N: 5, ModelShare: 0.2, ModelAvailability: 0.8, UptimeMean: 0.85, UptimeRecentMean: 0.7,
			Availability: 1, AvailabilityRecent: 1, RecentSeconds: 300, Picks: 100,
			Services: []client.ServiceMeasured{
				{Service: "", N: 1, ModelShare: 1, ModelAvailability: 0, Availability: -1, AvailabilityRecent: -1, PickShareMin: -1, PickShareMax: -1, ProxyShareMin: -1, ProxyShareMax: -1},
				{Service: "db", N: 0, Availability: 0.25, AvailabilityRecent: 0, PickShareMin: -1, PickShareMax: -1, ProxyShareMin: -1, ProxyShareMax: -1},
				{Service: "web", N: 3, Healthy: 3, ModelShare: 1.0 / 3, ModelAvailability: 2.0 / 3, Availability: 0.999, AvailabilityRecent: 1,
					Picks: 100, PickShareMin: 0.3, PickShareMax: 0.36, ProxyShareMin: -1, ProxyShareMax: -1},
			}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(rep)
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"shoal", "load", "--http-addr", strings.TrimPrefix(srv.URL, "http://")}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"n=5: model P=N/5 (20.0% each), A=1-1/5=0.80; measured: uptime 85.0% mean (last 5m 70.0%), available 100.0% (last 5m 100.0%), 100 picks, 0 proxied",
		"no service, n=1: model P=N/1 (100.0% each), A=1-1/1=0.00; measured: picks -, proxied -",
		"service db, n=0: no alive member, the model has nothing to say; measured: available 25.0% (last 5m 0.0%), 0 healthy, picks -, proxied -",
		"service web, n=3: model P=N/3 (33.3% each), A=1-1/3=0.67; measured: available 99.9% (last 5m 100.0%), 3 healthy, picks 30.0-36.0% of 100, proxied -",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("footer lacks\n  %s\nin\n%s", want, out.String())
		}
	}
	for name, cells := range map[string]string{"a": "30.0%  -       100.0%", "b": "-      -       25.0%", "c": "-      -       -"} {
		var line string
		for _, l := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(l, name+" ") {
				line = l
			}
		}
		if !strings.HasSuffix(strings.TrimRight(line, " "), cells) {
			t.Errorf("row %s = %q, want it to end with %q", name, line, cells)
		}
	}
}
