package agent

// The scaler's HTTP routes (status, history, the debug load hook) and its
// Prometheus collector.

import (
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"time"

	prometheus "github.com/shoalmesh/shoal/internal/prom"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/metrics"
	"github.com/shoalmesh/shoal/scale"
)

func toClientScaleRecord(r scale.Record) client.ScaleRecord {
	d := r.Decision
	return client.ScaleRecord{
		Time: r.Time.Format(time.RFC3339Nano), Node: r.Node, Provider: r.Provider, Outcome: r.Outcome, Error: r.Error,
		Holder: r.Lease.Holder, Priority: r.Lease.Priority, Term: r.Lease.Term,
		DecidedAt: d.Time.UTC().Format(time.RFC3339Nano), Current: d.Current, Desired: d.Desired, Action: d.Action,
		Metric: d.Metric, Value: d.Value, Target: d.Target, DryRun: d.DryRun, Reasons: d.Reasons,
	}
}

func (a *Agent) registerScaleRoutes(mux *http.ServeMux, reg *prometheus.Registry) {
	if a.cfg.preset().DebugHooks { // --enable-debug, or the local profile
		mux.HandleFunc("POST /v1/debug/load", a.handleDebugLoad)
	}
	r := a.scale
	if r == nil {
		return
	}
	reg.MustRegister(&scaleCollector{r: r})
	mux.HandleFunc("GET /v1/scale/status", func(w http.ResponseWriter, req *http.Request) {
		writeJSON(w, http.StatusOK, r.statusView())
	})
	mux.HandleFunc("GET /v1/scale/history", func(w http.ResponseWriter, req *http.Request) {
		n := 0
		if s := req.URL.Query().Get("limit"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 0 {
				writeErr(w, http.StatusBadRequest, fmt.Errorf("limit %q: want a count ≥ 0", s))
				return
			}
			n = v
		}
		recs := r.history.Recent(n)
		out := make([]client.ScaleRecord, len(recs))
		for i, rec := range recs {
			out[i] = toClientScaleRecord(rec)
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// handleDebugLoad sets (or with {"clear": true} clears) a synthetic load
// that this node reports instead of its measured figures: a test hook,
// served only with --enable-debug or in the local profile.
func (a *Agent) handleDebugLoad(w http.ResponseWriter, r *http.Request) {
	var req client.DebugLoad
	if err := readJSON(r, &req); err != nil {
		writeErr(w, bodyStatus(err), err)
		return
	}
	if req.Clear {
		a.monitor.Override(nil)
		a.signalLoad()
		writeJSON(w, http.StatusOK, map[string]string{"status": "cleared"})
		return
	}
	for name, v := range map[string]float64{"cpu_percent": req.CPUPercent, "mem_percent": req.MemPercent} {
		if v < 0 || v > 100 || math.IsNaN(v) {
			writeErr(w, http.StatusBadRequest, fmt.Errorf("%s %v: want 0..100", name, v))
			return
		}
	}
	l := metrics.Load{CPUPercent: req.CPUPercent, MemPercent: req.MemPercent, NetRxBps: req.NetRxBps, NetTxBps: req.NetTxBps,
		Load1: req.Load1, Cores: req.Cores, Taken: time.Now()}
	if l.Cores == 0 {
		l.Cores = 1
	}
	a.monitor.Override(&l)
	a.signalLoad()
	writeJSON(w, http.StatusOK, map[string]string{"status": "set"})
}

// scaleCollector reads the status at scrape time.
type scaleCollector struct {
	r                                        *scaleRunner
	desired, current, value, acting, decided *prometheus.Desc
}

func (c *scaleCollector) descs() []*prometheus.Desc {
	if c.desired == nil {
		d := descMaker("shoal_scale_")
		c.desired = d("desired", "Instance count the policy asks for (last evaluation).")
		c.current = d("current", "Instance count the policy started from (provider, last action, provider record or mesh).")
		c.value = d("metric_value", "Aggregate value of the watched metric.", "metric")
		c.acting = d("acting", "1 while this node acts as the scale coordinator.")
		c.decided = d("decisions_total", "Scale decisions recorded, by outcome.", "outcome")
	}
	return []*prometheus.Desc{c.desired, c.current, c.value, c.acting, c.decided}
}

func (c *scaleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs() {
		ch <- d
	}
}

func (c *scaleCollector) Collect(ch chan<- prometheus.Metric) {
	c.descs()
	s := c.r.statusView()
	if !s.Enabled {
		return
	}
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	g(c.desired, float64(s.Desired))
	g(c.current, float64(s.Current))
	if s.Metric != "" {
		g(c.value, s.Value, s.Metric)
	}
	acting := 0.0
	if s.Acting {
		acting = 1
	}
	g(c.acting, acting)
	outcomes := []string{scale.OutcomeApplied, scale.OutcomeRefused, scale.OutcomeFailed, scale.OutcomeDryRun, scale.OutcomeObserved, scale.OutcomeHeld}
	for k := range s.Decisions {
		if !containsStr(outcomes, k) {
			outcomes = append(outcomes, k)
		}
	}
	sort.Strings(outcomes)
	for _, o := range outcomes {
		ch <- prometheus.MustNewConstMetric(c.decided, prometheus.CounterValue, float64(s.Decisions[o]), o)
	}
}

func containsStr(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
