package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/client"
)

func leaderCommand() *cli.Command {
	return &cli.Command{
		Name:  "leader",
		Usage: "show the mesh's coordinator as the local agent sees it",
		Flags: append(clientFlags(true),
			&cli.BoolFlag{Name: "elect", Usage: "ask for an election if no coordinator is known, and wait for one"},
			&cli.DurationFlag{Name: "wait", Value: 15 * time.Second, Usage: "with --elect: how long to wait for a coordinator"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			asJSON, err := wantJSON(c)
			if err != nil {
				return err
			}
			if c.Duration("wait") <= 0 {
				return usagef("--wait %v: want a positive duration", c.Duration("wait"))
			}
			ctx, cancel := ctxOf(c)
			defer cancel()
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			var l client.Leader
			if c.Bool("elect") {
				if l, err = api.Elect(ctx); err != nil {
					return err
				}
				deadline := time.Now().Add(c.Duration("wait"))
				for l.Coordinator == "" {
					if time.Now().After(deadline) {
						return fmt.Errorf("no coordinator named within %v (quorum seen %d of %d needed; electing: %v)",
							c.Duration("wait"), l.QuorumSeen, l.QuorumNeeded, l.Electing)
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(100 * time.Millisecond): // poll interval
					}
					if l, err = api.Leader(ctx); err != nil {
						return err
					}
				}
			} else if l, err = api.Leader(ctx); err != nil {
				return err
			}
			if asJSON {
				return printJSON(c.App.Writer, l)
			}
			return printLeader(c, l)
		},
	}
}

func printLeader(c *cli.Context, l client.Leader) error {
	tw := table(c.App.Writer)
	coord := l.Coordinator
	if coord == "" {
		coord = "(none known; 'shoal leader --elect' asks for one)"
	}
	row(tw, "coordinator", coord)
	if l.Coordinator != "" {
		row(tw, "term", l.Term)
		row(tw, "priority", l.Priority)
		since := l.Since
		if t, err := time.Parse(time.RFC3339, l.Since); err == nil {
			since = fmt.Sprintf("%s (%s ago)", l.Since, time.Since(t).Round(time.Second))
		}
		row(tw, "since", since)
	}
	self := "no"
	switch {
	case l.Acting:
		self = "yes, acting (lease until " + l.LeaseUntil + ")"
	case l.Holding:
		self = "yes, waiting for a quorum to grant its lease"
	case l.IsSelf:
		self = "yes, not acting yet"
	}
	row(tw, "this node ("+l.Node+")", self)
	q := fmt.Sprintf("%d seen of %d needed", l.QuorumSeen, l.QuorumNeeded)
	if l.QuorumSeen < l.QuorumNeeded {
		q += " (NO QUORUM: no coordinator acts on this side)"
	}
	row(tw, "quorum", q)
	row(tw, "electing", l.Electing)
	return errors.Join(tw.Flush())
}
