package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/mesh"
)

func joinCommand() *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "ask the local agent to join members at these addresses",
		ArgsUsage: "ADDR [ADDR...]",
		Flags:     clientFlags(false),
		Action: func(c *cli.Context) error {
			if c.Args().Len() == 0 {
				return usagef("join needs at least one address")
			}
			ctx, cancel := context.WithTimeout(c.Context, clientTimeout(c, 30*time.Second))
			defer cancel()
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			n, err := api.Join(ctx, c.Args().Slice())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "joined: %d reached\n", n)
			return nil
		},
	}
}

func leaveCommand() *cli.Command {
	return &cli.Command{
		Name:  "leave",
		Usage: "make the local agent leave the mesh gracefully and stop",
		Flags: clientFlags(false),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, clientTimeout(c, 30*time.Second))
			defer cancel()
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			if err := api.Leave(ctx); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, "leaving")
			return nil
		},
	}
}

func forceLeaveCommand() *cli.Command {
	return &cli.Command{
		Name:      "force-leave",
		Usage:     "mark a failed member as left",
		ArgsUsage: "NODE",
		Flags:     append(clientFlags(false), &cli.BoolFlag{Name: "prune", Usage: "forget the member at once"}),
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return usagef("force-leave needs exactly one node name")
			}
			ctx, cancel := ctxOf(c)
			defer cancel()
			api, err := apiClient(c)
			if err != nil {
				return err
			}
			if err := api.ForceLeave(ctx, c.Args().First(), c.Bool("prune")); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s marked as left\n", c.Args().First())
			return nil
		},
	}
}

func keygenCommand() *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "print a new 32-byte gossip encryption key (base64)",
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			k := make([]byte, 32)
			if _, err := rand.Read(k); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, base64.StdEncoding.EncodeToString(k))
			return nil
		},
	}
}

func keysCommand() *cli.Command {
	keyOp := func(op, usage string) *cli.Command {
		return &cli.Command{
			Name:      op,
			Usage:     usage,
			ArgsUsage: "KEY",
			Flags:     clientFlags(true),
			Action: func(c *cli.Context) error {
				if c.Args().Len() != 1 {
					return usagef("keys %s needs exactly one base64 key, after any flags: shoal keys %s [--http-addr ADDR] KEY", op, op)
				}
				if _, err := mesh.ParseKey(c.Args().First()); err != nil {
					return usageError{err}
				}
				return runKeys(c, op, c.Args().First())
			},
		}
	}
	return &cli.Command{
		Name:  "keys",
		Usage: "rotate gossip keys across the live mesh",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list the keys installed on every member", Flags: clientFlags(true), Action: func(c *cli.Context) error {
				if err := noArgs(c); err != nil {
					return err
				}
				return runKeys(c, "list", "")
			}},
			keyOp("install", "install a new key on every member"),
			keyOp("use", "make an installed key the primary on every member"),
			keyOp("remove", "remove a key from every member"),
		},
	}
}

func runKeys(c *cli.Context, op, key string) error {
	asJSON, err := wantJSON(c)
	if err != nil {
		return err
	}
	ctx, cancel := ctxOf(c)
	defer cancel()
	api, err := apiClient(c)
	if err != nil {
		return err
	}
	resp, err := api.Keys(ctx, op, key)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(c.App.Writer, resp)
	}
	if op != "list" {
		fmt.Fprintf(c.App.Writer, "%s: done on %d of %d members\n", op, resp.NumResp-resp.NumErr, resp.NumNodes)
		return nil
	}
	tw := table(c.App.Writer)
	row(tw, "KEY", "MEMBERS", "PRIMARY ON")
	for k, n := range resp.Keys {
		row(tw, k, fmt.Sprintf("%d/%d", n, resp.NumNodes), resp.PrimaryKeys[k])
	}
	return tw.Flush()
}
