package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/loadshare"
)

func pickCommand() *cli.Command {
	flags := clientFlags(false)
	flags = append(flags,
		&cli.StringFlag{Name: "service", Usage: "pick among members tagged service=NAME (address: their port tag)"},
		&cli.IntFlag{Name: "n", Value: 1, Usage: fmt.Sprintf("how many distinct members, 1–%d", agent.MaxPickN)},
		&cli.StringFlag{Name: "strategy", Usage: "picker: " + strings.Join(loadshare.Strategies(), ", ") + " (default " + loadshare.Default + ")"},
		&cli.StringSliceFlag{Name: "tag", Usage: "only members with this tag, key=value (repeatable)"},
		&cli.StringFlag{Name: "format", Value: "table", Usage: "output format: table, json, or addr (addresses only, one a line)"},
	)
	return &cli.Command{
		Name:      "pick",
		Usage:     "pick where a piece of work should go, by gossiped load",
		UsageText: "shoal pick --service web [--n 2] [--strategy p2c] [--tag region=eu] [--format table|json|addr]",
		Flags:     flags,
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			format := c.String("format")
			switch format {
			case "table", "json", "addr":
			default:
				return usagef("--format %q: use table, json or addr", format)
			}
			req := client.PickRequest{Service: c.String("service"), N: c.Int("n"), Strategy: c.String("strategy"), Tags: map[string]string{}}
			if req.N < 1 || req.N > agent.MaxPickN {
				return usagef("--n %d: want a whole number from 1 to %d", req.N, agent.MaxPickN)
			}
			if req.Strategy != "" && !slices.Contains(loadshare.Strategies(), req.Strategy) {
				return usagef("--strategy %q is unknown; valid strategies are %s", req.Strategy, strings.Join(loadshare.Strategies(), ", "))
			}
			for _, t := range c.StringSlice("tag") {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return usagef("--tag %q: want key=value", t)
				}
				req.Tags[k] = v
			}
			ctx, cancel := ctxOf(c)
			defer cancel()
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			picked, err := api.Pick(ctx, req)
			if err != nil {
				return err
			}
			if len(picked) < req.N {
				fmt.Fprintf(c.App.ErrWriter, "shoal: asked for %d members, only %d eligible\n", req.N, len(picked))
			}
			switch format {
			case "json":
				return printJSON(c.App.Writer, picked)
			case "addr":
				for _, p := range picked {
					fmt.Fprintln(c.App.Writer, p.Addr)
				}
				return nil
			}
			tw := table(c.App.Writer)
			row(tw, "NAME", "ADDRESS", "WEIGHT", "LOAD", "CAPACITY", "AGE")
			for _, p := range picked {
				name := p.Name
				if p.Self {
					name += "*"
				}
				row(tw, name, p.Addr, fmt.Sprintf("%.2f", p.Weight), fmt.Sprintf("%.0f%%", 100*p.Load), fmt.Sprintf("%.2f", p.Capacity), fmtAge(p.LoadAgeSeconds))
			}
			return tw.Flush()
		},
	}
}
