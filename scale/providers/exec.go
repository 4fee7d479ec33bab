package providers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
)

// ExecName is the exec provider's name.
const ExecName = "exec"

// Exec runs a command (the resource, through /bin/sh -c) for each
// decision, with the decision in environment variables:
//
//	SHOAL_SCALE_DESIRED, SHOAL_SCALE_CURRENT, SHOAL_SCALE_ACTION (up, down),
//	SHOAL_SCALE_TERM, SHOAL_SCALE_HOLDER, SHOAL_SCALE_PRIORITY,
//	SHOAL_SCALE_NODE, SHOAL_SCALE_METRIC, SHOAL_SCALE_VALUE,
//	SHOAL_SCALE_TARGET, SHOAL_SCALE_REASON, SHOAL_SCALE_TIME (RFC 3339),
//	SHOAL_SCALE_DECISION (the decision as JSON)
//
// A non-zero exit is a failure (stderr's tail in the error); a command that
// outlives the timeout is killed with its process group. Options: timeout
// (default 30s), current_command (prints the instance count, for Current;
// with it the count is authoritative; it may print the ready count after
// it, "5 3", or {"current": 5, "ready": 3}, for Counts), fence_file.
type Exec struct {
	command, currentCmd string
	timeout             time.Duration
	node                string
	fence               *scale.FileFence
	log                 *slog.Logger
}

var (
	_ scale.Provider         = (*Exec)(nil)
	_ scale.LastActionReader = (*Exec)(nil)
	_ scale.ReadyReader      = (*Exec)(nil)
)

// NewExec is the exec provider's factory.
func NewExec(cfg scale.ProviderConfig) (scale.Provider, error) {
	if err := cfg.CheckOptions("timeout", "current_command", OptFenceFile); err != nil {
		return nil, err
	}
	if strings.TrimSpace(cfg.Resource) == "" {
		return nil, fmt.Errorf("%w: provider exec: no command: set --scale-resource to a command line (run with /bin/sh -c)", scale.ErrProviderConfig)
	}
	timeout, err := OptDuration(cfg, "timeout", 30*time.Second)
	if err != nil {
		return nil, err
	}
	f, err := OpenFence(cfg)
	if err != nil {
		return nil, err
	}
	return &Exec{command: cfg.Resource, currentCmd: cfg.Opt("current_command", ""), timeout: timeout, node: cfg.Node,
		fence: f, log: cfg.Logger.With("component", "scale-exec")}, nil
}

// Name returns "exec".
func (p *Exec) Name() string { return ExecName }

// Authoritative is true with current_command: it reads the resource.
func (p *Exec) Authoritative() bool { return p.currentCmd != "" }

// Current runs current_command, or returns scale.ErrCountUnknown: the count
// in this node's fence is only its own last action, which another node may
// have superseded (LastAction returns it with its lease).
func (p *Exec) Current(ctx context.Context) (int, error) {
	c, err := p.Counts(ctx)
	return c.Current, err
}

// Counts runs current_command and reads the count and, when it prints one
// after it, the ready count (scale.ParseCounts).
func (p *Exec) Counts(ctx context.Context) (scale.Counts, error) {
	if p.currentCmd == "" {
		return scale.Counts{}, scale.ErrCountUnknown
	}
	out, err := p.run(ctx, p.currentCmd, nil)
	if err != nil {
		return scale.Counts{}, fmt.Errorf("current_command: %w", err)
	}
	c, err := scale.ParseCounts(out)
	if err != nil {
		return scale.Counts{}, fmt.Errorf("current_command %q printed %s: want a count from 0 to %d, optionally followed by the ready count (%w)",
			p.currentCmd, quoteAnswer(out), scale.MaxCount, err)
	}
	return c, nil
}

// Scale fences the lease and runs the command.
func (p *Exec) Scale(ctx context.Context, desired int, lease fence.Lease, d scale.Decision) error {
	return p.fence.Do(lease, func(st *scale.FenceState) error {
		js, _ := json.Marshal(d)
		at := ActionTime(d)
		env := []string{
			"SHOAL_SCALE_DESIRED=" + strconv.Itoa(desired),
			"SHOAL_SCALE_CURRENT=" + strconv.Itoa(d.Current),
			"SHOAL_SCALE_ACTION=" + d.Action,
			"SHOAL_SCALE_TERM=" + strconv.FormatUint(lease.Term, 10),
			"SHOAL_SCALE_HOLDER=" + lease.Holder,
			"SHOAL_SCALE_PRIORITY=" + strconv.Itoa(lease.Priority),
			"SHOAL_SCALE_NODE=" + p.node,
			"SHOAL_SCALE_METRIC=" + d.Metric,
			"SHOAL_SCALE_VALUE=" + strconv.FormatFloat(d.Value, 'f', -1, 64),
			"SHOAL_SCALE_TARGET=" + strconv.FormatFloat(d.Target, 'f', -1, 64),
			"SHOAL_SCALE_REASON=" + d.Reason(),
			"SHOAL_SCALE_TIME=" + at.Format(time.RFC3339Nano),
			"SHOAL_SCALE_DECISION=" + string(js),
		}
		if _, err := p.run(ctx, p.command, env); err != nil {
			return err
		}
		st.Count, st.Known = desired, true
		st.Last = &scale.Applied{Time: at, From: d.Current, To: desired, Lease: lease}
		return nil
	})
}

func (p *Exec) run(ctx context.Context, command string, env []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr capBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, fmt.Errorf("exec %q: killed after the %v timeout", command, p.timeout)
	}
	if err != nil {
		tail := strings.TrimSpace(stderr.String())
		if len(tail) > 512 {
			tail = "…" + tail[len(tail)-512:]
		}
		return nil, fmt.Errorf("exec %q: %w: %s", command, err, tail)
	}
	return stdout.Bytes(), nil
}

// LastAction returns the last action this provider's fence recorded.
func (p *Exec) LastAction(ctx context.Context) (scale.Applied, bool, error) {
	st, err := p.fence.Read()
	if err != nil {
		return scale.Applied{}, false, err
	}
	a, ok := LastFromState(st)
	return a, ok, nil
}

// capBuffer keeps the first maxAnswer bytes written to it and discards the
// rest (the command is not told: its writes succeed), so that a command
// that prints without end cannot fill the agent's memory. (The buffer is
// a field, not embedded: an embedded bytes.Buffer's ReadFrom would let
// io.Copy around Write.)
type capBuffer struct{ b bytes.Buffer }

func (c *capBuffer) Write(p []byte) (int, error) {
	if room := maxAnswer - c.b.Len(); room > 0 {
		c.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (c *capBuffer) Bytes() []byte  { return c.b.Bytes() }
func (c *capBuffer) String() string { return c.b.String() }
