package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/client"
)

func sortStrings(s []string) { sort.Strings(s) }

func noArgs(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usagef("%s takes no arguments, got %q", c.Command.Name, c.Args().First())
	}
	return nil
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list the mesh's members with their load",
		Flags: append(clientFlags(true),
			&cli.StringFlag{Name: "status", Usage: "only members with this status: alive, leaving, left, failed"},
			&cli.StringSliceFlag{Name: "tag", Usage: "only members with this tag, key=value (repeatable)"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			asJSON, err := wantJSON(c)
			if err != nil {
				return err
			}
			f := client.MemberFilter{Status: c.String("status"), Tags: map[string]string{}}
			switch f.Status {
			case "", "alive", "leaving", "left", "failed":
			default:
				return usagef("--status %q: use alive, leaving, left or failed", f.Status)
			}
			for _, t := range c.StringSlice("tag") {
				k, v, ok := strings.Cut(t, "=")
				if !ok || k == "" {
					return usagef("--tag %q: want key=value", t)
				}
				f.Tags[k] = v
			}
			ctx, cancel := ctxOf(c)
			defer cancel()
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			ms, err := api.Members(ctx, f)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.App.Writer, ms)
			}
			tw := table(c.App.Writer)
			// On the p2p profile a CONN column says how each member is
			// reached: direct, relayed or none.
			p2p := slices.ContainsFunc(ms, func(m client.Member) bool { return m.P2PConn != "" })
			head := []any{"NAME", "ADDRESS", "STATUS", "CPU", "MEM", "NET IN", "NET OUT", "AGE", "TAGS"}
			if p2p {
				head = slices.Insert(head, 3, "CONN")
			}
			row(tw, head...)
			for _, m := range ms {
				name := m.Name
				if m.Self {
					name += "*"
				}
				if m.Coordinator {
					name += " (coordinator)"
				}
				rx, tx := "-", "-"
				if m.Load != nil {
					rx, tx = fmtRate(m.Load.NetRxBps), fmtRate(m.Load.NetTxBps)
				}
				cells := []any{name, fmt.Sprintf("%s:%d", m.Addr, m.Port), m.Status,
					fmtPct(m.Load, func(l *client.Load) float64 { return l.CPUPercent }),
					fmtPct(m.Load, func(l *client.Load) float64 { return l.MemPercent }),
					rx, tx, fmtAge(m.LoadAgeSeconds), fmtTags(m.Tags)}
				if p2p {
					conn := m.P2PConn
					if m.Self {
						conn = "self"
					}
					cells = slices.Insert(cells, 3, any(conn))
				}
				row(tw, cells...)
			}
			return tw.Flush()
		},
	}
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "describe the local agent",
		Flags: clientFlags(true),
		Action: queryAction((*client.Client).Info, func(c *cli.Context, in client.Info) error {
			tw := table(c.App.Writer)
			row(tw, "node", in.Node)
			row(tw, "version", in.Version)
			row(tw, "profile", in.Profile)
			row(tw, "gossip", in.Gossip)
			row(tw, "http", in.HTTP)
			row(tw, "uptime", fmt.Sprintf("%.0fs", in.UptimeSeconds))
			row(tw, "encrypted", in.Encrypted)
			row(tw, "tags", fmtTags(in.Tags))
			if in.Load != nil {
				row(tw, "cpu", fmt.Sprintf("%.1f%% of %.2f cores", in.Load.CPUPercent, in.Load.Cores))
				row(tw, "memory", fmt.Sprintf("%.1f%%", in.Load.MemPercent))
				row(tw, "network", fmt.Sprintf("in %s, out %s", fmtRate(in.Load.NetRxBps), fmtRate(in.Load.NetTxBps)))
				row(tw, "load1", fmt.Sprintf("%.2f", in.Load.Load1))
			}
			row(tw, "members", fmt.Sprintf("alive %d, failed %d, left %d", in.Members["alive"], in.Members["failed"], in.Members["left"]))
			row(tw, "gossip traffic", fmt.Sprintf("in %d B, out %d B, dropped %d packets", in.Traffic.BytesIn, in.Traffic.BytesOut, in.Traffic.Dropped))
			if p := in.P2P; p != nil {
				for _, a := range p.Addrs {
					row(tw, "p2p address", a)
				}
				for _, r := range p.Relays {
					limit := "no circuit limit"
					if r.CircuitLimitSeconds > 0 || r.CircuitLimitBytes > 0 {
						limit = fmt.Sprintf("circuits cut after %.0fs or %d bytes", r.CircuitLimitSeconds, r.CircuitLimitBytes)
					}
					row(tw, "p2p relay slot", fmt.Sprintf("%s until %s, %s", r.Relay, r.Expires, limit))
				}
				row(tw, "p2p packets", fmt.Sprintf("direct %d, relayed %d (hole punches %d, direct %d, retries %d; upgrades %d)", p.PacketsDirect, p.PacketsRelayed, p.HolePunches, p.HolePunchesDirect, p.PunchRetries, p.Upgrades))
				row(tw, "p2p refused", fmt.Sprintf("wrong key %d, gater %d; dial failures %d, bootstrap failures %d, queue drops %d", p.RefusedKey, p.RefusedGater, p.DialFailures, p.BootstrapFailures, p.QueueDrops))
			}
			return tw.Flush()
		}),
	}
}

func loadCommand() *cli.Command {
	return &cli.Command{
		Name:  "load",
		Usage: "the mesh's load, busiest first, with the aggregate",
		Flags: clientFlags(true),
		Action: queryAction((*client.Client).Load, func(c *cli.Context, rep client.LoadReport) error {
			tw := table(c.App.Writer)
			row(tw, "NAME", "STATUS", "CPU", "MEM", "CORES", "LOAD1", "NET IN", "NET OUT", "AGE")
			for _, m := range rep.Members {
				if m.Load == nil {
					row(tw, m.Name, m.Status, "-", "-", "-", "-", "-", "-", "-")
					continue
				}
				l := m.Load
				row(tw, m.Name, m.Status, fmt.Sprintf("%.1f%%", l.CPUPercent), fmt.Sprintf("%.1f%%", l.MemPercent),
					fmt.Sprintf("%.2f", l.Cores), fmt.Sprintf("%.2f", l.Load1), fmtRate(l.NetRxBps), fmtRate(l.NetTxBps), fmtAge(m.LoadAgeSeconds))
			}
			ag := rep.Aggregate
			row(tw, "")
			row(tw, fmt.Sprintf("aggregate over %d", ag.Members), "", fmt.Sprintf("%.1f%%", ag.CPUMean), fmt.Sprintf("%.1f%%", ag.MemMean),
				fmt.Sprintf("%.2f", ag.Cores), "", fmtRate(ag.NetRxBps), fmtRate(ag.NetTxBps), fmtAge(ag.MaxAgeSecs))
			return tw.Flush()
		}),
	}
}
