// Command shoal is the Shoal agent and the CLI that asks a local agent about
// the mesh. Exit codes: 0 ok, 1 error, 2 usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
)

func main() { os.Exit(run(os.Args, os.Stdout, os.Stderr)) }

// usageError marks a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return 0
	}
	msg := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	fmt.Fprintf(stderr, "shoal: %s\n", msg)
	var ue usageError
	if errors.As(err, &ue) || isCLIUsage(err) {
		return 2
	}
	return 1
}

// isCLIUsage recognises urfave/cli's own usage errors (unknown flag or
// command, missing value).
func isCLIUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"flag provided but not defined", "flag needs an argument", "invalid value", "No help topic", "Required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:            "shoal",
		Usage:           "a gossip-based peer-to-peer agent mesh",
		Version:         agent.Version,
		Writer:          stdout,
		ErrWriter:       stderr,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {},
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
		CommandNotFound: func(c *cli.Context, name string) {},
		Commands: []*cli.Command{
			agentCommand(),
			devCommand(),
			membersCommand(),
			infoCommand(),
			leaderCommand(),
			loadCommand(),
			topCommand(),
			pickCommand(),
			scaleCommand(),
			joinCommand(),
			leaveCommand(),
			forceLeaveCommand(),
			keygenCommand(),
			keysCommand(),
			monitorCommand(),
			versionCommand(),
		},
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				return usagef("unknown command %q; see 'shoal --help'", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = func(_ *cli.Context, err error, _ bool) error { return usageError{err} }
	}
	return app
}
