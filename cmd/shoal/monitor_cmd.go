package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/client"
)

func monitorCommand() *cli.Command {
	return &cli.Command{
		Name:  "monitor",
		Usage: "stream the agent's log and the mesh's events (Ctrl-C stops)",
		Description: "Streams from the agent's GET /v1/monitor. --level may be lower than the agent's own log level: " +
			"the agent then sends debug records to this stream without writing them to its log. A client that " +
			"cannot keep up loses entries (the agent never waits for it); it says so on stderr.",
		Flags: append(clientFlags(true),
			&cli.StringFlag{Name: "level", Value: "info", Usage: "lowest log level to stream: debug, info, warn or error"},
			&cli.BoolFlag{Name: "logs", Value: true, Usage: "stream log records (--logs=false: events only)"},
			&cli.BoolFlag{Name: "events", Value: true, Usage: "stream mesh events (--events=false: log only)"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			asJSON, err := wantJSON(c)
			if err != nil {
				return err
			}
			if _, err := agent.ParseLevel(c.String("level")); err != nil {
				return usagef("--level: %v", err)
			}
			if !c.Bool("logs") && !c.Bool("events") {
				return usagef("--logs=false and --events=false leave nothing to stream")
			}
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			q := url.Values{"level": {c.String("level")}, "logs": {fmt.Sprint(c.Bool("logs"))}, "events": {fmt.Sprint(c.Bool("events"))}}
			tc, err := clientTLS(c) // output.go
			if err != nil {
				return err
			}
			base := client.BaseURL(c.String("http-addr"), tc != nil)
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v1/monitor?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			if tok := c.String("token"); tok != "" {
				req.Header.Set("Authorization", "Bearer "+tok)
			}
			req.Header.Set("Accept", "text/event-stream")
			// --timeout bounds the answer's headers; the stream itself runs
			// until Ctrl-C, watched by the agent's keep-alives below.
			tr := client.Transport(tc).(*http.Transport).Clone()
			tr.ResponseHeaderTimeout = clientTimeout(c, 0)
			hc := &http.Client{Transport: tr}
			resp, err := hc.Do(req)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("cannot reach the agent at %s (is 'shoal agent' running? set --http-addr or SHOAL_HTTP_ADDR): %w", base, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				var eb struct{ Error string }
				if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
					return fmt.Errorf("agent answered %d: %s", resp.StatusCode, eb.Error)
				}
				return fmt.Errorf("agent answered %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
			}
			// The agent sends a keep-alive every 15 s: two missed mean it
			// is stuck or the path is gone.
			var stalled atomic.Bool
			silent := time.AfterFunc(monitorSilence, func() { stalled.Store(true); resp.Body.Close() })
			defer silent.Stop()
			err = readSSEComments(resp.Body, func(event, data string) error {
				silent.Reset(monitorSilence)
				return printMonitorEntry(c.App.Writer, c.App.ErrWriter, event, data, asJSON)
			}, func(comment string) {
				silent.Reset(monitorSilence)
				printMonitorComment(c.App.ErrWriter, comment, time.Now())
			})
			if ctx.Err() != nil {
				return nil // Ctrl-C
			}
			if stalled.Load() {
				return fmt.Errorf("no keep-alive from the agent at %s for %v: the stream is stalled", base, monitorSilence)
			}
			if err == nil {
				err = errStreamEnded
			}
			return err
		},
	}
}

// monitorSilence is how long monitor waits for any line from the agent
// (it sends a keep-alive comment every 15 s) before calling it stalled.
var monitorSilence = 40 * time.Second

// printMonitorComment shows the stream's header ("shoal monitor of NODE,
// level L") and keep-alives on stderr, so an idle mesh does not look like a
// dead stream and stdout keeps only entries.
func printMonitorComment(ew io.Writer, comment string, now time.Time) {
	switch {
	case strings.HasPrefix(comment, "shoal monitor of"):
		fmt.Fprintf(ew, "%s; Ctrl-C stops\n", comment)
	case comment == "keep-alive":
		fmt.Fprintf(ew, "%s connected, nothing new\n", now.Format("15:04:05"))
	}
}

// readSSE calls fn for every Server-Sent Event in r until r ends.
func readSSE(r io.Reader, fn func(event, data string) error) error {
	return readSSEComments(r, fn, nil)
}

// readSSEComments is readSSE that also hands comment lines (": text") to
// onComment when it is not nil.
func readSSEComments(r io.Reader, fn func(event, data string) error, onComment func(string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(data) > 0 {
				if err := fn(cmpDefault(event, "message"), strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"):
			if onComment != nil {
				onComment(strings.TrimSpace(line[1:]))
			}
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[len("data:"):], " "))
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func cmpDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func printMonitorEntry(w, ew io.Writer, event, data string, asJSON bool) error {
	if event == "dropped" {
		var d struct {
			Dropped uint64 `json:"dropped"`
		}
		_ = json.Unmarshal([]byte(data), &d)
		fmt.Fprintf(ew, "shoal monitor: %d entries dropped (this client fell behind)\n", d.Dropped)
		return nil
	}
	if asJSON {
		_, err := fmt.Fprintln(w, data)
		return err
	}
	var e agent.StreamEntry
	if err := json.Unmarshal([]byte(data), &e); err != nil {
		return fmt.Errorf("monitor entry: %w", err)
	}
	ts := e.Time.Local().Format("2006-01-02 15:04:05.000")
	if e.Kind == "event" {
		line := fmt.Sprintf("%s [EVENT] %s: %s %s", ts, e.Node, e.Type, e.Member)
		if e.Detail != "" {
			line += " (" + e.Detail + ")"
		}
		_, err := fmt.Fprintln(w, line)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] %s: %s", ts, e.Level, e.Node, e.Msg)
	for _, a := range e.Attrs {
		v := a.Value
		if strings.ContainsAny(v, " \"=") || v == "" {
			v = fmt.Sprintf("%q", v)
		}
		fmt.Fprintf(&b, " %s=%s", a.Key, v)
	}
	_, err := fmt.Fprintln(w, b.String())
	return err
}

// errStreamEnded is returned when the agent closes the stream (it stopped).
var errStreamEnded = errors.New("the agent ended the stream (it stopped?)")
