package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/shoalmesh/shoal/client"
)

// ANSI sequences for the live view.
const (
	ansiAltOn    = "\x1b[?1049h"
	ansiAltOff   = "\x1b[?1049l"
	ansiHide     = "\x1b[?25l"
	ansiShow     = "\x1b[?25h"
	ansiHome     = "\x1b[H"
	ansiClearEOL = "\x1b[K"
	ansiClearEOS = "\x1b[J"
	ansiBold     = "\x1b[1m"
	ansiRed      = "\x1b[31m"
	ansiYellow   = "\x1b[33m"
	ansiReset    = "\x1b[0m"
)

func topCommand() *cli.Command {
	return &cli.Command{
		Name:  "top",
		Usage: "live view of the mesh: members by load, the coordinator, the aggregate (q quits)",
		Description: "On a terminal the view refreshes in place; keys: q quit, c/m/n/a sort by cpu, memory, network or age, " +
			"s by name. When stdout is not a terminal it prints the view once, without escapes.",
		Flags: append(clientFlags(false),
			&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "refresh interval"},
			&cli.BoolFlag{Name: "once", Usage: "print the view once and exit (the default when stdout is not a terminal)"},
		),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			iv := c.Duration("interval")
			if iv < 100*time.Millisecond {
				return usagef("--interval %v: use 100ms or more", iv)
			}
			cl, err := apiClient(c)
			if err != nil {
				return err
			}
			out, isFile := c.App.Writer.(*os.File)
			if c.Bool("once") || !isFile || !term.IsTerminal(int(out.Fd())) {
				ctx, cancel := ctxOf(c)
				defer cancel()
				snap, err := fetchTop(ctx, cl)
				if err != nil {
					return err
				}
				renderTop(c.App.Writer, snap, topView{sort: "cpu", width: 0, height: 0, plain: true})
				return nil
			}
			return runTopLive(c.Context, cl, out, iv)
		},
	}
}

type topSnap struct {
	load   client.LoadReport
	leader *client.Leader
	node   string
	at     time.Time
	err    error
}

type topView struct {
	sort          string
	width, height int
	plain         bool
}

func fetchTop(ctx context.Context, cl *client.Client) (topSnap, error) {
	s := topSnap{at: time.Now()}
	var err error
	if s.load, err = cl.Load(ctx); err != nil {
		return s, err
	}
	if l, err := cl.Leader(ctx); err == nil {
		s.leader = &l
		s.node = l.Node
	}
	for _, m := range s.load.Members {
		if m.Self {
			s.node = m.Name
		}
	}
	return s, nil
}

func runTopLive(parent context.Context, cl *client.Client, out *os.File, iv time.Duration) error {
	ctx, stop := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stop()
	keys := make(chan byte, 16)
	in := int(os.Stdin.Fd())
	if term.IsTerminal(in) {
		old, err := term.MakeRaw(in)
		if err != nil {
			return fmt.Errorf("raw terminal: %w", err)
		}
		defer term.Restore(in, old)
		go func() {
			b := make([]byte, 16)
			for {
				n, err := os.Stdin.Read(b)
				for _, k := range b[:n] {
					keys <- k
				}
				if err != nil {
					close(keys)
					return
				}
			}
		}()
	}
	fmt.Fprint(out, ansiAltOn+ansiHide)
	defer fmt.Fprint(out, ansiShow+ansiAltOff)

	view := topView{sort: "cpu"}
	var snap topSnap
	refresh := func() {
		c, cancel := context.WithTimeout(ctx, iv+5*time.Second)
		s, err := fetchTop(c, cl)
		cancel()
		if err != nil {
			snap.err = err // keep showing the last view with the error
			return
		}
		snap = s
	}
	draw := func() {
		view.width, view.height = 100, 30
		if w, h, err := term.GetSize(int(out.Fd())); err == nil {
			view.width, view.height = w, h
		}
		var b strings.Builder
		b.WriteString(ansiHome)
		renderTop(&b, snap, view)
		b.WriteString(ansiClearEOS)
		// Raw mode: a newline does not return the carriage.
		_, _ = io.WriteString(out, strings.ReplaceAll(b.String(), "\n", "\r\n"))
	}
	refresh()
	draw()
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case k, ok := <-keys:
			if !ok {
				return nil
			}
			switch k {
			case 'q', 'Q', 3, 4: // q, Ctrl-C, Ctrl-D
				return nil
			case 'c':
				view.sort = "cpu"
			case 'm':
				view.sort = "mem"
			case 'n':
				view.sort = "net"
			case 'a':
				view.sort = "age"
			case 's':
				view.sort = "name"
			case ' ', 'r':
				refresh()
			}
			draw()
		case <-t.C:
			refresh()
			draw()
		}
	}
}

func sortMembers(ms []client.Member, by string) {
	key := func(m client.Member) float64 {
		if m.Load == nil {
			return -1
		}
		switch by {
		case "mem":
			return m.Load.MemPercent
		case "net":
			return m.Load.NetRxBps + m.Load.NetTxBps
		case "age":
			return m.LoadAgeSeconds
		}
		return m.Load.CPUPercent
	}
	sort.SliceStable(ms, func(i, j int) bool {
		if by == "name" {
			return ms[i].Name < ms[j].Name
		}
		// Failed members first: they are what an operator looks for.
		if fi, fj := ms[i].Status == "failed", ms[j].Status == "failed"; fi != fj {
			return fi
		}
		if ki, kj := key(ms[i]), key(ms[j]); ki != kj {
			return ki > kj
		}
		return ms[i].Name < ms[j].Name
	})
}

func textBar(pct float64, width int) string {
	n := int(pct/100*float64(width) + 0.5)
	n = max(0, min(width, n))
	return strings.Repeat("#", n) + strings.Repeat(".", width-n)
}

// renderTop writes the view. With plain set there are no escapes and no
// height limit; otherwise lines are cut to the width and rows to the height.
func renderTop(w io.Writer, s topSnap, v topView) {
	style := func(code, text string) string {
		if v.plain {
			return text
		}
		return code + text + ansiReset
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }
	ag := s.load.Aggregate
	counts := map[string]int{}
	for _, m := range s.load.Members {
		counts[m.Status]++
	}
	add("%s  %s  %s", style(ansiBold, "shoal top"), "node "+s.node, s.at.Format("15:04:05"))
	coord := "none"
	if s.leader != nil {
		switch {
		case s.leader.Coordinator != "":
			coord = fmt.Sprintf("%s (term %d)", s.leader.Coordinator, s.leader.Term)
		case s.leader.Electing:
			coord = "electing"
		}
	}
	failed := fmt.Sprintf("failed %d", counts["failed"])
	if counts["failed"] > 0 {
		failed = style(ansiRed, failed)
	}
	add("members %d: alive %d, %s, left %d   coordinator: %s", len(s.load.Members), counts["alive"], failed, counts["left"], coord)
	add("aggregate over %d: cpu mean %.1f%% max %.1f%%  mem mean %.1f%% max %.1f%%  net in %s out %s  cores %.1f  oldest load %s",
		ag.Members, ag.CPUMean, ag.CPUMax, ag.MemMean, ag.MemMax, fmtRate(ag.NetRxBps), fmtRate(ag.NetTxBps), ag.Cores, fmtAge(ag.MaxAgeSecs))
	if s.err != nil {
		add("%s", style(ansiYellow, "agent unreachable, showing the last view: "+s.err.Error()))
	} else if !v.plain {
		add("sorted by %s · q quit · c cpu · m mem · n net · a age · s name", v.sort)
	}
	add("")
	ms := append([]client.Member(nil), s.load.Members...)
	sortMembers(ms, v.sort)
	add("%-24s %-8s %-18s %-18s %10s %10s %7s", "NAME", "STATUS", "CPU", "MEM", "NET IN", "NET OUT", "AGE")
	room := len(ms)
	if !v.plain && v.height > 0 {
		room = max(0, v.height-len(lines)-1)
	}
	for i, m := range ms {
		if i >= room {
			add("… %d more", len(ms)-i)
			break
		}
		name := m.Name
		if m.Coordinator {
			name += " ★"
		}
		if m.Self {
			name += " *"
		}
		status := fmt.Sprintf("%-8s", m.Status)
		if m.Status == "failed" {
			status = style(ansiRed, status)
		}
		if m.Load == nil {
			add("%-24s %s %-18s %-18s %10s %10s %7s", trunc(name, 24), status, "-", "-", "-", "-", "-")
			continue
		}
		l := m.Load
		add("%-24s %s %s %5.1f%% %s %5.1f%% %10s %10s %7s", trunc(name, 24), status,
			textBar(l.CPUPercent, 11), l.CPUPercent, textBar(l.MemPercent, 11), l.MemPercent,
			fmtRate(l.NetRxBps), fmtRate(l.NetTxBps), fmtAge(m.LoadAgeSeconds))
	}
	for _, ln := range lines {
		if !v.plain && v.width > 0 {
			ln = cutVisible(ln, v.width)
		}
		if v.plain {
			fmt.Fprintln(w, ln)
		} else {
			fmt.Fprint(w, ln+ansiClearEOL+"\n")
		}
	}
}

func trunc(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// cutVisible cuts s to n visible runes, keeping escape sequences whole.
func cutVisible(s string, n int) string {
	var b strings.Builder
	vis := 0
	esc := false
	for _, r := range s {
		switch {
		case esc:
			b.WriteRune(r)
			if r >= '@' && r <= '~' && r != '[' {
				esc = false
			}
		case r == 0x1b:
			esc = true
			b.WriteRune(r)
		default:
			if vis < n {
				b.WriteRune(r)
			}
			vis++
		}
	}
	if vis > n {
		b.WriteString(ansiReset)
	}
	return b.String()
}
