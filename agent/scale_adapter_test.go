package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/metrics"
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

func scaleOpts(mod func(*ScaleConfig)) func(*Config) {
	return func(c *Config) {
		c.Scale.Interval = Duration(100 * time.Millisecond)
		c.Scale.UpWindow = Duration(300 * time.Millisecond)
		c.Scale.DownWindow = Duration(time.Second)
		c.Scale.UpCooldown = Duration(time.Minute)
		c.Scale.DownCooldown = Duration(time.Minute)
		c.Scale.Target = 70
		mod(&c.Scale)
	}
}

func setLoad(as []*Agent, cpu float64) {
	for _, a := range as {
		a.Monitor().Override(&metrics.Load{CPUPercent: cpu, MemPercent: 30, Cores: 1})
	}
}

func records(a *Agent, outcome string) []scale.Record {
	var out []scale.Record
	for _, r := range a.scale.history.Recent(0) {
		if r.Outcome == outcome {
			out = append(out, r)
		}
	}
	return out
}

// TestScaleCoordinatorActsOnce: three agents with the dry-run provider
// sharing one fence file (the "resource"), synthetic load crossing the
// target. Nobody coordinates at first: the policy asks for an election,
// the highest rank wins, and exactly one decision is applied, by it, with
// its term. Then the coordinator is killed; the new one reads the last
// action (from the provider and the mesh) and neither repeats it (up
// cooldown) nor reverses it (down cooldown).
func TestScaleCoordinatorActsOnce(t *testing.T) {
	fence := filepath.Join(t.TempDir(), "resource.json")
	as := startElectionMesh(t, 3, 210, scaleOpts(func(s *ScaleConfig) {
		s.Provider = providers.DryRunName
		s.Options = map[string]string{"initial": "3", providers.OptFenceFile: fence}
	}))
	// (A configured scaler wants a coordinator: the mesh may elect one
	// before any load; nothing is applied without load figures.)
	setLoad(as, 91) // ceil(3 × 91/70) = 4
	top := as[2]
	var applied scale.Record
	pollFor(t, 20*time.Second, "one applied decision on the coordinator", func() error {
		recs := records(top, scale.OutcomeApplied)
		if len(recs) == 0 {
			return fmt.Errorf("none yet; status %+v", top.scale.statusView())
		}
		applied = recs[0]
		return nil
	})
	term, err := agreed(as, top.cfg.NodeName)
	if err != nil {
		t.Fatal(err)
	}
	if applied.Lease.Term != term || applied.Lease.Holder != top.cfg.NodeName || applied.Decision.Current != 3 || applied.Decision.Desired != 4 {
		t.Fatalf("applied %+v under term %d", applied, term)
	}
	// The others learn of it from the mesh, and never called the provider.
	pollFor(t, 10*time.Second, "the others observe the action", func() error {
		for _, a := range as[:2] {
			if len(records(a, scale.OutcomeObserved)) == 0 {
				return fmt.Errorf("%s has not observed it", a.cfg.NodeName)
			}
		}
		return nil
	})
	for _, a := range as {
		if n := len(records(a, scale.OutcomeApplied)) + len(records(a, scale.OutcomeDryRun)); (a == top) != (n > 0) || n > 1 {
			t.Fatalf("%s: %d decisions applied", a.cfg.NodeName, n)
		}
	}
	// The API and the CLI's client say the same.
	ctx := context.Background()
	pollFor(t, 10*time.Second, "GET /v1/scale/status after the action", func() error {
		st, err := client.New(top.HTTPAddr(), "").ScaleStatus(ctx)
		if err != nil || !st.Enabled || !st.Acting || st.Current != 4 || st.CurrentSource != scale.SourceLastAction || st.LastDecision == nil || st.LastDecision.Outcome != "applied" {
			return fmt.Errorf("status %+v %v", st, err)
		}
		return nil
	})
	hist, err := client.New(as[0].HTTPAddr(), "").ScaleHistory(ctx, 0)
	if err != nil || len(hist) != 1 || hist[0].Outcome != "observed" || hist[0].Term != term || hist[0].Desired != 4 {
		t.Fatalf("history on el-1: %+v %v", hist, err)
	}
	resp, err := http.Get("http://" + top.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`shoal_scale_decisions_total{outcome="applied"} 1`, "shoal_scale_current 4", "shoal_scale_acting 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Kill the coordinator (no leave): el-2 takes over.
	top.Stop(false)
	rest := as[:2]
	pollFor(t, 20*time.Second, "el-2 acts and holds back for the up cooldown", func() error {
		s := rest[1].scale.statusView()
		if !s.Acting || !strings.Contains(strings.Join(s.Reasons, "; "), "scale-up cooldown") {
			return fmt.Errorf("status %+v", s)
		}
		if s.Current != 4 {
			return fmt.Errorf("current %d, want 4", s.Current)
		}
		return nil
	})
	// Load drops: the policy wants fewer, but the down cooldown holds.
	setLoad(rest, 20)
	pollFor(t, 10*time.Second, "el-2 holds back for the down cooldown", func() error {
		s := rest[1].scale.statusView()
		if !s.Acting || !strings.Contains(strings.Join(s.Reasons, "; "), "scale-down cooldown") {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	for _, a := range rest {
		if n := len(records(a, scale.OutcomeApplied)) + len(records(a, scale.OutcomeDryRun)); n != 0 {
			t.Fatalf("%s acted %d times inside the cooldown", a.cfg.NodeName, n)
		}
	}
}

// TestScaleFencingTwoCoordinators: two agents both believe they
// coordinate (their leases forced through the scale runner's test hook),
// each with its own webhook provider (own fence), both pointing at one
// receiver that checks the signature and refuses a term lower than the last
// it acted on. The higher term acts; the lower term's call is refused and
// recorded as such.
func TestScaleFencingTwoCoordinators(t *testing.T) {
	const secret = "fish"
	var mu sync.Mutex
	var last uint64
	var acted []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !providers.VerifySignature([]byte(secret), body, r.Header.Get(providers.SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		term, _ := strconv.ParseUint(r.Header.Get(providers.TermHeader), 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if term < last {
			http.Error(w, fmt.Sprintf("term %d is below %d", term, last), http.StatusConflict)
			return
		}
		last = term
		acted = append(acted, fmt.Sprintf("%s@%d", r.Header.Get(providers.HolderHeader), term))
	}))
	defer srv.Close()
	as := startElectionMesh(t, 2, 220, scaleOpts(func(s *ScaleConfig) {
		s.Provider = providers.WebhookName
		s.Resource = srv.URL
		s.Options = map[string]string{"secret": secret, "backoff": "10ms"}
		s.UpCooldown = 0
	}))
	var hmu sync.Mutex
	newActing, oldActing := true, false
	newer := election.Lease{Holder: as[1].cfg.NodeName, Priority: 2, Term: 5}
	older := election.Lease{Holder: as[0].cfg.NodeName, Priority: 1, Term: 4}
	as[1].scale.setLeaseHook(func() (election.Lease, bool) { hmu.Lock(); defer hmu.Unlock(); return newer, newActing })
	as[0].scale.setLeaseHook(func() (election.Lease, bool) { hmu.Lock(); defer hmu.Unlock(); return older, oldActing })
	setLoad(as, 91)
	pollFor(t, 20*time.Second, "term 5 acts", func() error {
		if len(records(as[1], scale.OutcomeApplied)) == 0 {
			return fmt.Errorf("status %+v", as[1].scale.statusView())
		}
		return nil
	})
	// Now the deposed one (term 4) believes it acts, and the newer one pauses.
	hmu.Lock()
	newActing, oldActing = false, true
	hmu.Unlock()
	pollFor(t, 20*time.Second, "term 4 is refused", func() error {
		recs := records(as[0], scale.OutcomeRefused)
		if len(recs) == 0 {
			return fmt.Errorf("status %+v", as[0].scale.statusView())
		}
		if !strings.Contains(recs[0].Error, "term 4 is below 5") || recs[0].Lease.Term != 4 {
			return fmt.Errorf("refusal %+v", recs[0])
		}
		return nil
	})
	// (Records under the real election's lease, from before the hooks were
	// set, do not count: a configured scaler now elects at start.)
	for _, r := range records(as[0], scale.OutcomeApplied) {
		if r.Lease.Term == 4 {
			t.Fatalf("term 4 applied a decision: %+v", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, a := range acted {
		if strings.HasSuffix(a, "@4") {
			t.Fatalf("the receiver acted under term 4: %v", acted)
		}
	}
}

// TestScaleBadConfig: bad input fails at start-up with the value named.
func TestScaleBadConfig(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*ScaleConfig)
		want string
	}{
		{func(s *ScaleConfig) { s.Provider = "nimbus" }, `unknown provider "nimbus"`},
		{func(s *ScaleConfig) { s.Provider, s.Min, s.Max = "dry-run", 5, 2 }, "scale-min 5 is above scale-max 2"},
		{func(s *ScaleConfig) { s.Provider, s.Thresholds = "dry-run", []string{"above 75% for 30s -> -1"} }, "above 75% for 30s -> -1"},
		{func(s *ScaleConfig) { s.Provider, s.Metric = "dry-run", "disk" }, `scale-metric "disk"`},
	} {
		cfg := DefaultConfig()
		cfg.NodeName = "bad"
		tc.mod(&cfg.Scale)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", cfg.Scale, err, tc.want)
		}
	}
	// A provider that cannot be built fails Start, naming it.
	cfg := DefaultConfig()
	cfg.NodeName, cfg.Bind, cfg.HTTPAddr, cfg.Profile, cfg.DataDir = "bad", "127.0.0.1:0", "127.0.0.1:0", "local", t.TempDir()
	cfg.Scale.Provider = "webhook"
	cfg.Scale.Resource = "http://127.0.0.1:9/"
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "option secret is empty") {
		t.Fatalf("start: %v", err)
	}
	a.Stop(false)
}
