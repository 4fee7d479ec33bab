package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseVariant(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Variant
	}{
		{"old=/bin/shoal", Variant{Name: "old", Bin: "/bin/shoal", Profile: "lan", N: 30}},
		{"edge=/bin/shoal-edge:p2p", Variant{Name: "edge", Bin: "/bin/shoal-edge", Profile: "p2p", N: 30}},
		{"p60=/bin/shoal:p2p:60", Variant{Name: "p60", Bin: "/bin/shoal", Profile: "p2p", N: 60}},
	} {
		got, err := parseVariant(c.in, 30)
		if err != nil || got.Name != c.want.Name || got.Bin != c.want.Bin || got.Profile != c.want.Profile || got.N != c.want.N {
			t.Errorf("parseVariant(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "=bin", "x", "a b=bin", "x=bin:p2p:1", "x=bin:p2p:300", "x=bin:p2p:ten", "x=a:b:3:d"} {
		if v, err := parseVariant(bad, 30); err == nil {
			t.Errorf("parseVariant(%q) = %+v, want an error", bad, v)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("parseVariant(%q): error %q does not name the value", bad, err)
		}
	}
	var ef envFlag
	if err := ef.Set("old:GOGC=100"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"GOGC=100", "old:GOGC", ":GOGC=1", "old:=1"} {
		if err := ef.Set(bad); err == nil {
			t.Errorf("-env %q accepted", bad)
		}
	}
}

// TestFootprintPerPeer: the cost of one more peer is the slope of the
// median RSS over N, for variants of one binary and profile only.
func TestFootprintPerPeer(t *testing.T) {
	rss := func(mb float64, n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = mb * 1e6
		}
		return out
	}
	r := &FootprintResult{Variants: []*Variant{
		{Name: "p10", Bin: "b", Profile: "p2p", N: 10, RSSBytes: rss(20, 10), AnonBytes: rss(8, 10)},
		{Name: "p30", Bin: "b", Profile: "p2p", N: 30, RSSBytes: rss(21, 30), AnonBytes: rss(8.8, 30)},
		{Name: "p60", Bin: "b", Profile: "p2p", N: 60, RSSBytes: rss(22.5, 60), AnonBytes: rss(10, 60)},
		{Name: "lan", Bin: "b", Profile: "lan", N: 30, RSSBytes: rss(18, 30), AnonBytes: rss(7, 30)},
	}, Serf: &Variant{Name: "serf", Profile: "serf", N: 30, RSSBytes: rss(18, 30), IdleCPUPct: []float64{0.2}}}
	pp := r.perPeer()
	if len(pp) != 1 || pp[0].profile != "p2p" || len(pp[0].points) != 3 {
		t.Fatalf("perPeer = %+v, want one series (b, p2p) of three sizes", pp)
	}
	if s := slope(pp[0].points); math.Abs(s-50e3) > 1e3 {
		t.Errorf("slope = %.0f bytes per peer, want 50000", s)
	}
	tab := r.Table()
	for _, want := range []string{"per additional peer (b, --profile p2p, N = 10, 30, 60): RSS +50 KB", "RSS median / serf's", "1.25×"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if md := r.Markdown(); !strings.Contains(md, "| RSS per agent, median (MB) | 20.0 | 21.0 | 22.5 | 18.0 | 18.0 |") {
		t.Errorf("markdown lacks the RSS row:\n%s", md)
	}
}
