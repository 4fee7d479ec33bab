package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/client"
)

// scaleFlags are the agent's --scale-* flags (and --enable-debug).
func scaleFlags() []cli.Flag {
	d := agent.DefaultScaleConfig()
	return []cli.Flag{
		&cli.StringFlag{Name: "scale-provider", EnvVars: env("SCALE_PROVIDER"), Usage: "autoscaling provider: dry-run, webhook, exec, aws, kubernetes (empty: off)"},
		&cli.StringFlag{Name: "scale-resource", EnvVars: env("SCALE_RESOURCE"), Usage: "what the provider scales: webhook URL, command, Auto Scaling group, [namespace/]deployment/NAME"},
		&cli.StringSliceFlag{Name: "scale-opt", EnvVars: env("SCALE_OPTS"), Usage: "provider option key=value (repeatable), e.g. secret=..., timeout=10s, region=eu-west-1"},
		&cli.StringFlag{Name: "scale-metric", EnvVars: env("SCALE_METRIC"), Value: d.Metric, Usage: "watched metric: cpu, mem, net or tag:NAME, with :mean, :max, :min or :pNN"},
		&cli.Float64Flag{Name: "scale-target", EnvVars: env("SCALE_TARGET"), Value: d.Target, Usage: "target value of the metric per instance (HPA rule)"},
		&cli.Float64Flag{Name: "scale-tolerance", EnvVars: env("SCALE_TOLERANCE"), Value: d.Tolerance, Usage: "relative band around the target with no change (0.1 = ±10%)"},
		&cli.IntFlag{Name: "scale-min", EnvVars: env("SCALE_MIN"), Value: d.Min, Usage: "fewest instances"},
		&cli.IntFlag{Name: "scale-max", EnvVars: env("SCALE_MAX"), Value: d.Max, Usage: "most instances (0: unbounded)"},
		&cli.DurationFlag{Name: "scale-up-window", EnvVars: env("SCALE_UP_WINDOW"), Value: time.Duration(d.UpWindow), Usage: "a higher recommendation must hold this long"},
		&cli.DurationFlag{Name: "scale-down-window", EnvVars: env("SCALE_DOWN_WINDOW"), Value: time.Duration(d.DownWindow), Usage: "scale-down stabilization window"},
		&cli.DurationFlag{Name: "scale-up-cooldown", EnvVars: env("SCALE_UP_COOLDOWN"), Value: time.Duration(d.UpCooldown), Usage: "wait after any action before scaling up"},
		&cli.DurationFlag{Name: "scale-down-cooldown", EnvVars: env("SCALE_DOWN_COOLDOWN"), Value: time.Duration(d.DownCooldown), Usage: "wait after any action before scaling down"},
		&cli.IntFlag{Name: "scale-up-step", EnvVars: env("SCALE_UP_STEP"), Value: d.UpStep, Usage: "most instances added per step period (with --scale-up-step-percent, the larger wins)"},
		&cli.Float64Flag{Name: "scale-up-step-percent", EnvVars: env("SCALE_UP_STEP_PERCENT"), Value: d.UpStepPercent, Usage: "most instances added per step period, in percent"},
		&cli.IntFlag{Name: "scale-down-step", EnvVars: env("SCALE_DOWN_STEP"), Value: d.DownStep, Usage: "most instances removed per step period"},
		&cli.Float64Flag{Name: "scale-down-step-percent", EnvVars: env("SCALE_DOWN_STEP_PERCENT"), Value: d.DownStepPercent, Usage: "most instances removed per step period, in percent"},
		&cli.DurationFlag{Name: "scale-step-period", EnvVars: env("SCALE_STEP_PERIOD"), Value: time.Duration(d.StepPeriod), Usage: "period of the step limits"},
		&cli.StringSliceFlag{Name: "scale-threshold", EnvVars: env("SCALE_THRESHOLDS"), Usage: "thresholds mode rule, e.g. 'above 75% for 30s -> +1' (repeatable; replaces the HPA rule)"},
		&cli.BoolFlag{Name: "scale-dry-run", EnvVars: env("SCALE_DRY_RUN"), Usage: "evaluate and record decisions, call no provider"},
		&cli.DurationFlag{Name: "scale-interval", EnvVars: env("SCALE_INTERVAL"), Value: time.Duration(d.Interval), Usage: "how often the policy is evaluated"},
		&cli.BoolFlag{Name: "enable-debug", EnvVars: env("ENABLE_DEBUG"), Usage: "serve test hooks (POST /v1/debug/load sets a synthetic load) and Go's profiler at /debug/pprof/"},
	}
}

// applyScaleFlags copies the --scale-* flags that were set into cfg.
func applyScaleFlags(c *cli.Context, cfg *agent.Config) error {
	s := &cfg.Scale
	set := c.IsSet
	strs := map[string]*string{"scale-provider": &s.Provider, "scale-resource": &s.Resource, "scale-metric": &s.Metric}
	for name, p := range strs {
		if set(name) {
			*p = c.String(name)
		}
	}
	floats := map[string]*float64{"scale-target": &s.Target, "scale-tolerance": &s.Tolerance,
		"scale-up-step-percent": &s.UpStepPercent, "scale-down-step-percent": &s.DownStepPercent}
	for name, p := range floats {
		if set(name) {
			*p = c.Float64(name)
		}
	}
	ints := map[string]*int{"scale-min": &s.Min, "scale-max": &s.Max, "scale-up-step": &s.UpStep, "scale-down-step": &s.DownStep}
	for name, p := range ints {
		if set(name) {
			*p = c.Int(name)
		}
	}
	durs := map[string]*agent.Duration{"scale-up-window": &s.UpWindow, "scale-down-window": &s.DownWindow,
		"scale-up-cooldown": &s.UpCooldown, "scale-down-cooldown": &s.DownCooldown, "scale-step-period": &s.StepPeriod,
		"scale-interval": &s.Interval}
	for name, p := range durs {
		if set(name) {
			*p = agent.Duration(c.Duration(name))
		}
	}
	if set("scale-opt") {
		if s.Options == nil {
			s.Options = map[string]string{}
		}
		for _, kv := range c.StringSlice("scale-opt") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("%w: scale-opt %q: want key=value", agent.ErrConfig, kv)
			}
			s.Options[k] = v
		}
	}
	if set("scale-threshold") {
		s.Thresholds = c.StringSlice("scale-threshold")
	}
	if set("scale-dry-run") {
		s.DryRun = c.Bool("scale-dry-run")
	}
	if set("enable-debug") {
		cfg.EnableDebug = c.Bool("enable-debug")
	}
	return nil
}

func scaleCommand() *cli.Command {
	return &cli.Command{
		Name:  "scale",
		Usage: "autoscaling: the policy's view and the decision history",
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "the last evaluation: metric, current and desired count, coordinator, last decision",
				Flags:  clientFlags(true),
				Action: queryAction((*client.Client).ScaleStatus, printScaleStatus),
			},
			{
				Name:  "history",
				Usage: "decisions, applied or refused and why, oldest first",
				Flags: append(clientFlags(true), &cli.IntFlag{Name: "limit", Value: 20, Usage: "the latest N records (0: all the agent keeps)"}),
				Action: func(c *cli.Context) error {
					if err := noArgs(c); err != nil {
						return err
					}
					asJSON, err := wantJSON(c)
					if err != nil {
						return err
					}
					if c.Int("limit") < 0 {
						return usagef("--limit %d: want a count ≥ 0", c.Int("limit"))
					}
					ctx, cancel := ctxOf(c)
					defer cancel()
					api, err := apiClient(c)
					if err != nil {
						return err
					}
					recs, err := api.ScaleHistory(ctx, c.Int("limit"))
					if err != nil {
						return err
					}
					if asJSON {
						return printJSON(c.App.Writer, recs)
					}
					return printScaleHistory(c, recs)
				},
			},
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usagef("unknown scale command %q: use status or history", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
	}
}

func printScaleStatus(c *cli.Context, s client.ScaleStatus) error {
	tw := table(c.App.Writer)
	if !s.Enabled {
		row(tw, "scaling", "off on "+s.Node+" (start the agent with --scale-provider)")
		if s.LastDecision != nil {
			row(tw, "last decision", fmtRecord(*s.LastDecision))
		}
		return errors.Join(tw.Flush())
	}
	prov := s.Provider
	if s.Resource != "" {
		prov += " " + s.Resource
	}
	if s.DryRun {
		prov += " (dry-run)"
	}
	row(tw, "provider", prov)
	rule := fmt.Sprintf("%s target %v", s.Metric, s.Target)
	if s.Mode == "thresholds" {
		rule = s.Metric + ", thresholds"
	}
	row(tw, "policy", fmt.Sprintf("%s, bounds %d–%d", rule, s.Min, s.Max))
	val := "no load figures"
	if s.ValueValid {
		val = fmt.Sprintf("%.1f over %d members", s.Value, s.Members)
	}
	row(tw, "value", val)
	row(tw, "current", fmt.Sprintf("%d (from %s)", s.Current, s.CurrentSource))
	row(tw, "desired", fmt.Sprintf("%d (%s; recommendation %d)", s.Desired, s.Action, s.Recommendation))
	for i, r := range s.Reasons {
		label := ""
		if i == 0 {
			label = "why"
		}
		row(tw, label, r)
	}
	coord := s.Coordinator
	if coord == "" {
		coord = "(none known)"
	} else {
		coord = fmt.Sprintf("%s, term %d", coord, s.Term)
	}
	row(tw, "coordinator", coord)
	row(tw, "this node ("+s.Node+") acts", s.Acting)
	if s.LastDecision != nil {
		row(tw, "last decision", fmtRecord(*s.LastDecision))
	}
	if s.Error != "" {
		row(tw, "error", s.Error)
	}
	return errors.Join(tw.Flush())
}

func fmtRecord(r client.ScaleRecord) string {
	return fmt.Sprintf("%s %d→%d by %s (term %d) at %s", r.Outcome, r.Current, r.Desired, r.Holder, r.Term, r.DecidedAt)
}

func printScaleHistory(c *cli.Context, recs []client.ScaleRecord) error {
	tw := table(c.App.Writer)
	row(tw, "DECIDED", "OUTCOME", "FROM", "TO", "HOLDER", "TERM", "NODE", "WHY")
	for _, r := range recs {
		why := strings.Join(r.Reasons, "; ")
		if r.Error != "" {
			why = r.Error + " | " + why
		}
		row(tw, r.DecidedAt, r.Outcome, r.Current, r.Desired, r.Holder, r.Term, r.Node, why)
	}
	return errors.Join(tw.Flush())
}
