package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/election"
	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/metrics"
)

// pollFor checks cond until it holds or d passes (poll, never sleep for an
// outcome).
func pollFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	poll.Until(t, d, what, cond)
}

// startElectionMesh starts n agents on 127.0.0.<ip0+i> (local profile),
// named el-1…el-n with priority i (el-n ranks highest), and waits until each
// sees all of them alive.
func startElectionMesh(t *testing.T, n, ip0 int, opts ...func(*Config)) []*Agent {
	t.Helper()
	var agents []*Agent
	// The data directories' cleanup must run after the agents stop (cleanups
	// run last-registered first): made before the Stop cleanup, not in the
	// loop, where RemoveAll raced the running agents' writes ("directory not
	// empty").
	dir := t.TempDir()
	t.Cleanup(func() {
		for _, a := range agents {
			a.Stop(false)
		}
	})
	join := ""
	for i := 1; i <= n; i++ {
		cfg := DefaultConfig()
		cfg.NodeName = fmt.Sprintf("el-%d", i)
		cfg.Bind = fmt.Sprintf("127.0.0.%d:0", ip0+i)
		cfg.Profile = "local"
		cfg.HTTPAddr = "127.0.0.1:0"
		cfg.DataDir = filepath.Join(dir, cfg.NodeName)
		cfg.Priority = i
		cfg.SampleInterval = Duration(200 * time.Millisecond)
		if join != "" {
			cfg.Join = []string{join}
		}
		for _, o := range opts {
			o(&cfg)
		}
		// A steady 50% CPU instead of the host's: on a machine whose
		// cores are all busy (CI runs packages side by side), the real
		// figure made a scaler act (3 -> 6) before the test set its load.
		a, err := New(cfg, WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithReader(&steadyReader{pct: 50}))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(context.Background()); err != nil {
			t.Fatalf("%s: %v", cfg.NodeName, err)
		}
		agents = append(agents, a)
		if join == "" {
			host, port := a.Mesh().LocalAddr()
			join = fmt.Sprintf("%s:%d", host, port)
		}
	}
	pollFor(t, 15*time.Second, "every agent sees every agent alive", func() error {
		for _, a := range agents {
			alive := 0
			for _, m := range a.Mesh().View().Members() {
				if m.Status == "alive" {
					alive++
				}
			}
			if alive != n {
				return fmt.Errorf("%s sees %d alive", a.cfg.NodeName, alive)
			}
		}
		return nil
	})
	return agents
}

// agreed checks that every agent in as names want as coordinator under one
// term, that want acts, and returns the term.
func agreed(as []*Agent, want string) (uint64, error) {
	var term uint64
	for _, a := range as {
		l := a.runner().leaderView()
		if l.Coordinator != want {
			return 0, fmt.Errorf("%s names %q (term %d, electing %v), want %q", l.Node, l.Coordinator, l.Term, l.Electing, want)
		}
		if term == 0 {
			term = l.Term
		}
		if l.Term != term {
			return 0, fmt.Errorf("%s names term %d, another names %d", l.Node, l.Term, term)
		}
		if (l.Node == want) != l.Acting {
			return 0, fmt.Errorf("%s: acting %v", l.Node, l.Acting)
		}
	}
	return term, nil
}

func TestElectionOverTheMesh(t *testing.T) {
	for _, tc := range []struct{ n, ip0 int }{{3, 160}, {5, 170}} {
		t.Run(fmt.Sprintf("n=%d", tc.n), func(t *testing.T) {
			as := startElectionMesh(t, tc.n, tc.ip0)
			// Lazy: nobody has run an election yet.
			for _, a := range as {
				if l := a.runner().leaderView(); l.Coordinator != "" || l.Term != 0 {
					t.Fatalf("%s names %q under term %d before any request", l.Node, l.Coordinator, l.Term)
				}
			}
			// The lowest rank asks; the highest wins.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if _, err := as[0].runner().Coordinate(ctx); err != nil {
				t.Fatal(err)
			}
			top := as[tc.n-1]
			var term1 uint64
			pollFor(t, 15*time.Second, "all name the highest rank", func() (err error) {
				term1, err = agreed(as, top.cfg.NodeName)
				return err
			})

			// The API, the members field and the metrics say the same.
			c := client.New(as[0].HTTPAddr(), "")
			l, err := c.Leader(ctx)
			if err != nil || l.Coordinator != top.cfg.NodeName || l.Term != term1 || l.Priority != tc.n || l.Since == "" {
				t.Fatalf("GET /v1/leader: %+v, %v", l, err)
			}
			ms, err := c.Members(ctx, client.MemberFilter{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				if m.Coordinator != (m.Name == top.cfg.NodeName) {
					t.Errorf("members: %s coordinator=%v", m.Name, m.Coordinator)
				}
			}
			topc := client.New(top.HTTPAddr(), "")
			act, err := topc.Act(ctx)
			if err != nil || !act.Acted || act.Action.Term != term1 || act.Action.Holder != top.cfg.NodeName {
				t.Fatalf("act on the coordinator: %+v, %v", act, err)
			}
			if act, err := c.Act(ctx); err != nil || act.Acted {
				t.Fatalf("act on a follower: %+v, %v", act, err)
			}
			body := scrape(t, top.HTTPAddr())
			for _, want := range []string{"shoal_election_acting 1", fmt.Sprintf("shoal_election_term %d", term1),
				"shoal_election_won_total 1", `shoal_election_messages_sent_total{type="coordinator"}`} {
				if !strings.Contains(body, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}

			// The coordinator stops without leaving: the others see it fail
			// and the next rank takes over under a higher term. Unless the
			// next rank's loop stalled (came back more than a renewal
			// interval late, as a starved core under -race can make it):
			// then it listens before it claims (Node.Listen), and a lower
			// rank may win; the survivors still agree on one.
			rest := as[:tc.n-1]
			nextA := rest[len(rest)-1]
			next := nextA.cfg.NodeName
			stalls0 := nextA.runner().stalls.Load()
			top.Stop(false)
			var term2 uint64
			pollFor(t, 15*time.Second, "survivors name the next rank", func() (err error) {
				term2, err = agreed(rest, next)
				if err != nil && nextA.runner().stalls.Load() > stalls0 {
					var c string
					if c = rest[0].runner().leaderView().Coordinator; c != "" {
						term2, err = agreed(rest, c)
					}
					if err == nil {
						t.Logf("%s stalled during the failover; the survivors agree on %s", next, c)
					}
				}
				return err
			})
			if term2 <= term1 {
				t.Fatalf("new term %d not above %d", term2, term1)
			}
			if got := scrape(t, rest[0].HTTPAddr()); !strings.Contains(got, "shoal_election_time_to_elect_seconds_count") {
				t.Errorf("/metrics lacks the time-to-elect histogram")
			}
		})
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestElectionDropsBadMessagesAndPersists(t *testing.T) {
	as := startElectionMesh(t, 3, 180)
	a := as[0]
	r := a.runner()
	good, _ := election.Message{Type: election.MsgChallenge, From: "el-2", To: "el-1", Term: 0}.Marshal()
	for _, body := range [][]byte{nil, {0xff}, {1, 9, 0, 0}, good} {
		a.onElectionMessage("el-3", body) // garbage, or a From that is not the sender
	}
	if got := r.bad.Load(); got != 4 {
		t.Fatalf("bad messages counted: %d, want 4", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := r.Coordinate(ctx); err != nil {
		t.Fatal(err)
	}
	pollFor(t, 15*time.Second, "all name el-3", func() error { _, err := agreed(as, "el-3"); return err })
	// A follower's promise is on disk, and a restart reads it back.
	hs, err := loadHardState(filepath.Join(a.cfg.DataDir, electionStateFile))
	if err != nil || hs.Holder != "el-3" || hs.Term == 0 {
		t.Fatalf("persisted state %+v, %v", hs, err)
	}
}

// readActingLog parses an --acting-log file.
func readActingLog(t *testing.T, path string) []actingRecord {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []actingRecord
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if line == "" {
			continue
		}
		var r actingRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("acting log %s: line %q: %v", path, line, err)
		}
		out = append(out, r)
	}
	return out
}

// TestActingLog: the coordinator's acting log starts with a line naming its
// term and a lease expiry after the line's time, renews it, and ends with an
// end line when the agent stops; a follower's log stays empty.
func TestActingLog(t *testing.T) {
	dir := t.TempDir()
	as := startElectionMesh(t, 3, 190, func(c *Config) { c.ActingLog = filepath.Join(dir, c.NodeName+".jsonl") })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := as[0].runner().Coordinate(ctx); err != nil {
		t.Fatal(err)
	}
	var term uint64
	pollFor(t, 15*time.Second, "all name el-3", func() (err error) { term, err = agreed(as, "el-3"); return err })
	top := as[2]
	pollFor(t, 10*time.Second, "el-3 logs a renewal", func() error {
		if recs := readActingLog(t, top.cfg.ActingLog); len(recs) < 2 {
			return fmt.Errorf("%d lines", len(recs))
		}
		return nil
	})
	top.Stop(false)
	recs := readActingLog(t, top.cfg.ActingLog)
	last := recs[len(recs)-1]
	if !last.End || last.Term != term || last.Node != "el-3" {
		t.Errorf("last line %+v: want the end of term %d", last, term)
	}
	for _, r := range recs[:len(recs)-1] {
		at, err1 := time.Parse(time.RFC3339Nano, r.At)
		until, err2 := time.Parse(time.RFC3339Nano, r.Until)
		if err1 != nil || err2 != nil || r.End || r.Term != term || r.Node != "el-3" || !until.After(at) {
			t.Errorf("line %+v: want acting under term %d until after its time", r, term)
		}
	}
	for _, a := range as[:2] {
		if recs := readActingLog(t, a.cfg.ActingLog); len(recs) != 0 && !recs[0].End && recs[0].Term <= term {
			t.Errorf("%s logged acting under term %d while el-3 held term %d: %+v", a.cfg.NodeName, recs[0].Term, term, recs[0])
		}
	}
}

// steadyReader reads a host whose CPU is busy pct% of the time, with 1 GiB
// of memory half used: load figures that do not depend on the machine the
// test runs on. Each Read advances the CPU counters by one second.
type steadyReader struct {
	pct   float64
	total float64
}

func (r *steadyReader) Read(context.Context) (metrics.Counters, error) {
	r.total++
	return metrics.Counters{
		CPUBusy:      r.total * r.pct / 100,
		CPUTotal:     r.total,
		MemTotal:     1 << 30,
		MemAvailable: 1 << 29,
		MemUsed:      1 << 29,
		LogicalCores: 1,
	}, nil
}
