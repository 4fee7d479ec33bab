package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/fence"
)

// TestElectionProcessesKillStopAndFence runs five agent processes on
// loopback. It asks for a coordinator, kill -9s it, then SIGSTOPs the next
// one for longer than failure detection and SIGCONTs it. Every node tries to
// act as coordinator all along (POST /v1/leader/act; an agent records an
// action in DataDir/actions.jsonl only while it believes it acts). The
// actions, replayed in time order against a fencing provider, must show no
// term number acted under by two nodes and no lower term admitted after a
// higher one acted.
func TestElectionProcessesKillStopAndFence(t *testing.T) {
	const n = 5
	procs := make([]*proc, n)
	names := make([]string, n)
	dirs := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("e%d", i+1)
		dirs[i] = t.TempDir()
		join := ""
		if i > 0 {
			join = procs[0].gossip
		}
		procs[i] = startAgent(t, names[i], fmt.Sprintf("127.0.0.%d", 51+i), join,
			"--priority", strconv.Itoa(i+1), "--data-dir", dirs[i])
	}
	poll(t, 15*time.Second, "all five see five alive", func() error {
		for i, p := range procs {
			ms, err := cliJSON[[]client.Member](p.http, "members", "--status", "alive")
			if err != nil {
				return err
			}
			if len(ms) != n {
				return fmt.Errorf("%s sees %d alive", names[i], len(ms))
			}
		}
		return nil
	})

	// Every node tries to act every 20 ms until the end of the test.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client.New(p.http, "")
			for {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond): // the actor's period, not a wait for an outcome
				}
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				_, _ = c.Act(ctx) // a killed or stopped node does not answer
				cancel()
			}
		}()
	}
	stopActors := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopActors()

	// agreeOn waits until every node in idx names one of want under one
	// term above minTerm, the same one, and returns it and the term.
	agreeOn := func(idx []int, want []string, minTerm uint64) (string, uint64) {
		t.Helper()
		var term uint64
		var who string
		poll(t, 20*time.Second, fmt.Sprintf("%v name one of %v above term %d", idx, want, minTerm), func() error {
			term, who = 0, ""
			for _, i := range idx {
				l, err := cliJSON[client.Leader](procs[i].http, "leader")
				if err != nil {
					return err
				}
				if !slices.Contains(want, l.Coordinator) || l.Term <= minTerm || (who != "" && l.Coordinator != who) {
					return fmt.Errorf("%s names %q under term %d", names[i], l.Coordinator, l.Term)
				}
				who = l.Coordinator
				if term != 0 && l.Term != term {
					return fmt.Errorf("%s names term %d, another %d", names[i], l.Term, term)
				}
				term = l.Term
			}
			return nil
		})
		return who, term
	}
	agree := func(idx []int, want string, minTerm uint64) uint64 {
		t.Helper()
		_, term := agreeOn(idx, []string{want}, minTerm)
		return term
	}
	// acted waits until node i has recorded an action under term.
	acted := func(i int, term uint64) {
		t.Helper()
		poll(t, 10*time.Second, fmt.Sprintf("%s acts under term %d", names[i], term), func() error {
			acts, err := agent.ReadActionLog(filepath.Join(dirs[i], "actions.jsonl"))
			if err != nil {
				return err
			}
			for _, a := range acts {
				if a.Term == term {
					return nil
				}
			}
			return fmt.Errorf("%d actions, none under term %d", len(acts), term)
		})
	}

	l, err := cliJSON[client.Leader](procs[0].http, "leader", "--elect")
	if err != nil {
		t.Fatal(err)
	}
	t1 := agree([]int{0, 1, 2, 3, 4}, "e5", 0)
	if l.Coordinator != "e5" {
		t.Fatalf("leader --elect answered %+v", l)
	}
	acted(4, t1)

	// kill -9 the coordinator: the survivors name e4 under a higher term,
	// unless e4's election loop stalled meanwhile (a starved core on a
	// loaded machine): a stalled node listens for a lease before it claims
	// or takes over (Node.Stalled), so a lower survivor may win. Every
	// survivor above the winner must have counted a stall then.
	survivors := []int{0, 1, 2, 3}
	stallsOf := func() []float64 {
		v := make([]float64, n)
		for _, i := range survivors {
			v[i] = promGet(procs[i].http, "shoal_election_stalls_total")
		}
		return v
	}
	stalls0 := stallsOf()
	killed := time.Now()
	if err := procs[4].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second, t2 := agreeOn(survivors, []string{"e4", "e3", "e2", "e1"}, t1)
	co2 := slices.Index(names, second)
	stalls1 := stallsOf()
	for i := co2 + 1; i < 4; i++ {
		if stalls1[i] <= stalls0[i] {
			t.Errorf("after kill -9 of e5 the survivors name %s under term %d, but %s outranks it and its election loop did not stall (stalls %v then %v)",
				second, t2, names[i], stalls0[i], stalls1[i])
		}
	}
	t.Logf("kill -9 of e5 (term %d): %s named by all survivors under term %d after %v (stalls before %v, after %v)",
		t1, second, t2, time.Since(killed).Round(10*time.Millisecond), stalls0[:4], stalls1[:4])
	acted(co2, t2)

	// SIGSTOP that coordinator until the others have replaced it and the
	// new coordinator acted; then SIGCONT.
	if err := procs[co2].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The highest of the others outranks the rest, but a lower survivor
	// whose claim came first while it was short of CPU (seen once in CI,
	// with every package's tests beside it) keeps the role: preempt is off.
	// Either way one survivor takes over under one higher term and acts,
	// and the fence below holds.
	var others []int
	var otherNames []string
	for _, i := range survivors {
		if i != co2 {
			others = append(others, i)
			otherNames = append(otherNames, names[i])
		}
	}
	stopped := time.Now()
	third, t3 := agreeOn(others, otherNames, t2)
	acted(slices.Index(names, third), t3)
	if err := procs[co2].cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s stopped for %v; %s took over under term %d", second, time.Since(stopped).Round(10*time.Millisecond), third, t3)
	// With preempt off, the stopped node comes back and names the new
	// coordinator (or, had it been preempting, a later term of its own);
	// the four agree on one.
	poll(t, 20*time.Second, "the four agree again after SIGCONT", func() error {
		var first client.Leader
		for i := range 4 {
			l, err := cliJSON[client.Leader](procs[i].http, "leader")
			if err != nil {
				return err
			}
			if l.Coordinator == "" || (i > 0 && (l.Coordinator != first.Coordinator || l.Term != first.Term)) {
				return fmt.Errorf("%s names %q/%d, e1 names %q/%d", names[i], l.Coordinator, l.Term, first.Coordinator, first.Term)
			}
			if i == 0 {
				first = l
			}
		}
		if first.Term < t3 {
			return fmt.Errorf("term %d below %d", first.Term, t3)
		}
		return nil
	})
	// The resumed node counted the stop as a stall (what the rule above
	// leans on).
	if s := promGet(procs[co2].http, "shoal_election_stalls_total"); s <= stalls1[co2] {
		t.Errorf("%s was stopped for more than a lease, but shoal_election_stalls_total stayed at %v", second, s)
	}
	// Let the resumed node try to act for a while.
	poll(t, 10*time.Second, second+"'s actor ran after SIGCONT", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := client.New(procs[co2].http, "").Act(ctx)
		return err
	})
	stopActors()

	// Replay every recorded action in time order against a fence.
	type rec struct {
		client.LeaderAction
		at time.Time
	}
	var all []rec
	for i := range n {
		acts, err := agent.ReadActionLog(filepath.Join(dirs[i], "actions.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range acts {
			at, err := time.Parse(time.RFC3339Nano, a.Time)
			if err != nil || a.Node != names[i] || a.Holder != names[i] {
				t.Fatalf("bad action record in %s's log: %+v (%v)", names[i], a, err)
			}
			all = append(all, rec{a, at})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at.Before(all[j].at) })
	holderOf := map[uint64]string{}
	fc := fence.New(fence.Lease{})
	var last fence.Lease
	admitted, refused := 0, 0
	perHolder := map[string]int{}
	for _, a := range all {
		if h, ok := holderOf[a.Term]; ok && h != a.Holder {
			t.Errorf("term %d acted under by %s and %s", a.Term, h, a.Holder)
		}
		holderOf[a.Term] = a.Holder
		lease := fence.Lease{Holder: a.Holder, Priority: a.Priority, Term: a.Term}
		if err := fc.AdmitLease(lease); err != nil {
			if !errors.Is(err, fence.ErrStaleTerm) {
				t.Errorf("fence: %v", err)
			}
			refused++
			t.Logf("fence refused %s term %d at %s (a deposed coordinator): %v", a.Holder, a.Term, a.Time, err)
			continue
		}
		if lease.Compare(last) < 0 {
			t.Errorf("fence admitted %+v after %+v", lease, last)
		}
		last = lease
		admitted++
		perHolder[fmt.Sprintf("%s/term %d", a.Holder, a.Term)]++
	}
	t.Logf("%d actions: %d admitted, %d refused by the fence; by holder and term: %v", len(all), admitted, refused, perHolder)
	for _, want := range []struct {
		holder string
		term   uint64
	}{{"e5", t1}, {second, t2}, {third, t3}} {
		if holderOf[want.term] != want.holder {
			t.Errorf("no action of %s under term %d recorded", want.holder, want.term)
		}
	}
}
