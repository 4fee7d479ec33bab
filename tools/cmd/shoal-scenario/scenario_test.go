package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScenarioSmoke runs the whole mesh scenario with three agents per
// implementation: real processes, a stock serf built from the module proxy
// (or reused from .cache/bin), iptables accounting when run as root.
// It takes about half a minute, so it runs only with SHOAL_SCENARIO=1:
//
//	cd tools && SHOAL_SCENARIO=1 go test -run TestScenarioSmoke -v ./cmd/shoal-scenario
func TestScenarioSmoke(t *testing.T) {
	if os.Getenv("SHOAL_SCENARIO") != "1" {
		t.Skip("set SHOAL_SCENARIO=1 to run the mesh scenario with real agent processes")
	}
	cfg := DefaultConfig()
	cfg.N, cfg.Idle, cfg.Settle, cfg.Trials = 3, 2*time.Second, time.Second, 1
	cfg.LoadRounds, cfg.LoadWindow, cfg.Timeout = 4, 2*time.Second, 60*time.Second
	// Own addresses, so that a full run elsewhere on the machine does not collide.
	cfg.ShoalNet, cfg.SerfNet = "127.0.12", "127.0.22"
	cfg.Command = "cd tools && SHOAL_SCENARIO=1 go test -run TestScenarioSmoke ./cmd/shoal-scenario"
	cfg.Log = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := RunMesh(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.Table())

	for _, ir := range []*ImplResult{res.Shoal, res.Serf} {
		if len(ir.RSSBytes) != cfg.N || ir.RSS.Max <= 1e6 {
			t.Errorf("%s: RSS %v", ir.Name, ir.RSSBytes)
		}
		if len(ir.IdleCPUPct) != cfg.N || math.IsNaN(ir.IdleCPU.Mean) || ir.IdleCPU.Mean < 0 {
			t.Errorf("%s: idle CPU %v", ir.Name, ir.IdleCPUPct)
		}
		if len(ir.Joins) != 1 || ir.Joins[0].AllSeconds <= 0 || ir.Joins[0].Observers != cfg.N+1 {
			t.Errorf("%s: joins %+v", ir.Name, ir.Joins)
		}
		if len(ir.Detections) != 1 || ir.Detections[0].AllSeconds <= 0 || ir.Detections[0].Observers != cfg.N {
			t.Errorf("%s: detections %+v", ir.Name, ir.Detections)
		}
		if ir.GossipBpsFrom == "iptables" && !(ir.GossipBps > 0) {
			t.Errorf("%s: gossip bytes/s %v with iptables", ir.Name, ir.GossipBps)
		}
	}
	if la := res.Shoal.LoadAge; la == nil || la.Pairs != cfg.LoadRounds*cfg.N*(cfg.N-1) || math.IsNaN(la.P99) {
		t.Errorf("load age %+v", res.Shoal.LoadAge)
	}
	if !(res.Shoal.AgentBytesOutPerSec > 0) {
		t.Errorf("shoal's own byte counters: %v", res.Shoal.AgentBytesOutPerSec)
	}

	// Both output formats.
	dir := t.TempDir()
	jp, mp := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.md")
	if err := res.WriteFile(jp); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(jp)
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON output: %v", err)
	}
	if err := res.WriteFile(mp); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(mp); !strings.Contains(string(b), "| metric | shoal | serf | shoal/serf |") {
		t.Errorf("markdown output lacks the table:\n%s", b)
	}
}

func TestParseStatTicks(t *testing.T) {
	// A command name with spaces and a parenthesis.
	stat := "1234 (we (ird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 12 0 5 0 0\n"
	got, err := parseStatTicks([]byte(stat))
	if err != nil || got != 287 {
		t.Fatalf("got %d, %v; want 287", got, err)
	}
	if _, err := parseStatTicks([]byte("garbage")); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestParseStatus(t *testing.T) {
	st := "Name:\tshoal\nVmPeak:\t 1000 kB\nVmHWM:\t   22000 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n"
	rss, hwm, err := parseStatus([]byte(st))
	if err != nil || rss != 20480*1024 || hwm != 22000*1024 {
		t.Fatalf("rss %d hwm %d err %v", rss, hwm, err)
	}
	if _, _, err := parseStatus([]byte("Name:\tx\n")); err == nil {
		t.Fatal("no VmRSS accepted")
	}
}

func TestParseIptables(t *testing.T) {
	out := `Chain SHOALSCEN-1 (1 references)
    pkts      bytes target     prot opt in     out     source               destination         
     120    45000 RETURN     17   --  *      *       0.0.0.0/0            127.0.10.0/24        udp dpt:7946 /* shoal-udp */
       0        0 RETURN     17   --  *      *       127.0.10.0/24        0.0.0.0/0            udp spt:7946 /* shoal-udp-out */
      10     2000 RETURN     6    --  *      *       0.0.0.0/0            127.0.10.0/24        tcp dpt:7946 /* shoal-tcp */
       8     3000 RETURN     6    --  *      *       127.0.10.0/24        0.0.0.0/0            tcp spt:7946 /* shoal-tcp */
       7      700 RETURN     17   --  *      *       0.0.0.0/0            127.0.20.0/24        udp dpt:7946 /* serf-udp */
`
	got, err := parseIptables([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if got["shoal-udp"] != (iptCount{120, 45000}) || got["shoal-tcp"] != (iptCount{18, 5000}) || got["serf-udp"] != (iptCount{7, 700}) {
		t.Fatalf("got %+v", got)
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct{ p, want float64 }{{50, 5}, {99, 10}, {100, 10}, {10, 1}, {0, 1}} {
		if got := percentile(xs, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("empty percentile not NaN")
	}
	if median([]float64{3, 1, 2, 10}) != 2.5 {
		t.Error("median")
	}
}

func TestConfigCheck(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.N = 1 },
		func(c *Config) { c.Trials = 0 },
		func(c *Config) { c.N, c.Trials = 3, 3 },
		func(c *Config) { c.SerfNet = c.ShoalNet },
		func(c *Config) { c.ShoalNet = "10.0.0" },
		func(c *Config) { c.Idle = 0 },
	} {
		c := DefaultConfig()
		mod(&c)
		if err := c.check(); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	c := DefaultConfig()
	if err := c.check(); err != nil {
		t.Errorf("default config: %v", err)
	}
}

// TestP2PScenarioSmoke runs the p2p scenario with three agents per profile
// (real processes; about 25 s). Only with SHOAL_SCENARIO=1:
//
//	cd tools && SHOAL_SCENARIO=1 go test -run TestP2PScenarioSmoke -v ./cmd/shoal-scenario
func TestP2PScenarioSmoke(t *testing.T) {
	if os.Getenv("SHOAL_SCENARIO") != "1" {
		t.Skip("set SHOAL_SCENARIO=1 to run the p2p scenario with real agent processes")
	}
	cfg := DefaultP2PConfig()
	cfg.N, cfg.Idle, cfg.Settle, cfg.Trials, cfg.Timeout = 3, 2*time.Second, time.Second, 1, 60*time.Second
	cfg.ShoalNet, cfg.P2PNet = "127.0.42", "127.0.43"
	cfg.Command = "cd tools && SHOAL_SCENARIO=1 go test -run TestP2PScenarioSmoke ./cmd/shoal-scenario"
	cfg.Log = t.Logf
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := RunP2P(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + res.Table())
	for _, pr := range []*ProfileResult{res.Lan, res.P2P} {
		if len(pr.RSSBytes) != cfg.N || maxOf(pr.RSSBytes) <= 1e6 || len(pr.HeapInuse) != cfg.N || !(median(pr.HeapInuse) > 0) {
			t.Errorf("%s: RSS %v heap %v", pr.Profile, pr.RSSBytes, pr.HeapInuse)
		}
		if len(pr.Joins) != 1 || pr.Joins[0].Observers != cfg.N+1 || len(pr.Detections) != 1 || pr.Detections[0].Observers != cfg.N {
			t.Errorf("%s: joins %+v detections %+v", pr.Profile, pr.Joins, pr.Detections)
		}
	}
	md := filepath.Join(t.TempDir(), "p2p.md")
	if err := res.WriteFile(md); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(md); !strings.Contains(string(b), "| metric | lan | p2p | p2p − lan | p2p/lan |") {
		t.Errorf("markdown output lacks the table:\n%s", b)
	}
	if err := res.WriteFile(filepath.Join(t.TempDir(), "p2p.json")); err != nil {
		t.Fatal(err)
	}
}

func TestProcFields(t *testing.T) {
	st := "Name:\tshoal\nVmHWM:\t   22000 kB\nVmRSS:\t   20480 kB\nRssAnon:\t    8192 kB\nRssFile:\t   12288 kB\nThreads:\t9\nCpus_allowed_list:\t0-1\n"
	f := procFields([]byte(st))
	if f["VmRSS"] != 20480*1024 || f["RssAnon"] != 8192*1024 || f["RssFile"] != 12288*1024 || f["Threads"] != 9 {
		t.Fatalf("got %v", f)
	}
	if _, ok := f["Name"]; ok {
		t.Fatalf("parsed a name as a number: %v", f)
	}
	roll := "55a0c0000000-7ffd0d5f7000 ---p 00000000 00:00 0    [rollup]\nRss:  54000 kB\nPss:  17000 kB\n"
	if g := procFields([]byte(roll)); g["Pss"] != 17000*1024 {
		t.Fatalf("smaps_rollup: %v", g)
	}
}

func TestParseGoMem(t *testing.T) {
	m := "# HELP go_goroutines x\n# TYPE go_goroutines gauge\ngo_goroutines 71\ngo_memstats_heap_inuse_bytes 7.159808e+06\ngo_gc_duration_seconds{quantile=\"0\"} 1e-05\nshoal_members 3\n"
	g := parseGoMem([]byte(m))
	if g["go_goroutines"] != 71 || g["go_memstats_heap_inuse_bytes"] != 7159808 || len(g) != 2 {
		t.Fatalf("got %v", g)
	}
}

func TestP2PConfigCheck(t *testing.T) {
	for _, mod := range []func(*Config){
		func(c *Config) { c.N = 1 },
		func(c *Config) { c.Trials = c.N },
		func(c *Config) { c.P2PNet = c.ShoalNet },
		func(c *Config) { c.P2PNet = "10.0.0" },
		func(c *Config) { c.Idle = 0 },
	} {
		c := DefaultP2PConfig()
		mod(&c)
		if err := c.checkP2P(); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	c := DefaultP2PConfig()
	if err := c.checkP2P(); err != nil {
		t.Errorf("default config: %v", err)
	}
}
