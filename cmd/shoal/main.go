// Command shoal is the Shoal agent and the CLI that asks a local agent about
// the mesh. Exit codes: 0 ok, 1 error, 2 usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"unicode/utf8"

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
	msg := err.Error()
	if strings.Contains(msg, "invalid value") && strings.HasSuffix(msg, "parse error") {
		// urfave/cli's words for "--retry-interval 5" and "--retry-max x".
		msg += " (want a whole number, or a duration with a unit: 500ms, 5s, 1m)"
	}
	fmt.Fprintf(stderr, "shoal: %s\n", oneLine(msg, maxErrorLen))
	var ue usageError
	if errors.As(err, &ue) || isCLIUsage(err) {
		return 2
	}
	return 1
}

// maxErrorLen bounds what one error prints: a cause chain fits, a 10 KB
// value echoed back does not.
const maxErrorLen = 600

// oneLine folds a multi-line error (hashicorp/go-multierror's "1 error
// occurred:\n\t* cause" and the like) into one readable line that keeps every
// cause, and cuts it to max bytes, saying how much was cut.
func oneLine(msg string, max int) string {
	var parts []string
	for _, ln := range strings.Split(msg, "\n") {
		ln = strings.TrimSpace(ln)
		ln = strings.TrimSpace(strings.TrimPrefix(ln, "* "))
		if ln == "" {
			continue
		}
		parts = append(parts, ln)
	}
	out := strings.Join(parts, " ")
	// multierror's header says how many causes follow; the causes say it better.
	out = multiHeader.ReplaceAllString(out, "")
	if len(out) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = fmt.Sprintf("%s... (%d more bytes)", out[:cut], len(out)-cut)
	}
	return out
}

var multiHeader = regexp.MustCompile(`\b\d+ errors? occurred:\s*`)

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
