package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/scale"
)

// actionLine is one line of the shared action log the exec command appends
// to: "TERM HOLDER FROM TO".
type actionLine struct {
	term     uint64
	holder   string
	from, to int
}

// execLogCommand is an exec provider command that appends every action to
// path, standing for the real resource.
func execLogCommand(path string) string {
	return fmt.Sprintf(`echo "$SHOAL_SCALE_TERM $SHOAL_SCALE_HOLDER $SHOAL_SCALE_CURRENT $SHOAL_SCALE_DESIRED" >> '%s'`, path)
}

func readActionLog(path string) ([]actionLine, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []actionLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("action log line %q: want TERM HOLDER FROM TO", l)
		}
		term, e1 := strconv.ParseUint(f[0], 10, 64)
		from, e2 := strconv.Atoi(f[2])
		to, e3 := strconv.Atoi(f[3])
		if err := errors.Join(e1, e2, e3); err != nil {
			return nil, fmt.Errorf("action log line %q: %w", l, err)
		}
		out = append(out, actionLine{term, f[1], from, to})
	}
	return out, nil
}

// checkChain asserts what one resource's log must show: each action starts
// from the count the previous one left, no action is repeated, terms never
// go down.
func checkChain(log []actionLine) error {
	seen := map[[2]int]bool{}
	for i, a := range log {
		if i > 0 {
			p := log[i-1]
			if a.from != p.to {
				return fmt.Errorf("action %d (%d→%d by %s, term %d) does not start where action %d (%d→%d by %s, term %d) left the count",
					i+1, a.from, a.to, a.holder, a.term, i, p.from, p.to, p.holder, p.term)
			}
			if a.term < p.term {
				return fmt.Errorf("action %d under term %d after term %d", i+1, a.term, p.term)
			}
		}
		k := [2]int{a.from, a.to}
		if seen[k] {
			return fmt.Errorf("action %d→%d (by %s, term %d) repeated", a.from, a.to, a.holder, a.term)
		}
		seen[k] = true
	}
	return nil
}

func setLoads(t *testing.T, cpu float64, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		if err := client.New(p.http, "").SetDebugLoad(context.Background(), client.DebugLoad{CPUPercent: cpu, MemPercent: 30, Cores: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestScaleTakeoverContinuesTheChain is issue 18's defect 1 with real
// processes and the exec provider: n1 (ranked above n2) acts first, which
// its own fence records; n3 joins with --preempt, acts under a newer term,
// and is killed with SIGKILL. n1 takes over under a newer term still, its
// fence holding a count from its own older term. It must continue from
// the count n3 left: the shared log is a chain, nothing repeated. Once
// with the count learnt from n3's announcement in the mesh, once with
// current_command (the authoritative count).
func TestScaleTakeoverContinuesTheChain(t *testing.T) {
	for i, tc := range []struct {
		name    string
		current bool
	}{{"announced in the mesh", false}, {"current_command", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			logf := filepath.Join(dir, "resource.log")
			args := func(prio int, extra ...string) []string {
				a := []string{"--priority", strconv.Itoa(prio), "--scale-provider", "exec", "--scale-resource", execLogCommand(logf),
					"--scale-interval", "100ms", "--scale-up-window", "300ms", "--scale-up-cooldown", "1s", "--scale-max", "40"}
				if tc.current {
					a = append(a, "--scale-opt", fmt.Sprintf(`current_command=c=$(tail -n 1 '%s' 2>/dev/null | cut -d' ' -f4); echo "${c:-2}"`, logf))
				}
				return append(a, extra...)
			}
			ip := func(n int) string { return fmt.Sprintf("127.18.%d.%d", 33+i, n) }
			n1 := startAgent(t, "n1", ip(1), "", args(2)...)
			setLoads(t, 95, n1) // ceil(count × 95/70): up at every action
			n2 := startAgent(t, "n2", ip(2), n1.gossip, args(1)...)
			setLoads(t, 95, n2)
			poll(t, 30*time.Second, "n1 acts", func() error {
				l, err := readActionLog(logf)
				if err == nil && (len(l) == 0 || l[0].holder != "n1") {
					err = fmt.Errorf("log %+v", l)
				}
				return err
			})
			n3 := startAgent(t, "n3", ip(3), n1.gossip, args(3, "--preempt")...)
			setLoads(t, 95, n3)
			poll(t, 30*time.Second, "n3 preempts and acts", func() error {
				l, err := readActionLog(logf)
				if err == nil && (len(l) == 0 || l[len(l)-1].holder != "n3") {
					err = fmt.Errorf("log %+v", l)
				}
				return err
			})
			// Load on target: no more actions; every node learns the last.
			setLoads(t, 70, n1, n2, n3)
			var before []actionLine
			poll(t, 20*time.Second, "n1 and n2 know n3's last action", func() (err error) {
				if before, err = readActionLog(logf); err != nil {
					return err
				}
				last := before[len(before)-1]
				for _, p := range []*proc{n1, n2} {
					st, err := cliJSON[client.ScaleStatus](p.http, "scale", "status")
					if err != nil {
						return err
					}
					if st.Current != last.to {
						return fmt.Errorf("%s counts %d (%s), want %d", st.Node, st.Current, st.CurrentSource, last.to)
					}
				}
				return nil
			})
			if err := n3.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = n3.cmd.Wait()
			if l, _ := readActionLog(logf); len(l) != len(before) {
				t.Fatalf("n3 acted while the load was on target: %+v", l[len(before):])
			}
			setLoads(t, 95, n1, n2)
			var all []actionLine
			poll(t, 60*time.Second, "a successor acts twice", func() (err error) {
				if all, err = readActionLog(logf); err != nil {
					return err
				}
				if err := checkChain(all); err != nil {
					t.Fatalf("%v\nlog: %+v", err, all)
				}
				if len(all) < len(before)+2 {
					return fmt.Errorf("%d actions since the kill", len(all)-len(before))
				}
				return nil
			})
			after := all[len(before):]
			k := before[len(before)-1]
			if after[0].holder == "n3" || after[0].term <= k.term || after[0].from != k.to {
				t.Fatalf("first action after the kill %+v; n3's last %+v", after[0], k)
			}
			t.Logf("chain of %d actions: %+v", len(all), all)
		})
	}
}

// TestScaleNoActionOnShutdown is issue 18's defect 5 with a real process:
// one agent, the exec provider, scale-min 1. On SIGTERM it leaves the mesh
// (so it no longer counts itself as an alive instance); it must not elect
// itself and run the command 0 → 1 during the leave. Once without load
// figures (a tag nobody publishes), once with figures on target from the
// start (a static tag: the host's real CPU would drive the scaler before a
// synthetic load could be set).
func TestScaleNoActionOnShutdown(t *testing.T) {
	for i, tc := range []struct {
		name string
		args []string
		load bool
	}{
		{"no load figures", []string{"--scale-metric", "tag:queue_depth"}, false},
		{"load on target", []string{"--scale-metric", "tag:queue_depth", "--tag", "queue_depth=70", "--scale-target", "70"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, data := t.TempDir(), t.TempDir()
			logf := filepath.Join(dir, "resource.log")
			args := append([]string{"--data-dir", data, "--leave-on-terminate", "--scale-provider", "exec", "--scale-resource", execLogCommand(logf),
				"--scale-interval", "50ms", "--scale-up-window", "200ms", "--scale-min", "1", "--scale-max", "5"}, tc.args...)
			p := startAgent(t, "solo", fmt.Sprintf("127.18.40.%d", 1+i), "", args...)
			poll(t, 10*time.Second, "the scaler evaluates", func() error {
				st, err := cliJSON[client.ScaleStatus](p.http, "scale", "status")
				if err == nil && (st.UpdatedAt == "" || st.Current != 1 || st.ValueValid != tc.load) {
					err = fmt.Errorf("status %+v", st)
				}
				return err
			})
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- p.cmd.Wait() }()
			select {
			case err := <-exited:
				if err != nil {
					t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("still running 20 s after SIGTERM\n%s", p.stderr)
			}
			if l, err := readActionLog(logf); err != nil || len(l) != 0 {
				t.Fatalf("actions on shutdown: %+v %v\n%s", l, err, p.stderr)
			}
			recs, err := scale.ReadHistory(filepath.Join(data, scale.HistoryFile))
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Outcome != scale.OutcomeHeld {
					t.Fatalf("history records a decision on shutdown: %+v", r)
				}
			}
		})
	}
}
