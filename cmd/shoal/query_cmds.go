package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

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
		Usage: "the mesh's load; shares of picks, uptime and availability beside P=N/n, A=1-1/n",
		Description: "The load table, busiest first, with the aggregate. PICK% and PROXY% are each member's share of the picks " +
			"this agent answered and of the requests its proxy forwarded, within the member's service; UP% is the " +
			"fraction of the time since this agent first saw the member alive that it was alive. The footer puts the model " +
			"of n interchangeable nodes (each takes P=N/n of N requests, availability A=1-1/n) for the current n " +
			"beside what was measured: per service, the fraction of the time at least one member was healthy " +
			"(alive, numeric port tag, load at most 30s old), over the agent's lifetime and the recent window.",
		Flags: clientFlags(true),
		Action: queryAction((*client.Client).Load, func(c *cli.Context, rep client.LoadReport) error {
			tw := table(c.App.Writer)
			row(tw, "NAME", "STATUS", "CPU", "MEM", "CORES", "LOAD1", "NET IN", "NET OUT", "AGE", "PICK%", "PROXY%", "UP%")
			for _, m := range rep.Members {
				pick, proxy, up := "-", "-", "-"
				if s := m.Share; s != nil {
					pick, proxy, up = fmtShare(s.PickShare), fmtShare(s.ProxyShare), fmtShare(s.Uptime)
				}
				if m.Load == nil {
					row(tw, m.Name, m.Status, "-", "-", "-", "-", "-", "-", "-", pick, proxy, up)
					continue
				}
				l := m.Load
				row(tw, m.Name, m.Status, fmt.Sprintf("%.1f%%", l.CPUPercent), fmt.Sprintf("%.1f%%", l.MemPercent),
					fmt.Sprintf("%.2f", l.Cores), fmt.Sprintf("%.2f", l.Load1), fmtRate(l.NetRxBps), fmtRate(l.NetTxBps), fmtAge(m.LoadAgeSeconds),
					pick, proxy, up)
			}
			ag := rep.Aggregate
			row(tw, "")
			row(tw, fmt.Sprintf("aggregate over %d", ag.Members), "", fmt.Sprintf("%.1f%%", ag.CPUMean), fmt.Sprintf("%.1f%%", ag.MemMean),
				fmt.Sprintf("%.2f", ag.Cores), "", fmtRate(ag.NetRxBps), fmtRate(ag.NetTxBps), fmtAge(ag.MaxAgeSecs))
			if err := tw.Flush(); err != nil {
				return err
			}
			if rep.Measured != nil {
				fmt.Fprintln(c.App.Writer)
				for _, l := range measuredLines(rep.Measured) {
					fmt.Fprintln(c.App.Writer, l)
				}
			}
			return nil
		}),
	}
}

// fmtShare prints a fraction as a percentage; "-" for a negative one
// (nothing measured yet).
func fmtShare(f float64) string {
	if f < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*f)
}

// fmtRange prints the least and greatest share of n requests ("-" without
// any).
func fmtRange(lo, hi float64, n uint64) string {
	switch {
	case n == 0 || lo < 0:
		return "-"
	case fmt.Sprintf("%.1f", 100*lo) == fmt.Sprintf("%.1f", 100*hi):
		return fmt.Sprintf("%s of %d", fmtShare(lo), n)
	}
	return fmt.Sprintf("%.1f-%s of %d", 100*lo, fmtShare(hi), n)
}

// fmtWindow prints a window length in seconds as 5m, 90s, 1h.
func fmtWindow(sec float64) string {
	d := time.Duration(sec * float64(time.Second)).Round(time.Second)
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// modelText is the model's figures for n: "P=N/5 (20.0% each), A=1-1/5=0.80".
func modelText(n int, share, avail float64) string {
	if n == 0 {
		return "no alive member, the model has nothing to say"
	}
	return fmt.Sprintf("model P=N/%d (%s each), A=1-1/%d=%.2f", n, fmtShare(share), n, avail)
}

// measuredLines is the footer of 'shoal load': the model's figures for the
// current n beside what the agent measured, for the mesh and per service.
func measuredLines(m *client.Measured) []string {
	w := fmtWindow(m.RecentSeconds)
	mesh := fmt.Sprintf("n=%d: %s; measured: uptime %s mean (last %s %s), available %s (last %s %s), %d picks, %d proxied",
		m.N, modelText(m.N, m.ModelShare, m.ModelAvailability), fmtShare(m.UptimeMean), w, fmtShare(m.UptimeRecentMean),
		fmtShare(m.Availability), w, fmtShare(m.AvailabilityRecent), m.Picks, m.ProxyRequests)
	out := []string{mesh}
	for _, s := range m.Services {
		name := "service " + s.Service
		var avail string
		if s.Service == "" {
			name = "no service"
		} else {
			avail = fmt.Sprintf("available %s (last %s %s), %d healthy, ", fmtShare(s.Availability), w, fmtShare(s.AvailabilityRecent), s.Healthy)
		}
		out = append(out, fmt.Sprintf("%s, n=%d: %s; measured: %spicks %s, proxied %s", name, s.N,
			modelText(s.N, s.ModelShare, s.ModelAvailability), avail,
			fmtRange(s.PickShareMin, s.PickShareMax, s.Picks), fmtRange(s.ProxyShareMin, s.ProxyShareMax, s.ProxyRequests)))
	}
	return out
}
