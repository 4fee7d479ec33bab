package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/client"
)

// clientFlags are shared by every command that asks an agent.
func clientFlags(withFormat bool) []cli.Flag {
	fs := []cli.Flag{
		&cli.StringFlag{Name: "http-addr", Value: "127.0.0.1:7950", EnvVars: []string{"SHOAL_HTTP_ADDR"}, Usage: "the agent's API address"},
		&cli.StringFlag{Name: "token", EnvVars: []string{"SHOAL_API_TOKEN"}, Usage: "the agent's API token (admin or read)"},
		&cli.StringFlag{Name: "ca", EnvVars: []string{"SHOAL_CA"}, Usage: "PEM file of the CA that signed the agent's certificate: speak HTTPS to an agent with --tls-cert"},
		&cli.StringFlag{Name: "cert", EnvVars: []string{"SHOAL_CERT"}, Usage: "client certificate (PEM) for an agent with --tls-client-ca"},
		&cli.StringFlag{Name: "key", EnvVars: []string{"SHOAL_KEY"}, Usage: "the client certificate's private key (PEM)"},
		&cli.DurationFlag{Name: "timeout", Value: defaultClientTimeout, EnvVars: []string{"SHOAL_CLIENT_TIMEOUT"},
			Usage: "give up on an agent that has not answered after this long (join and leave get at least 30s)",
			Action: func(_ *cli.Context, d time.Duration) error {
				if d <= 0 {
					return usagef("--timeout %v: use a positive duration such as 5s", d)
				}
				return nil
			}},
	}
	if withFormat {
		fs = append(fs, &cli.StringFlag{Name: "format", Value: "table", Usage: "output format: table or json"})
	}
	return fs
}

// apiClient is the client the flags describe: HTTPS when --ca, --cert or
// an https:// address says so.
func apiClient(c *cli.Context) (*client.Client, error) {
	tc, err := clientTLS(c)
	if err != nil {
		return nil, err
	}
	return client.NewTLS(c.String("http-addr"), c.String("token"), tc), nil
}

// clientTLS is the TLS config --ca, --cert and --key ask for (nil: none).
func clientTLS(c *cli.Context) (*tls.Config, error) {
	ca, cert, key := c.String("ca"), c.String("cert"), c.String("key")
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	if addr := c.String("http-addr"); strings.HasPrefix(strings.ToLower(addr), "http://") {
		return nil, usagef("--ca, --cert and --key speak TLS, but --http-addr %q says http://: use https:// or no scheme", addr)
	}
	tc, err := client.LoadTLS(ca, cert, key)
	if err != nil {
		return nil, usageError{err}
	}
	return tc, nil
}

// defaultClientTimeout is how long a client command waits for an agent: an
// agent on this host that has not answered in 5 s is stuck, not slow.
const defaultClientTimeout = 5 * time.Second

// ctxOf bounds one request to the agent by --timeout.
func ctxOf(c *cli.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Context, clientTimeout(c, 0))
}

// clientTimeout is --timeout, at least floor: join and leave wait on the
// mesh (a join tries each address in turn; a leave waits for its message
// to spread), so they keep a longer floor unless --timeout is longer still.
func clientTimeout(c *cli.Context, floor time.Duration) time.Duration {
	d := c.Duration("timeout")
	if d <= 0 {
		d = defaultClientTimeout
	}
	if d < floor {
		d = floor
	}
	return d
}

// format checks --format and reports whether JSON was asked for.
func wantJSON(c *cli.Context) (bool, error) {
	switch f := c.String("format"); f {
	case "json":
		return true, nil
	case "table", "":
		return false, nil
	default:
		return false, usagef("--format %q: use table or json", f)
	}
}

// queryAction is the shape of a query command: no arguments, one call to
// the agent, then JSON (--format json) or the table that show prints.
func queryAction[T any](fetch func(*client.Client, context.Context) (T, error), show func(*cli.Context, T) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		if err := noArgs(c); err != nil {
			return err
		}
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
		v, err := fetch(api, ctx)
		if err != nil {
			return err
		}
		if asJSON {
			return printJSON(c.App.Writer, v)
		}
		return show(c, v)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func row(tw io.Writer, cols ...any) {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(tw, strings.Join(parts, "\t"))
}

func fmtTags(t map[string]string) string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sortStrings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+t[k])
	}
	return strings.Join(parts, ",")
}

func fmtRate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.1fGB/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.1fMB/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1fkB/s", bps/1e3)
	}
	return fmt.Sprintf("%.0fB/s", bps)
}

func fmtAge(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fs", s)
}

func fmtPct(l *client.Load, f func(*client.Load) float64) string {
	if l == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", f(l))
}
