package prom

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	cprom "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// agentLike collects what the agent's collectors do: gauges and counters
// with several labels, in an order that is not the output's.
type agentLike struct {
	gauge, ctr, info *Desc
}

func newAgentLike() *agentLike {
	return &agentLike{
		gauge: NewDesc("shoal_member_cpu_percent", "CPU of each member.", []string{"member"}, nil),
		ctr:   NewDesc("shoal_gossip_packets_total", "Packets, by direction.", []string{"dir"}, nil),
		info:  NewDesc("shoal_build_info", "Build, with \\ and\na newline.", []string{"version", "node", "profile"}, nil),
	}
}

func (c *agentLike) Describe(ch chan<- *Desc) { ch <- c.gauge; ch <- c.ctr; ch <- c.info }
func (c *agentLike) Collect(ch chan<- Metric) {
	ch <- MustNewConstMetric(c.gauge, GaugeValue, 12.5, "n2")
	ch <- MustNewConstMetric(c.gauge, GaugeValue, 0.125, "n1")
	ch <- MustNewConstMetric(c.ctr, CounterValue, 1234567, "out")
	ch <- MustNewConstMetric(c.ctr, CounterValue, 7, "in")
	ch <- MustNewConstMetric(c.info, GaugeValue, 1, `v"1\`, "n1", "lan")
}

// The same with client_golang.
type agentLikeC struct{ gauge, ctr, info *cprom.Desc }

func newAgentLikeC() *agentLikeC {
	return &agentLikeC{
		gauge: cprom.NewDesc("shoal_member_cpu_percent", "CPU of each member.", []string{"member"}, nil),
		ctr:   cprom.NewDesc("shoal_gossip_packets_total", "Packets, by direction.", []string{"dir"}, nil),
		info:  cprom.NewDesc("shoal_build_info", "Build, with \\ and\na newline.", []string{"version", "node", "profile"}, nil),
	}
}

func (c *agentLikeC) Describe(ch chan<- *cprom.Desc) { ch <- c.gauge; ch <- c.ctr; ch <- c.info }
func (c *agentLikeC) Collect(ch chan<- cprom.Metric) {
	ch <- cprom.MustNewConstMetric(c.gauge, cprom.GaugeValue, 12.5, "n2")
	ch <- cprom.MustNewConstMetric(c.gauge, cprom.GaugeValue, 0.125, "n1")
	ch <- cprom.MustNewConstMetric(c.ctr, cprom.CounterValue, 1234567, "out")
	ch <- cprom.MustNewConstMetric(c.ctr, cprom.CounterValue, 7, "in")
	ch <- cprom.MustNewConstMetric(c.info, cprom.GaugeValue, 1, `v"1\`, "n1", "lan")
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestTextMatchesClientGolang: for the same collectors the text is what
// client_golang's promhttp writes, byte for byte, and the Go runtime and
// process families have client_golang's names, types, help and labels
// (their values move between two scrapes).
func TestTextMatchesClientGolang(t *testing.T) {
	hist := NewHistogram(HistogramOpts{Name: "shoal_election_time_to_elect_seconds", Help: "Time to elect.", Buckets: []float64{0.05, 0.1, 1, 13}})
	histC := cprom.NewHistogram(cprom.HistogramOpts{Name: "shoal_election_time_to_elect_seconds", Help: "Time to elect.", Buckets: []float64{0.05, 0.1, 1, 13}})
	for _, v := range []float64{0.01, 0.05, 0.07, 2, 100} {
		hist.Observe(v)
		histC.Observe(v)
	}
	reg := NewRegistry()
	reg.MustRegister(newAgentLike(), hist)
	regC := cprom.NewRegistry()
	regC.MustRegister(newAgentLikeC(), histC)
	ours := scrape(t, HandlerFor(reg, HandlerOpts{}))
	theirs := scrape(t, promhttp.HandlerFor(regC, promhttp.HandlerOpts{}))
	if ours != theirs {
		t.Errorf("text differs from client_golang's:\n--- ours\n%s--- client_golang\n%s", ours, theirs)
	}

	reg = NewRegistry()
	reg.MustRegister(NewGoCollector(), NewProcessCollector(ProcessCollectorOpts{}))
	regC = cprom.NewRegistry()
	regC.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	shape := func(text string) string {
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatalf("parsing:\n%s\n%v", text, err)
		}
		var b bytes.Buffer
		names := make([]string, 0, len(fams))
		for n := range fams {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			f := fams[n]
			b.WriteString(n + " " + f.GetType().String() + " " + f.GetHelp() + "\n")
			for _, m := range f.Metric {
				for _, l := range m.Label {
					b.WriteString("  " + l.GetName())
					if l.GetName() == "quantile" || l.GetName() == "version" {
						b.WriteString("=" + l.GetValue())
					}
				}
				for _, q := range m.GetSummary().GetQuantile() {
					b.WriteString("  quantile " + expfmtFloat(q.GetQuantile()))
				}
				b.WriteString("\n")
			}
		}
		return b.String()
	}
	ours, theirs = shape(scrape(t, HandlerFor(reg, HandlerOpts{}))), shape(scrape(t, promhttp.HandlerFor(regC, promhttp.HandlerOpts{})))
	if ours != theirs {
		t.Errorf("Go and process families differ from client_golang's:\n--- ours\n%s--- client_golang\n%s", ours, theirs)
	}
}

func expfmtFloat(f float64) string { return formatFloat(f) }

func TestRegistryRefusesWhatClientGolangRefuses(t *testing.T) {
	reg := NewRegistry()
	reg.MustRegister(newAgentLike())
	if err := reg.Register(newAgentLike()); err == nil {
		t.Error("a second collector of the same families was registered")
	}
	bad := &agentLike{gauge: NewDesc("bad name", "x", nil, nil), ctr: NewDesc("ok", "x", nil, nil), info: NewDesc("ok2", "x", nil, nil)}
	if err := NewRegistry().Register(bad); err == nil || !strings.Contains(err.Error(), `"bad name"`) {
		t.Errorf("invalid metric name: %v, want an error naming it", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("MustNewConstMetric with too few label values did not panic")
		}
	}()
	MustNewConstMetric(NewDesc("x", "x", []string{"a", "b"}, nil), GaugeValue, 1, "only-a")
}
