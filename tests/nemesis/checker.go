package nemesis

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Action is one line of the shared resource log: a scale action that
// reached the resource (the exec command ran, or the webhook receiver
// accepted it).
type Action struct {
	Holder  string `json:"holder"`
	Node    string `json:"node"`
	Term    uint64 `json:"term"`
	From    int    `json:"from"`
	To      int    `json:"to"`
	AtNS    int64  `json:"at_ns"`   // wall clock when the resource changed
	Decided string `json:"decided"` // the decision's time, as the agent sent it
	Via     string `json:"via"`     // exec or webhook
}

// At is the action's wall time.
func (a Action) At() time.Time { return time.Unix(0, a.AtNS) }

func (a Action) String() string {
	return fmt.Sprintf("%s term %d %d->%d at %s via %s", a.Holder, a.Term, a.From, a.To, stamp(a.At()), a.Via)
}

// ActingRecord is one line an agent writes with --acting-log: on starting
// to act and on each lease renewal {"node","term","at","until"}, and on
// stopping {"node","term","at","end":true}.
type ActingRecord struct {
	Node  string    `json:"node"`
	Term  uint64    `json:"term"`
	At    time.Time `json:"at"`
	Until time.Time `json:"until"`
	End   bool      `json:"end"`
}

// Sample is one answer of GET /v1/leader, polled by the test.
type Sample struct {
	Node        string
	Sent, At    time.Time // request sent, answer received
	Acting      bool
	Coordinator string
	Term        uint64
}

// Window is a span of one node's life: a graceful leave (SIGTERM sent to
// exit seen), or a fault applying to it.
type Window struct {
	Node     string
	From, To time.Time
}

// Heal is the moment a fault ended (restart, SIGCONT, rules removed,
// rejoin); Quiet is true when no other fault started within the liveness
// bound after it, so that a coordinator is due.
type Heal struct {
	At    time.Time
	What  string
	Quiet bool
}

// Cut is a side without quorum: from At to Healed the nodes in Side can
// reach fewer than a majority (a partition's minority, or the nodes left
// running while a majority is stopped).
type Cut struct {
	Side       []string
	At, Healed time.Time
	What       string
}

// Interval is a span in which Node acted under Term.
type Interval struct {
	Node     string
	Term     uint64
	From, To time.Time
	Source   string
}

func (iv Interval) String() string {
	return fmt.Sprintf("%s term %d %s..%s (%s)", iv.Node, iv.Term, stamp(iv.From), stamp(iv.To), iv.Source)
}

// Input is everything a run recorded.
type Input struct {
	Actions  []Action       // the shared log, in its order
	Refused  []Action       // webhook calls the receiver refused (stale term)
	Acting   []ActingRecord // all nodes' --acting-log lines (empty: the agents have no such flag)
	Samples  []Sample       // /v1/leader polls
	Leaves   []Window
	Heals    []Heal
	Cuts     []Cut
	Initial  int           // the resource's count before the first action (0: unknown)
	Liveness time.Duration // (c): a coordinator acts within this after a quiet heal
	Minority time.Duration // (e): a side without quorum stops acting within this
	MaxGap   time.Duration // samples of one node further apart than this do not join an interval
}

// Violation is one broken property.
type Violation struct {
	Prop string // a, b, c, d, e
	At   time.Time
	Msg  string
}

func (v Violation) String() string { return fmt.Sprintf("(%s) %s: %s", v.Prop, stamp(v.At), v.Msg) }

// Properties names what each letter asserts.
var Properties = map[string]string{
	"a": "acting intervals of different holders never overlap",
	"b": "the shared log is a chain: from = previous to, none repeated, terms never decreasing",
	"c": "after each fault heals, a coordinator acts within the liveness bound",
	"d": "no action while leaving",
	"e": "a side without quorum stops acting within the lease",
}

// Report is the checker's result and the run's figures.
type Report struct {
	Violations []Violation
	Intervals  []Interval
	// HealDelays is, per quiet heal, the time until a coordinator acted
	// (-1: none within the bound).
	HealDelays []time.Duration
	// MaxNoCoordinator is the longest span, after the first acting sample,
	// in which no sample showed a node acting.
	MaxNoCoordinator time.Duration
	Terms            int // distinct terms seen acting
}

// Check checks every property over in.
func Check(in Input) Report {
	var r Report
	if in.MaxGap == 0 {
		in.MaxGap = time.Second
	}
	r.Intervals = Intervals(in)
	r.Violations = append(r.Violations, checkOverlap(r.Intervals)...)
	r.Violations = append(r.Violations, CheckChain(in.Actions)...)
	if in.Initial > 0 && len(in.Actions) > 0 && in.Actions[0].From != in.Initial {
		a := in.Actions[0]
		r.Violations = append(r.Violations, Violation{"b", a.At(), fmt.Sprintf("line 1: %s starts from %d, the resource was at %d", a, a.From, in.Initial)})
	}
	lv, delays := checkLiveness(in)
	r.Violations = append(r.Violations, lv...)
	r.HealDelays = delays
	r.Violations = append(r.Violations, checkLeaves(in)...)
	r.Violations = append(r.Violations, checkCuts(in)...)
	sort.SliceStable(r.Violations, func(i, j int) bool { return r.Violations[i].At.Before(r.Violations[j].At) })
	r.MaxNoCoordinator = maxNoCoordinator(in.Samples)
	terms := map[uint64]bool{}
	for _, iv := range r.Intervals {
		terms[iv.Term] = true
	}
	r.Terms = len(terms)
	return r
}

// Intervals are the acting intervals: from the acting logs where there are
// any, else from the /v1/leader samples (a node's consecutive acting
// answers under one term, from the first answer's arrival to the last
// one's sending: what the samples prove at least).
func Intervals(in Input) []Interval {
	if len(in.Acting) > 0 {
		return actingIntervals(in.Acting)
	}
	return sampleIntervals(in.Samples, in.MaxGap)
}

func actingIntervals(recs []ActingRecord) []Interval {
	byNode := map[string][]ActingRecord{}
	var nodes []string
	for _, r := range recs {
		if _, ok := byNode[r.Node]; !ok {
			nodes = append(nodes, r.Node)
		}
		byNode[r.Node] = append(byNode[r.Node], r)
	}
	var out []Interval
	for _, n := range nodes {
		var cur *Interval
		flush := func() {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		}
		for _, r := range byNode[n] { // in the file's order
			switch {
			case r.End:
				// Acting ends at the end record or at the lease's expiry,
				// whichever is first (a node stopped past its lease writes
				// the end only on resuming).
				if cur != nil && cur.Term == r.Term {
					if r.At.Before(cur.To) {
						cur.To = r.At
					}
					flush()
				}
			case cur != nil && cur.Term == r.Term && !r.At.After(cur.To):
				// a renewal inside the lease extends it
				if r.Until.After(cur.To) {
					cur.To = r.Until
				}
			default:
				flush()
				cur = &Interval{Node: n, Term: r.Term, From: r.At, To: r.Until, Source: "acting log"}
			}
		}
		flush() // no end record (killed): acting at most until the lease's expiry
	}
	return out
}

func sampleIntervals(samples []Sample, maxGap time.Duration) []Interval {
	byNode := map[string][]Sample{}
	var nodes []string
	for _, s := range samples {
		if _, ok := byNode[s.Node]; !ok {
			nodes = append(nodes, s.Node)
		}
		byNode[s.Node] = append(byNode[s.Node], s)
	}
	var out []Interval
	for _, n := range nodes {
		ss := byNode[n]
		sort.SliceStable(ss, func(i, j int) bool { return ss[i].Sent.Before(ss[j].Sent) })
		var cur *Interval
		var last time.Time
		for _, s := range ss {
			if cur != nil && (!s.Acting || s.Term != cur.Term || s.Sent.Sub(last) > maxGap) {
				out = append(out, *cur)
				cur = nil
			}
			if s.Acting {
				if cur == nil {
					cur = &Interval{Node: n, Term: s.Term, From: s.At, To: s.Sent, Source: "/v1/leader samples"}
				} else {
					cur.To = s.Sent
				}
			}
			last = s.At
		}
		if cur != nil {
			out = append(out, *cur)
		}
	}
	for i := range out {
		if out[i].To.Before(out[i].From) { // one sample: an instant
			out[i].To = out[i].From
		}
	}
	return out
}

// checkOverlap: (a).
func checkOverlap(ivs []Interval) []Violation {
	var v []Violation
	s := append([]Interval(nil), ivs...)
	sort.Slice(s, func(i, j int) bool { return s[i].From.Before(s[j].From) })
	for i := range s {
		for j := i + 1; j < len(s) && s[j].From.Before(s[i].To); j++ {
			if s[i].Node == s[j].Node {
				continue
			}
			end := s[i].To
			if s[j].To.Before(end) {
				end = s[j].To
			}
			if !end.After(s[j].From) {
				continue
			}
			v = append(v, Violation{"a", s[j].From, fmt.Sprintf("%s overlaps %s for %v", s[j], s[i], end.Sub(s[j].From).Round(time.Microsecond))})
		}
	}
	return v
}

// CheckChain: (b) over the shared log in its order.
func CheckChain(acts []Action) []Violation {
	var v []Violation
	for i := 1; i < len(acts); i++ {
		p, a := acts[i-1], acts[i]
		if a.From != p.To {
			v = append(v, Violation{"b", a.At(), fmt.Sprintf("line %d: %s starts from %d, the resource was at %d after line %d (%s)", i+1, a, a.From, p.To, i, p)})
		}
		if a.From == p.From && a.To == p.To {
			v = append(v, Violation{"b", a.At(), fmt.Sprintf("line %d repeats line %d: %s after %s", i+1, i, a, p)})
		}
		if a.Term < p.Term {
			v = append(v, Violation{"b", a.At(), fmt.Sprintf("line %d: term %d after term %d (%s after %s)", i+1, a.Term, p.Term, a, p)})
		}
	}
	for i, a := range acts {
		if a.From == a.To {
			v = append(v, Violation{"b", a.At(), fmt.Sprintf("line %d: %s changes nothing", i+1, a)})
		}
	}
	return v
}

// checkLiveness: (c). A quiet heal needs an acting sample within the bound.
func checkLiveness(in Input) ([]Violation, []time.Duration) {
	var v []Violation
	var delays []time.Duration
	acting := make([]Sample, 0, len(in.Samples))
	for _, s := range in.Samples {
		if s.Acting {
			acting = append(acting, s)
		}
	}
	sort.Slice(acting, func(i, j int) bool { return acting[i].At.Before(acting[j].At) })
	for _, h := range in.Heals {
		if !h.Quiet {
			continue
		}
		i := sort.Search(len(acting), func(i int) bool { return !acting[i].At.Before(h.At) })
		if i < len(acting) && acting[i].At.Sub(h.At) <= in.Liveness {
			delays = append(delays, acting[i].At.Sub(h.At))
			continue
		}
		delays = append(delays, -1)
		next := "none since"
		if i < len(acting) {
			next = fmt.Sprintf("%s acted first %v later", acting[i].Node, acting[i].At.Sub(h.At).Round(time.Millisecond))
		}
		v = append(v, Violation{"c", h.At, fmt.Sprintf("after %s no coordinator acted within %v (%s)", h.What, in.Liveness, next)})
	}
	return v, delays
}

// checkLeaves: (d). No action reached the resource, nor the receiver,
// from a node while it was leaving.
func checkLeaves(in Input) []Violation {
	var v []Violation
	all := append(append([]Action(nil), in.Actions...), in.Refused...)
	for _, w := range in.Leaves {
		for _, a := range all {
			if (a.Holder == w.Node || a.Node == w.Node) && !a.At().Before(w.From) && !a.At().After(w.To) {
				v = append(v, Violation{"d", a.At(), fmt.Sprintf("%s while %s was leaving (%s..%s)", a, w.Node, stamp(w.From), stamp(w.To))})
			}
		}
	}
	return v
}

// checkCuts: (e). No node on a side without quorum acts later than the
// bound after the cut (until the cut heals).
func checkCuts(in Input) []Violation {
	var v []Violation
	for _, c := range in.Cuts {
		side := map[string]bool{}
		for _, n := range c.Side {
			side[n] = true
		}
		var last *Sample
		for i, s := range in.Samples {
			if !side[s.Node] || !s.Acting || !s.Sent.After(c.At.Add(in.Minority)) || !s.At.Before(c.Healed) {
				continue
			}
			if last == nil || s.Sent.After(last.Sent) {
				last = &in.Samples[i]
			}
		}
		if last != nil {
			v = append(v, Violation{"e", last.Sent, fmt.Sprintf("%s (no quorum since %s: %s) still acting under term %d %v after the cut (bound %v)",
				last.Node, stamp(c.At), c.What, last.Term, last.Sent.Sub(c.At).Round(time.Millisecond), in.Minority)})
		}
	}
	return v
}

func maxNoCoordinator(samples []Sample) time.Duration {
	var ts []time.Time
	for _, s := range samples {
		if s.Acting {
			ts = append(ts, s.At)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	var m time.Duration
	for i := 1; i < len(ts); i++ {
		m = max(m, ts[i].Sub(ts[i-1]))
	}
	return m
}

// ReadActions reads a shared log (JSON lines).
func ReadActions(path string) ([]Action, error) {
	return readLines[Action](path)
}

// ReadActing reads one agent's acting log; a missing file is empty.
func ReadActing(path string) ([]ActingRecord, error) {
	return readLines[ActingRecord](path)
}

func readLines[T any](path string) ([]T, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return decodeLines[T](f, path)
}

func decodeLines[T any](r io.Reader, name string) ([]T, error) {
	var out []T
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			return out, fmt.Errorf("%s line %d %q: %w", name, n, line, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }
