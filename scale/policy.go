package scale

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrConfig is wrapped by every policy configuration error; the message
// names the bad value.
var ErrConfig = errors.New("scale: invalid configuration")

// Modes of a Policy.
const (
	// ModeTarget is the HPA's proportional rule: desired =
	// ceil(current × value / target), outside a tolerance band.
	ModeTarget = "target"
	// ModeThresholds applies fixed steps when the value stays above or
	// below a threshold for a while ("above 75 for 30s → +1").
	ModeThresholds = "thresholds"
)

// Actions a Decision can carry.
const (
	ActionNone = "none"
	ActionUp   = "up"
	ActionDown = "down"
)

// Config is a Policy's configuration. Start from DefaultConfig.
type Config struct {
	// Metric names what the policy watches: see Aggregate for the syntax
	// ("cpu", "cpu:p90", "mem:max", "net", "tag:queue_depth:mean").
	Metric string
	// Target is the value of Metric per instance the policy aims for
	// (ModeTarget), e.g. 70 for 70% CPU.
	Target float64
	// Tolerance is the relative band around Target inside which nothing
	// changes: |value/Target − 1| ≤ Tolerance. HPA's default is 0.1.
	Tolerance float64
	// Min and Max bound the desired count (Max 0: no upper bound).
	Min, Max int
	// UpWindow is the shortest window the scale-up test looks at
	// (ModeTarget): the policy scales up when the median demand over the
	// last UpWindow (or over 2×, 4×, … of it, up to TrendWindow) is above
	// the tolerance band with confidence: median − 2.5 standard errors,
	// the noise measured over the last TrendWindow. A blip shorter than
	// half the window does not move the median; a small excess needs a
	// longer window to be told from noise. 0: the latest value alone.
	UpWindow time.Duration
	// DownWindow is the scale-down stabilization: the policy scales down
	// only to the highest recommendation over this window, and only once
	// it has recommendations covering all of it.
	DownWindow time.Duration
	// UpCooldown and DownCooldown are the times after the last action
	// (in either direction) before the policy scales up, respectively down.
	UpCooldown, DownCooldown time.Duration
	// UpStep and UpStepPercent limit how much the count may grow within
	// StepPeriod: by at most max(UpStep, ceil(base × UpStepPercent/100)),
	// where base is the count at the start of the period (HPA's policies
	// with selectPolicy Max). Both zero: no limit. DownStep and
	// DownStepPercent do the same for shrinking.
	UpStep          int
	UpStepPercent   float64
	DownStep        int
	DownStepPercent float64
	StepPeriod      time.Duration
	// Mode is ModeTarget (default) or ModeThresholds.
	Mode string
	// Thresholds are the rules of ModeThresholds; see ParseThreshold.
	Thresholds []Threshold
	// DryRun marks every decision as dry-run: the caller records it and
	// does not call the provider.
	DryRun bool

	// Readiness and trend (ModeTarget).
	//
	// BootTime is how long a new instance takes to serve, as a prior: once
	// the input carries ready counts (Input.ReadyKnown) the policy uses the
	// median of the boot times it observed instead. Without ready counts it
	// takes instances added less than the boot time ago as booting.
	BootTime time.Duration
	// TrendWindow is how far back the demand's trend is fitted (Theil–Sen);
	// 0 turns the trend off. The policy scales up ahead of the band when
	// the demand, projected over the boot time plus Lookahead plus
	// MetricLag, crosses it, and the fit is significant (slope ≥ 4 standard
	// errors) and consistent (both halves of the window rise alike), which
	// a plateau, a step or an oscillation is not.
	TrendWindow time.Duration
	// Lookahead is how far beyond the boot time the trend is projected.
	Lookahead time.Duration
	// MetricLag is how far behind the watched metric runs (smoothing,
	// gossip): it is added to the projection, and for that long after the
	// ready count rises the metric is taken to still describe the
	// instances that served before.
	MetricLag time.Duration
}

// DefaultConfig returns the defaults: 70% mean CPU, 10% tolerance, a 5 s
// scale-up window, HPA's 300 s scale-down stabilization, 15 s up and 60 s
// down cooldowns, HPA's default step limits (up: max(4, 100%) per 15 s; down:
// 100% per 15 s), 1 to 10 instances; a 60 s trend window projected 30 s
// beyond the boot time (no boot time assumed until one is observed).
func DefaultConfig() Config {
	return Config{
		Metric:          "cpu",
		Target:          70,
		Tolerance:       0.1,
		Min:             1,
		Max:             10,
		UpWindow:        5 * time.Second,
		DownWindow:      300 * time.Second,
		UpCooldown:      15 * time.Second,
		DownCooldown:    60 * time.Second,
		UpStep:          4,
		UpStepPercent:   100,
		DownStepPercent: 100,
		StepPeriod:      15 * time.Second,
		Mode:            ModeTarget,
		TrendWindow:     60 * time.Second,
		Lookahead:       30 * time.Second,
	}
}

// Validate reports the first bad value, naming it.
func (c *Config) Validate() error {
	if _, err := ParseMetric(c.Metric); err != nil {
		return err
	}
	if c.Min < 0 {
		return fmt.Errorf("%w: scale-min %d is negative", ErrConfig, c.Min)
	}
	if c.Max < 0 {
		return fmt.Errorf("%w: scale-max %d is negative (0 means no upper bound)", ErrConfig, c.Max)
	}
	if c.Max > 0 && c.Min > c.Max {
		return fmt.Errorf("%w: scale-min %d is above scale-max %d", ErrConfig, c.Min, c.Max)
	}
	if c.Tolerance < 0 || c.Tolerance >= 1 || math.IsNaN(c.Tolerance) {
		return fmt.Errorf("%w: scale-tolerance %v: want 0 ≤ tolerance < 1 (0.1 is 10%%)", ErrConfig, c.Tolerance)
	}
	for name, d := range map[string]time.Duration{"scale-up-window": c.UpWindow, "scale-down-window": c.DownWindow,
		"scale-up-cooldown": c.UpCooldown, "scale-down-cooldown": c.DownCooldown, "scale-step-period": c.StepPeriod,
		"scale-boot-time": c.BootTime, "scale-trend-window": c.TrendWindow, "scale-lookahead": c.Lookahead, "scale-metric-lag": c.MetricLag} {
		if d < 0 {
			return fmt.Errorf("%w: %s %v is negative", ErrConfig, name, d)
		}
	}
	if c.UpStep < 0 || c.DownStep < 0 || c.UpStepPercent < 0 || c.DownStepPercent < 0 {
		return fmt.Errorf("%w: step limits must not be negative (up %d/%v%%, down %d/%v%%)", ErrConfig,
			c.UpStep, c.UpStepPercent, c.DownStep, c.DownStepPercent)
	}
	if (c.UpStep > 0 || c.UpStepPercent > 0 || c.DownStep > 0 || c.DownStepPercent > 0) && c.StepPeriod <= 0 {
		return fmt.Errorf("%w: step limits need a positive scale-step-period", ErrConfig)
	}
	switch c.Mode {
	case ModeTarget, "":
		if !(c.Target > 0) || math.IsInf(c.Target, 0) {
			return fmt.Errorf("%w: scale-target %v: want a positive value of %s per instance (e.g. 70 for 70%% CPU)", ErrConfig, c.Target, c.Metric)
		}
		if len(c.Thresholds) > 0 {
			return fmt.Errorf("%w: %d thresholds given but the mode is %q: thresholds need mode %q", ErrConfig, len(c.Thresholds), ModeTarget, ModeThresholds)
		}
	case ModeThresholds:
		if len(c.Thresholds) == 0 {
			return fmt.Errorf("%w: mode %q needs at least one threshold (e.g. \"above 75 for 30s -> +1\")", ErrConfig, ModeThresholds)
		}
		for _, t := range c.Thresholds {
			if err := t.validate(); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: scale mode %q: use %s or %s", ErrConfig, c.Mode, ModeTarget, ModeThresholds)
	}
	return nil
}

// Threshold is one rule of ModeThresholds: when the value stays above (or
// below) Value for For, change the count by Delta.
type Threshold struct {
	Above bool
	Value float64
	For   time.Duration
	Delta int
}

func (t Threshold) String() string {
	dir := "below"
	if t.Above {
		dir = "above"
	}
	return fmt.Sprintf("%s %v for %v -> %+d", dir, t.Value, t.For, t.Delta)
}

func (t Threshold) validate() error {
	switch {
	case math.IsNaN(t.Value) || math.IsInf(t.Value, 0):
		return fmt.Errorf("%w: threshold %q: the value is not a number", ErrConfig, t)
	case t.For < 0:
		return fmt.Errorf("%w: threshold %q: negative duration", ErrConfig, t)
	case t.Delta == 0:
		return fmt.Errorf("%w: threshold %q: a step of 0 does nothing", ErrConfig, t)
	case t.Above && t.Delta < 0, !t.Above && t.Delta > 0:
		return fmt.Errorf("%w: threshold %q: 'above' rules add instances (+n), 'below' rules remove them (-n)", ErrConfig, t)
	}
	return nil
}

// ParseThreshold reads a rule such as "above 75% for 30s -> +1" or
// "below 20 for 5m → -1" ("->", "→" or ":" before the step; "%" optional).
func ParseThreshold(s string) (Threshold, error) {
	bad := func(why string) (Threshold, error) {
		return Threshold{}, fmt.Errorf("%w: threshold %q: %s; want e.g. \"above 75%% for 30s -> +1\"", ErrConfig, s, why)
	}
	r := strings.NewReplacer("→", " -> ", "->", " -> ", ":", " -> ")
	f := strings.Fields(r.Replace(s))
	if len(f) != 6 || f[2] != "for" || f[4] != "->" {
		return bad("wrong shape")
	}
	var t Threshold
	switch f[0] {
	case "above":
		t.Above = true
	case "below":
	default:
		return bad(fmt.Sprintf("%q: use above or below", f[0]))
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
	if err != nil {
		return bad(fmt.Sprintf("value %q is not a number", f[1]))
	}
	t.Value = v
	d, err := time.ParseDuration(f[3])
	if err != nil {
		return bad(fmt.Sprintf("duration %q: %v", f[3], err))
	}
	t.For = d
	n, err := strconv.Atoi(strings.TrimPrefix(f[5], "+"))
	if err != nil {
		return bad(fmt.Sprintf("step %q is not a whole number", f[5]))
	}
	t.Delta = n
	if err := t.validate(); err != nil {
		return Threshold{}, fmt.Errorf("%w (as written: %q)", err, s)
	}
	return t, nil
}

// Input is what the policy sees at one evaluation.
type Input struct {
	// Current is the instance count now (the provider's, or the mesh's):
	// the count asked for, booting instances included.
	Current int
	// Value is the aggregate of Config.Metric; Valid false means no load
	// figures were available (no decision is taken on missing data). In
	// ModeTarget it is taken as the load per serving instance.
	Value float64
	Valid bool
	// Ready is how many of the instances serve (Kubernetes readyReplicas,
	// an Auto Scaling group's InService instances, a hook's report), when
	// ReadyKnown. The demand is Value × Ready: booting instances carry
	// none, and the policy does not scale again for load they will absorb.
	Ready      int
	ReadyKnown bool
}

// Decision is the outcome of one evaluation, with the reasons for it.
type Decision struct {
	Time    time.Time `json:"time"`
	Current int       `json:"current"`
	// Desired is what the policy asks for; equal to Current when Action is
	// ActionNone.
	Desired int    `json:"desired"`
	Action  string `json:"action"`
	// Recommendation is the raw recommendation of this evaluation, before
	// windows, cooldowns, steps and bounds.
	Recommendation int     `json:"recommendation"`
	Metric         string  `json:"metric"`
	Value          float64 `json:"value"`
	Target         float64 `json:"target,omitempty"`
	// Ready is the count of serving instances the demand was computed
	// from (ModeTarget): reported, or estimated from the boot time.
	Ready  int  `json:"ready,omitempty"`
	DryRun bool `json:"dry_run,omitempty"`
	// Reasons explain the decision in order: the rule, then whatever held
	// it back or bounded it.
	Reasons []string `json:"reasons"`
}

// Reason joins the reasons into one line.
func (d Decision) Reason() string { return strings.Join(d.Reasons, "; ") }

// Action is a scaling action that took place (or was taken in dry-run):
// the policy's cooldowns and step limits count from these.
type Action struct {
	Time     time.Time `json:"time"`
	From, To int
}

type rec struct {
	t time.Time
	n int
}

// Policy turns aggregate load over time into a desired instance count. It
// is pure: no clock, no goroutines, no I/O; time comes in with each call.
// It is not safe for concurrent use: one goroutine owns it.
type Policy struct {
	cfg     Config
	recs    []rec       // recommendations, oldest first, pruned to the longest window
	actions []Action    // recent actions, pruned to max(StepPeriod, cooldowns, boot time)
	since   []time.Time // ModeThresholds: since when each rule's condition holds (zero: not holding)

	// ModeTarget's readiness and trend state (target.go).
	series  []sample    // demand samples, oldest first
	readies []readyAt   // ready counts seen within MetricLag
	pending []pendingUp // scale-ups whose instances are not all ready yet
	boots   []time.Duration
	ceiling float64 // the metric's saturation value (100 for cpu and mem), 0: none
}

// New returns a Policy for cfg, or the validation error.
func New(cfg Config) (*Policy, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeTarget
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Policy{cfg: cfg, since: make([]time.Time, len(cfg.Thresholds))}
	if m, _ := ParseMetric(cfg.Metric); !m.Named && (m.Source == "cpu" || m.Source == "mem") {
		p.ceiling = 100
	}
	return p, nil
}

// Config returns the policy's configuration.
func (p *Policy) Config() Config { return p.cfg }

// Record tells the policy an action took place (applied by this node, by
// another coordinator, or read back from the history after a restart).
// Actions older than one already recorded are ignored.
func (p *Policy) Record(a Action) {
	if n := len(p.actions); n > 0 && !a.Time.After(p.actions[n-1].Time) {
		return
	}
	p.actions = append(p.actions, a)
	p.noteAction(a)
}

// LastAction returns the latest recorded action.
func (p *Policy) LastAction() (Action, bool) {
	if len(p.actions) == 0 {
		return Action{}, false
	}
	return p.actions[len(p.actions)-1], true
}

// Evaluate computes the decision at now. It records the raw recommendation
// for the windows; it does not record an action (call Record once the
// decision was carried out).
func (p *Policy) Evaluate(now time.Time, in Input) Decision {
	c := &p.cfg
	d := Decision{Time: now, Current: in.Current, Desired: in.Current, Action: ActionNone, Metric: c.Metric,
		Value: in.Value, DryRun: c.DryRun}
	if c.Mode == ModeTarget {
		d.Target = c.Target
	}
	cur := in.Current
	if !in.Valid {
		p.reset()
		d.Recommendation = cur
		d.Reasons = append(d.Reasons, "no load figures: holding")
		return p.bound(now, d)
	}
	if c.Mode != ModeThresholds {
		return p.evaluateTarget(now, in, d)
	}
	r := p.thresholds(now, in, &d)
	d.Recommendation = r
	p.recs = append(p.recs, rec{now, r})
	p.prune(now)

	want := cur
	switch {
	case r > cur:
		want = r // the rule's own duration was the window
	case r < cur:
		want = r
	}
	d.Desired = want
	return p.bound(now, d)
}

// thresholds applies ModeThresholds: the largest step of the 'above' rules
// that held for their duration, else the largest cut of the 'below' rules.
func (p *Policy) thresholds(now time.Time, in Input, d *Decision) int {
	up, down := 0, 0
	var upRule, downRule Threshold
	for i, t := range p.cfg.Thresholds {
		holds := (t.Above && in.Value > t.Value) || (!t.Above && in.Value < t.Value)
		if !holds {
			p.since[i] = time.Time{}
			continue
		}
		if p.since[i].IsZero() {
			p.since[i] = now
		}
		if now.Sub(p.since[i]) < t.For {
			continue
		}
		if t.Delta > up {
			up, upRule = t.Delta, t
		}
		if t.Delta < down {
			down, downRule = t.Delta, t
		}
	}
	switch {
	case up > 0:
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.1f: rule %q", p.cfg.Metric, in.Value, upRule))
		return in.Current + up
	case down < 0:
		d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.1f: rule %q", p.cfg.Metric, in.Value, downRule))
		return max(in.Current+down, 0)
	}
	d.Reasons = append(d.Reasons, fmt.Sprintf("%s %.1f: no rule holds: keep %d", p.cfg.Metric, in.Value, in.Current))
	return in.Current
}

// held returns the lowest (or, with highest, the highest) recommendation in
// force over the last w, and false when the recorded recommendations do not
// reach back to the start of the window. A recommendation is in force from
// its time to the next one.
func (p *Policy) held(now time.Time, w time.Duration, highest bool) (int, bool) {
	start := now.Add(-w)
	if len(p.recs) == 0 || p.recs[0].t.After(start) {
		return 0, false
	}
	out, first := 0, true
	for i := len(p.recs) - 1; i >= 0; i-- {
		r := p.recs[i]
		if first || (highest && r.n > out) || (!highest && r.n < out) {
			out = r.n
		}
		first = false
		if !r.t.After(start) {
			break // the recommendation in force at the window's start
		}
	}
	return out, true
}

// bound applies cooldowns, step limits and min/max to d.Desired.
func (p *Policy) bound(now time.Time, d Decision) Decision {
	c := &p.cfg
	cur := d.Current
	want := d.Desired
	last, hasLast := p.LastAction()
	// Bounds first decide whether we are out of range; being out of range
	// overrides the windows but not the cooldowns.
	switch {
	case cur < c.Min:
		want = max(want, c.Min)
		d.Reasons = append(d.Reasons, fmt.Sprintf("%d is below scale-min %d", cur, c.Min))
	case c.Max > 0 && cur > c.Max:
		want = min(want, c.Max)
		d.Reasons = append(d.Reasons, fmt.Sprintf("%d is above scale-max %d", cur, c.Max))
	}
	if want > cur && hasLast {
		if left := c.UpCooldown - now.Sub(last.Time); left > 0 {
			d.Reasons = append(d.Reasons, fmt.Sprintf("scale-up cooldown: %v left after the last action (%d→%d)", left.Round(time.Second/10), last.From, last.To))
			want = cur
		}
	}
	if want < cur && hasLast {
		if left := c.DownCooldown - now.Sub(last.Time); left > 0 {
			d.Reasons = append(d.Reasons, fmt.Sprintf("scale-down cooldown: %v left after the last action (%d→%d)", left.Round(time.Second/10), last.From, last.To))
			want = cur
		}
	}
	if want > cur && (c.UpStep > 0 || c.UpStepPercent > 0) {
		base := p.baseAt(now, cur)
		limit := base + max(c.UpStep, int(math.Ceil(float64(base)*c.UpStepPercent/100)))
		if want > limit {
			d.Reasons = append(d.Reasons, fmt.Sprintf("step limit: at most %d within %v (from %d)", limit, c.StepPeriod, base))
			want = max(limit, cur)
		}
	}
	if want < cur && (c.DownStep > 0 || c.DownStepPercent > 0) {
		base := p.baseAt(now, cur)
		limit := base - max(c.DownStep, int(math.Ceil(float64(base)*c.DownStepPercent/100)))
		if want < limit {
			d.Reasons = append(d.Reasons, fmt.Sprintf("step limit: at least %d within %v (from %d)", limit, c.StepPeriod, base))
			want = min(limit, cur)
		}
	}
	if want < c.Min {
		d.Reasons = append(d.Reasons, fmt.Sprintf("bounded by scale-min %d", c.Min))
		want = c.Min
	}
	if c.Max > 0 && want > c.Max {
		d.Reasons = append(d.Reasons, fmt.Sprintf("bounded by scale-max %d", c.Max))
		want = c.Max
	}
	d.Desired = want
	switch {
	case want > cur:
		d.Action = ActionUp
	case want < cur:
		d.Action = ActionDown
	default:
		d.Action = ActionNone
	}
	if d.Action != ActionNone && d.DryRun {
		d.Reasons = append(d.Reasons, "dry-run: not applied")
	}
	return d
}

// baseAt is the count at the start of the step period: the From of the
// oldest action inside it, or cur if none.
func (p *Policy) baseAt(now time.Time, cur int) int {
	start := now.Add(-p.cfg.StepPeriod)
	for _, a := range p.actions {
		if a.Time.After(start) {
			return a.From
		}
	}
	return cur
}

// ResetWindows forgets the recommendations the windows hold (and the
// thresholds' "since"), keeping the actions, so cooldowns and step limits
// still count from them. The agent calls it when this node starts acting:
// recommendations computed while it did not act were made against another
// count and must not satisfy a window at once.
func (p *Policy) ResetWindows() { p.reset() }

func (p *Policy) reset() {
	p.recs = p.recs[:0]
	p.series = p.series[:0]
	p.readies = p.readies[:0]
	for i := range p.since {
		p.since[i] = time.Time{}
	}
}

func (p *Policy) prune(now time.Time) {
	keep := max(p.cfg.UpWindow, p.cfg.DownWindow)
	// Keep the newest record at or before the window start.
	cut := 0
	for i := 0; i+1 < len(p.recs) && !p.recs[i+1].t.After(now.Add(-keep)); i++ {
		cut = i + 1
	}
	if cut > 0 {
		p.recs = append(p.recs[:0], p.recs[cut:]...)
	}
	// Collapse runs of equal recommendations: the windows only need changes.
	if n := len(p.recs); n >= 3 && p.recs[n-1].n == p.recs[n-2].n && p.recs[n-2].n == p.recs[n-3].n {
		p.recs[n-2] = p.recs[n-1]
		p.recs = p.recs[:n-1]
	}
	horizon := max(p.cfg.StepPeriod, p.cfg.UpCooldown, p.cfg.DownCooldown, p.BootEstimate())
	for len(p.actions) > 1 && now.Sub(p.actions[0].Time) > horizon {
		p.actions = p.actions[1:]
	}
}
