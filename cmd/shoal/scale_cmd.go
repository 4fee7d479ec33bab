package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/client"
)

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
