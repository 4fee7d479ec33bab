package election

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden output in testdata/*.txt")

// TestInteraction runs the scenario scripts in testdata. Each block is one
// command line, a line "----", and the expected output, ended by a blank
// line; lines starting with # are comments. Run with -rewrite to regenerate
// the expected output after a deliberate change, and read the diff.
//
// Commands:
//
//	config k=v ...            set the template of nodes added later:
//	                          preempt, preempt-delay, quorum, jitter, seed
//	add-nodes N [prio=P]      add n<k+1>..n<k+N> (priority P, default 0)
//	add-node NAME [prio=P] [preempt=B]  add one node (B overrides the config's preempt)
//	request NAME              Request() on a node
//	tick [N]                  tick every up node N times (default 1), deliver nothing
//	deliver-msgs [drop=SPEC]  deliver what is in flight; SPEC is a comma list of
//	                          NAME (to or from), A->B, or all
//	stabilize                 deliver-msgs until nothing is in flight
//	settle [MAX]              tick and deliver until quiet (default max 200)
//	step [N]                  tick and deliver N times (default 1), quiet or not
//	kill NAME | revive NAME | leave NAME
//	pause NAME | resume NAME  stop a node unseen by the failure detector (SIGSTOP)
//	restart NAME              a quick restart with the same HardState, unseen
//	cut A,B / C,D,E           a partition the failure detector does not see yet
//	want NAME                 SetWant(true): something there needs a coordinator
//	leaving NAME              Leave(): the node leaves or shuts down
//	partition A,B / C,D,E     split into sides; heal
//	status                    every node's Status
//	metrics NAME              a node's Metrics
//	invariants                the Sim's invariant violations
//	replay NAME [older]       deliver to NAME again every message delivered to
//	                          it so far (older: only those whose term is below
//	                          the highest it has seen), as a replaying attacker
//	                          would, and say what each changed; replies go in
//	                          flight
func TestInteraction(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) { runScript(t, f) })
	}
}

type block struct {
	pre  []string // comments and blank lines before the command
	cmd  string
	want string
	line int
}

func parseScript(t *testing.T, path string) []block {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	var out []block
	var pre []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			pre = append(pre, l)
			continue
		}
		b := block{pre: pre, cmd: l, line: i + 1}
		pre = nil
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command %q not followed by ----", path, i+1, l)
		}
		i += 2
		var want []string
		for ; i < len(lines) && lines[i] != ""; i++ {
			want = append(want, lines[i])
		}
		b.want = strings.Join(want, "\n")
		out = append(out, b)
	}
	// Trailing blank lines are dropped; the file is rewritten with one.
	return out
}

func runScript(t *testing.T, path string) {
	blocks := parseScript(t, path)
	h := &harness{cfg: FastConfig()}
	h.cfg.Jitter = 0
	h.reset()
	var b strings.Builder
	for i, bl := range blocks {
		got := h.run(t, bl.cmd)
		if got == "" {
			got = "ok"
		}
		if i > 0 {
			b.WriteString("\n")
		}
		for _, p := range bl.pre {
			if strings.TrimSpace(p) != "" {
				b.WriteString(p + "\n")
			}
		}
		fmt.Fprintf(&b, "%s\n----\n%s\n", bl.cmd, got)
		if !*rewrite && got != bl.want {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", path, bl.line, bl.cmd, got, bl.want)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type harness struct {
	cfg       Config
	seed      uint64
	sim       *Sim
	delivered []Message // every message stepped without error, for replay
	replaying bool      // replays are not recorded
}

func (h *harness) reset() {
	h.sim = NewSim(SimConfig{Seed: h.seed, Node: h.cfg})
	h.delivered = nil
	h.sim.Delivered = func(m Message) {
		if !h.replaying {
			h.delivered = append(h.delivered, m)
		}
	}
}

// replay delivers again to name the messages delivered to it so far (only
// those with a term below the highest it has seen, when older), and says
// for each what it changed in the node's Status, HardState or Lease.
func (h *harness) replay(t *testing.T, name string, older bool) string {
	s := h.sim
	n := s.Node(name)
	// What a replay must not move: what the node shows and keeps, and
	// the state behind its leases (whom it granted, until when, and when
	// it last heard its coordinator renew).
	type snapshot struct {
		st       Status
		hs       HardState
		l        Lease
		ok       bool
		granted  string
		until    uint64
		heard    uint64
		internal state
	}
	snap := func() snapshot {
		l, ok := n.Lease()
		return snapshot{n.Status(), n.HardState(), l, ok, n.guardHolder, n.guardUntil, n.heard, n.st}
	}
	max := n.HardState().MaxTerm
	var out []string
	k := 0
	h.replaying = true
	defer func() { h.replaying = false }()
	for _, m := range h.delivered {
		if m.To != name || older && m.Term >= max {
			continue
		}
		k++
		before := snap()
		_, _, err := s.deliver(m)
		after := snap()
		l := "replayed " + m.String() + ": "
		switch {
		case err != nil:
			l += "refused: " + err.Error()
		case before == after:
			l += "unchanged"
		default:
			l += fmt.Sprintf("CHANGED %+v -> %+v", before, after)
		}
		out = append(out, l)
	}
	if k == 0 {
		return "nothing to replay"
	}
	return strings.Join(out, "\n")
}

func (h *harness) run(t *testing.T, line string) string {
	t.Helper()
	f := strings.Fields(line)
	cmd, args := f[0], f[1:]
	kv := map[string]string{}
	var pos []string
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			kv[k] = v
		} else {
			pos = append(pos, a)
		}
	}
	atoi := func(s string) int {
		v, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	must := func(err error) {
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
	}
	s := h.sim
	switch cmd {
	case "config":
		for k, v := range kv {
			switch k {
			case "preempt":
				h.cfg.Preempt = v == "true"
			case "preempt-delay":
				h.cfg.PreemptDelay = atoi(v)
			case "quorum":
				h.cfg.Quorum = atoi(v)
			case "jitter":
				h.cfg.Jitter = atoi(v)
			case "seed":
				h.seed = uint64(atoi(v))
			default:
				t.Fatalf("%s: unknown key %q", line, k)
			}
		}
		if len(s.Names()) > 0 {
			t.Fatalf("%s: config must come before add-nodes", line)
		}
		h.reset()
		return ""
	case "add-nodes":
		prio := 0
		if v, ok := kv["prio"]; ok {
			prio = atoi(v)
		}
		k := len(s.nodes)
		for i := 1; i <= atoi(pos[0]); i++ {
			_, err := s.AddNode(fmt.Sprintf("n%d", k+i), prio)
			must(err)
		}
		return ""
	case "add-node":
		prio := 0
		if v, ok := kv["prio"]; ok {
			prio = atoi(v)
		}
		saved := s.cfg.Node
		if v, ok := kv["preempt"]; ok {
			s.cfg.Node.Preempt = v == "true" // this node only: Preempt is per node
		}
		_, err := s.AddNode(pos[0], prio)
		s.cfg.Node = saved
		must(err)
		return ""
	case "request":
		for _, n := range pos {
			must(s.Request(n))
		}
		return ""
	case "tick":
		k := 1
		if len(pos) > 0 {
			k = atoi(pos[0])
		}
		for range k {
			s.TickAll()
		}
		return ""
	case "deliver-msgs":
		return formatDeliveries(s.Deliver(dropFunc(kv["drop"])))
	case "stabilize":
		var out []string
		for i := 0; s.InFlight() > 0; i++ {
			if i > 50 {
				t.Fatalf("%s: does not stabilize", line)
			}
			out = append(out, formatDeliveries(s.Deliver(nil)))
		}
		return strings.Join(out, "\n")
	case "settle":
		max := 200
		if len(pos) > 0 {
			max = atoi(pos[0])
		}
		before := s.Sent.Total()
		n, ok := s.Settle(max)
		if !ok {
			return fmt.Sprintf("NOT settled after %d ticks", n)
		}
		return fmt.Sprintf("settled after %d ticks, %d messages", n, s.Sent.Total()-before)
	case "step":
		k := 1
		if len(pos) > 0 {
			k = atoi(pos[0])
		}
		before := s.Sent.Total()
		for range k {
			s.Step()
		}
		return fmt.Sprintf("%d messages", s.Sent.Total()-before)
	case "kill":
		must(s.Kill(pos[0]))
		return ""
	case "revive":
		must(s.Revive(pos[0]))
		return ""
	case "restart":
		if v, ok := kv["prio"]; ok {
			must(s.RestartAs(pos[0], atoi(v)))
			return ""
		}
		must(s.Restart(pos[0]))
		return ""
	case "want":
		s.Node(pos[0]).SetWant(true)
		return ""
	case "leaving":
		n := s.Node(pos[0])
		n.Leave()
		s.after(s.byName[pos[0]])
		return ""
	case "cut":
		var groups [][]string
		for _, g := range strings.Split(strings.Join(pos, " "), "/") {
			groups = append(groups, strings.Split(strings.TrimSpace(g), ","))
		}
		must(s.Cut(groups...))
		return ""
	case "pause":
		must(s.Pause(pos[0]))
		return ""
	case "resume":
		must(s.Resume(pos[0]))
		return ""
	case "leave":
		must(s.Leave(pos[0]))
		return ""
	case "partition":
		var groups [][]string
		for _, g := range strings.Split(strings.Join(pos, " "), "/") {
			groups = append(groups, strings.Split(strings.TrimSpace(g), ","))
		}
		must(s.Partition(groups...))
		return ""
	case "heal":
		s.Heal()
		return ""
	case "status":
		var out []string
		for _, sn := range s.nodes {
			switch {
			case sn.left:
				out = append(out, sn.node.Name()+": left")
			case !sn.up:
				out = append(out, sn.node.Name()+": down")
			case sn.paused:
				out = append(out, sn.node.Name()+": paused")
			default:
				out = append(out, sn.node.Status().String())
			}
		}
		return strings.Join(out, "\n")
	case "metrics":
		m := s.Node(pos[0]).Metrics()
		return fmt.Sprintf("started=%d won=%d settled=%d claims=%d failed=%d stepdowns=%d preemptions=%d lost=%d ticks-last=%d\nsent challenge=%d answer=%d coordinator=%d ack=%d nack=%d",
			m.ElectionsStarted, m.ElectionsWon, m.ElectionsSettled, m.ClaimsStarted, m.ClaimsFailed, m.StepDowns, m.Preemptions, m.CoordinatorLost, m.ElectTicksLast,
			m.Sent.Challenge, m.Sent.Answer, m.Sent.Coordinator, m.Sent.Ack, m.Sent.Nack)
	case "replay":
		return h.replay(t, pos[0], len(pos) > 1 && pos[1] == "older")
	case "invariants":
		v := s.Violations()
		if len(v) == 0 {
			return "none violated"
		}
		return strings.Join(v, "\n")
	}
	t.Fatalf("unknown command %q", line)
	return ""
}

func dropFunc(spec string) func(Message) bool {
	if spec == "" {
		return nil
	}
	items := strings.Split(spec, ",")
	return func(m Message) bool {
		for _, it := range items {
			if it == "all" || it == m.From || it == m.To {
				return true
			}
			if a, b, ok := strings.Cut(it, "->"); ok && a == m.From && b == m.To {
				return true
			}
		}
		return false
	}
}

func formatDeliveries(ds []Delivery) string {
	if len(ds) == 0 {
		return "nothing in flight"
	}
	var out []string
	for _, d := range ds {
		l := d.Msg.String()
		if d.Dropped {
			l += " (" + d.Why + ")"
		}
		if d.Err != nil {
			l += " err: " + d.Err.Error()
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}
