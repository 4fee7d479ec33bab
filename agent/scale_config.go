package agent

// The scale section of the agent's configuration.

import (
	"fmt"
	"time"

	"github.com/shoalmesh/shoal/scale"
)

// ScaleConfig is the scale section of Config: which provider, and the
// policy. Provider "" turns scaling off.
type ScaleConfig struct {
	// Provider is a registered provider: dry-run, webhook, exec, aws (and
	// kubernetes where built in). "" turns scaling off.
	Provider string `json:"provider"`
	// Resource is what the provider scales: a webhook URL, a command, an
	// Auto Scaling group, "[namespace/]deployment/NAME".
	Resource string `json:"resource"`
	// Options are provider settings (key=value), e.g. secret=..., timeout=10s.
	Options map[string]string `json:"options"`
	// Metric is what the policy watches: cpu, mem, net or tag:NAME, with
	// :mean (default), :max, :min or :pNN across alive members.
	Metric string `json:"metric"`
	// Target is the Metric's target value per instance (e.g. 70 for 70% CPU).
	Target float64 `json:"target"`
	// Tolerance is the band around Target inside which nothing changes
	// (0.1 is ±10%).
	Tolerance float64 `json:"tolerance"`
	// Min and Max bound the instance count (Max 0: unbounded).
	Min int `json:"min"`
	Max int `json:"max"`
	// UpWindow: the shortest window whose median demand must clear the band
	// to scale up (scale.Config.UpWindow); DownWindow: scale-down
	// stabilization (highest recommendation over it).
	UpWindow   Duration `json:"up_window"`
	DownWindow Duration `json:"down_window"`
	// UpCooldown and DownCooldown: the wait after any action before
	// scaling up, respectively down.
	UpCooldown   Duration `json:"up_cooldown"`
	DownCooldown Duration `json:"down_cooldown"`
	// Step limits per StepPeriod: the larger of a count and a percentage of
	// the count at the period's start.
	UpStep          int      `json:"up_step"`
	UpStepPercent   float64  `json:"up_step_percent"`
	DownStep        int      `json:"down_step"`
	DownStepPercent float64  `json:"down_step_percent"`
	StepPeriod      Duration `json:"step_period"`
	// Thresholds, when set, replace the HPA rule with fixed steps, e.g.
	// "above 75% for 30s -> +1", "below 20% for 5m -> -1".
	Thresholds []string `json:"thresholds"`
	// DryRun evaluates and records decisions but calls no provider.
	DryRun bool `json:"dry_run"`
	// Interval is how often the policy is evaluated.
	Interval Duration `json:"interval"`
	// BootTime is how long a new instance takes to serve, until the
	// provider's ready counts show it (scale.Config.BootTime); TrendWindow
	// (0: no trend) and Lookahead set the trend (scale.Config).
	BootTime    Duration `json:"boot_time"`
	TrendWindow Duration `json:"trend_window"`
	Lookahead   Duration `json:"lookahead"`
	// ProviderHelper is the path of the shoal-provider binary, which runs
	// the aws and kubernetes providers; empty: next to this executable,
	// then on $PATH (scale.ProviderConfig.Helper).
	ProviderHelper string `json:"provider_helper"`
}

// DefaultScaleConfig returns scale.DefaultConfig's policy, scaling off.
func DefaultScaleConfig() ScaleConfig {
	p := scale.DefaultConfig()
	return ScaleConfig{
		Metric: p.Metric, Target: p.Target, Tolerance: p.Tolerance, Min: p.Min, Max: p.Max,
		UpWindow: Duration(p.UpWindow), DownWindow: Duration(p.DownWindow),
		UpCooldown: Duration(p.UpCooldown), DownCooldown: Duration(p.DownCooldown),
		UpStep: p.UpStep, UpStepPercent: p.UpStepPercent, DownStep: p.DownStep, DownStepPercent: p.DownStepPercent,
		StepPeriod: Duration(p.StepPeriod), Interval: Duration(time.Second),
		BootTime: Duration(p.BootTime), TrendWindow: Duration(p.TrendWindow), Lookahead: Duration(p.Lookahead),
	}
}

// PolicyConfig turns the section into the policy's Config.
func (s ScaleConfig) PolicyConfig() (scale.Config, error) {
	c := scale.Config{
		Metric: s.Metric, Target: s.Target, Tolerance: s.Tolerance, Min: s.Min, Max: s.Max,
		UpWindow: time.Duration(s.UpWindow), DownWindow: time.Duration(s.DownWindow),
		UpCooldown: time.Duration(s.UpCooldown), DownCooldown: time.Duration(s.DownCooldown),
		UpStep: s.UpStep, UpStepPercent: s.UpStepPercent, DownStep: s.DownStep, DownStepPercent: s.DownStepPercent,
		StepPeriod: time.Duration(s.StepPeriod), Mode: scale.ModeTarget, DryRun: s.DryRun,
		BootTime: time.Duration(s.BootTime), TrendWindow: time.Duration(s.TrendWindow), Lookahead: time.Duration(s.Lookahead),
	}
	for _, t := range s.Thresholds {
		th, err := scale.ParseThreshold(t)
		if err != nil {
			return c, err
		}
		c.Thresholds = append(c.Thresholds, th)
		c.Mode = scale.ModeThresholds
	}
	return c, c.Validate()
}

// validate checks the section; called by Config.Validate.
func (s *ScaleConfig) validate() error {
	if s.Provider == "" {
		return nil
	}
	if !scale.Registered(s.Provider) {
		return fmt.Errorf("%w: scale-provider: %v", ErrConfig, scale.UnknownProviderError(s.Provider))
	}
	if _, err := s.PolicyConfig(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if s.Interval < Duration(10*time.Millisecond) {
		return fmt.Errorf("%w: scale-interval %v below 10ms", ErrConfig, time.Duration(s.Interval))
	}
	return nil
}
