package providers

// The helper process: the AWS and Kubernetes providers run in shoal-provider
// (cmd/shoal-provider), a binary of their own, and the agent talks to them
// over the child's stdin and stdout, one JSON object a line.
//
// When the agent starts with such a provider, HelperFactory runs the helper
// once to build the provider (which checks the configuration; AWS also
// describes the group), so that a mistake shows at start-up as before, and
// lets it exit. Only the coordinator calls a provider: the first call starts
// the helper again, and it exits after HelperIdle without calls (when this
// node no longer coordinates) or when the agent stops. A mesh that scales
// therefore runs one helper, on its coordinator, and an agent that never
// coordinates never has the SDKs in memory.
//
// Protocol, agent to helper: {"op":"config","config":{...}} first, then
// {"id":N,"op":"current"|"scale"|"last_action"|"cancel",...}. Helper to
// agent: {"ready":{...}} or {"error":{...}} for the config, then one reply
// per id, and {"log":{...}} records of the provider's logger at any time.
// Errors carry the sentinel they wrap ("is"), so errors.Is holds on the
// agent's side for fence.ErrStaleTerm, scale.ErrCountUnknown,
// scale.ErrProviderConfig, ErrScaleConflict, ErrNoGroup and the context's.
// The helper exits when its stdin closes (the agent stopped it or died).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
)

// HelperName is the helper binary's file name; HelperEnv is the
// environment variable of the agent's --scale-provider-helper setting,
// which gives its path instead (ProviderConfig.Helper).
const (
	HelperName = "shoal-provider"
	HelperEnv  = "SHOAL_SCALE_PROVIDER_HELPER"
)

// HelperIdle is how long a helper with no calls keeps running.
var HelperIdle = time.Minute

// helperMaxLine bounds one line of the protocol, either way.
const helperMaxLine = 1 << 20

type helperConfig struct {
	Name     string            `json:"name"`
	Resource string            `json:"resource"`
	Options  map[string]string `json:"options,omitempty"`
	StateDir string            `json:"state_dir,omitempty"`
	Node     string            `json:"node,omitempty"`
	// LogLevel is the lowest level of the provider's records worth sending.
	LogLevel slog.Level `json:"log_level"`
}

type helperRequest struct {
	ID       uint64          `json:"id,omitempty"`
	Op       string          `json:"op"`
	Config   *helperConfig   `json:"config,omitempty"`
	Desired  int             `json:"desired,omitempty"`
	Lease    *fence.Lease    `json:"lease,omitempty"`
	Decision *scale.Decision `json:"decision,omitempty"`
}

type helperReply struct {
	ID      uint64         `json:"id,omitempty"`
	Ready   *helperReady   `json:"ready,omitempty"`
	Count   int            `json:"count,omitempty"`
	Counts  *scale.Counts  `json:"counts,omitempty"`
	Applied *scale.Applied `json:"applied,omitempty"`
	Found   bool           `json:"found,omitempty"`
	Err     *helperError   `json:"error,omitempty"`
	Log     *helperLog     `json:"log,omitempty"`
}

type helperReady struct {
	Authoritative bool `json:"authoritative"`
	LastAction    bool `json:"last_action"`
	// Counts: the provider tells the ready count (scale.ReadyReader).
	Counts bool `json:"counts"`
}

type helperError struct {
	Msg string `json:"msg"`
	Is  string `json:"is,omitempty"`
}

type helperLog struct {
	Level slog.Level `json:"level"`
	Msg   string     `json:"msg"`
	Attrs []string   `json:"attrs,omitempty"` // key, value, key, value...
}

// sentinels are the errors that keep their identity across the process.
var sentinels = []struct {
	name string
	err  error
}{
	{"stale_term", fence.ErrStaleTerm},
	{"count_unknown", scale.ErrCountUnknown},
	{"provider_config", scale.ErrProviderConfig},
	{"conflict", ErrScaleConflict},
	{"no_group", ErrNoGroup},
	{"canceled", context.Canceled},
	{"deadline", context.DeadlineExceeded},
}

func encodeErr(err error) *helperError {
	if err == nil {
		return nil
	}
	e := &helperError{Msg: err.Error()}
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			e.Is = s.name
			break
		}
	}
	return e
}

// remoteError is an error from the helper: its message, and the sentinel it
// wrapped there.
type remoteError struct {
	msg string
	is  error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.is }

func (e *helperError) err() error {
	if e == nil {
		return nil
	}
	r := &remoteError{msg: e.Msg}
	for _, s := range sentinels {
		if s.name == e.Is {
			r.is = s.err
		}
	}
	return r
}

// HelperFactory returns the factory of a provider that runs in the helper.
func HelperFactory(name string) scale.Factory {
	return func(cfg scale.ProviderConfig) (scale.Provider, error) {
		exe, err := findHelper(cfg.Helper)
		if err != nil {
			return nil, fmt.Errorf("provider %s: %w", name, err)
		}
		log := cfg.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		p := &helperProvider{name: name, cfg: cfg, exe: exe, log: log.With("component", "scale-helper", "provider", name)}
		if name == KubernetesName {
			// The in-process provider refused, for the life of the
			// process, a lease lower than the last it acted on; the
			// helper is restarted, the agent is not.
			p.fence = fence.New(fence.Lease{})
		}
		// Build the provider once now, so that a bad configuration (or,
		// for AWS, a missing group) fails the agent's start.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		h, ready, err := p.start(ctx)
		if err != nil {
			return nil, err
		}
		h.stop()
		p.ready = ready
		if ready.LastAction {
			return &helperLastAction{p}, nil
		}
		return p, nil
	}
}

// findHelper looks for the helper binary: at path (the agent's
// --scale-provider-helper), else at $SHOAL_SCALE_PROVIDER_HELPER (the same
// setting for a provider built outside the agent, as in tests), else next
// to this executable, else on $PATH.
func findHelper(path string) (string, error) {
	what := "--scale-provider-helper"
	if path == "" {
		path, what = os.Getenv(HelperEnv), HelperEnv
	}
	if path != "" {
		if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s %s: not an executable file (%v)", what, path, err)
		}
		return path, nil
	}
	var tried []string
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), HelperName)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := exec.LookPath(HelperName); err == nil {
		return p, nil
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("it runs in the helper binary %s, not found (looked at %s; give its path with --scale-provider-helper or %s): build it with 'go build ./cmd/shoal-provider' and install it next to shoal",
		HelperName, strings.Join(tried, ", "), HelperEnv)
}

// helperProvider is the agent's side of a provider in the helper.
type helperProvider struct {
	name  string
	cfg   scale.ProviderConfig
	exe   string
	log   *slog.Logger
	ready helperReady
	fence *fence.Fence // nil but for Kubernetes

	mu     sync.Mutex
	h      *helperProc // the running helper, nil while none runs
	idle   *time.Timer
	calls  int // in flight
	closed bool
}

// helperLastAction is a helperProvider whose provider reads the last action
// from the resource (scale.LastActionReader).
type helperLastAction struct{ *helperProvider }

var (
	_ scale.Provider         = (*helperProvider)(nil)
	_ scale.LastActionReader = (*helperLastAction)(nil)
	_ scale.ReadyReader      = (*helperProvider)(nil)
)

func (p *helperProvider) Name() string        { return p.name }
func (p *helperProvider) Authoritative() bool { return p.ready.Authoritative }

func (p *helperProvider) Current(ctx context.Context) (int, error) {
	r, err := p.call(ctx, helperRequest{Op: "current"})
	if err != nil {
		return 0, err
	}
	return r.Count, nil
}

// Counts asks the provider for its counts, ready count included, when it
// reads one; otherwise it answers Current's count with the ready count
// unknown, which the scaler takes as it takes a provider without counts.
func (p *helperProvider) Counts(ctx context.Context) (scale.Counts, error) {
	if !p.ready.Counts {
		n, err := p.Current(ctx)
		return scale.Counts{Current: n}, err
	}
	r, err := p.call(ctx, helperRequest{Op: "counts"})
	if err != nil {
		return scale.Counts{}, err
	}
	if r.Counts == nil {
		return scale.Counts{}, fmt.Errorf("%w: provider helper: counts answer without counts", scale.ErrBadCounts)
	}
	return *r.Counts, nil
}

func (p *helperProvider) Scale(ctx context.Context, desired int, lease fence.Lease, d scale.Decision) error {
	if p.fence != nil {
		if err := p.fence.AdmitLease(lease); err != nil {
			return fmt.Errorf("scale: %s: %s: refused: %w", p.name, p.cfg.Resource, err)
		}
	}
	_, err := p.call(ctx, helperRequest{Op: "scale", Desired: desired, Lease: &lease, Decision: &d})
	return err
}

func (p *helperLastAction) LastAction(ctx context.Context) (scale.Applied, bool, error) {
	r, err := p.call(ctx, helperRequest{Op: "last_action"})
	if err != nil || !r.Found || r.Applied == nil {
		return scale.Applied{}, false, err
	}
	return *r.Applied, true, nil
}

// Close stops the helper, if one runs, and any later one.
func (p *helperProvider) Close() error {
	p.mu.Lock()
	p.closed = true
	h := p.h
	p.h = nil
	if p.idle != nil {
		p.idle.Stop()
	}
	p.mu.Unlock()
	if h != nil {
		h.stop()
	}
	return nil
}

// call sends one request to the helper, starting it if none runs.
func (p *helperProvider) call(ctx context.Context, req helperRequest) (helperReply, error) {
	h, err := p.acquire(ctx)
	if err != nil {
		return helperReply{}, err
	}
	defer p.release()
	return h.call(ctx, req)
}

func (p *helperProvider) acquire(ctx context.Context) (*helperProc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("provider %s: closed", p.name)
	}
	if p.h != nil && p.h.exited() {
		p.h = nil
	}
	if p.h == nil {
		h, _, err := p.start(ctx)
		if err != nil {
			return nil, err
		}
		p.h = h
	}
	if p.idle != nil {
		p.idle.Stop()
	}
	p.calls++
	return p.h, nil
}

func (p *helperProvider) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls--
	if p.calls > 0 || p.h == nil {
		return
	}
	if p.idle == nil {
		p.idle = time.AfterFunc(HelperIdle, p.stopIdle)
	} else {
		p.idle.Reset(HelperIdle)
	}
}

// stopIdle stops a helper that has had no calls for HelperIdle.
func (p *helperProvider) stopIdle() {
	p.mu.Lock()
	h := p.h
	if p.calls > 0 || h == nil {
		p.mu.Unlock()
		return
	}
	p.h = nil
	p.mu.Unlock()
	p.log.Debug("provider helper idle, stopping it")
	h.stop()
}

// helperProc is one running helper.
type helperProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *slog.Logger

	wmu sync.Mutex // one writer on stdin

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan helperReply
	done    chan struct{} // closed when the helper has exited and been reaped
	errDone chan struct{} // closed when its stderr ends
	waitErr error
}

// start runs the helper and hands it the configuration; it returns once
// the provider is built (ready) or failed.
func (p *helperProvider) start(ctx context.Context) (*helperProc, helperReady, error) {
	cmd := exec.Command(p.exe, "serve")
	cmd.Env = os.Environ()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, helperReady{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, helperReady{}, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, helperReady{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, helperReady{}, fmt.Errorf("provider %s: starting the helper %s: %w", p.name, p.exe, err)
	}
	h := &helperProc{cmd: cmd, stdin: stdin, log: p.log, pending: map[uint64]chan helperReply{},
		done: make(chan struct{}), errDone: make(chan struct{})}
	go h.drainStderr(stderr)
	readyCh := make(chan helperReply, 1)
	h.pending[0] = readyCh
	go h.read(stdout)
	level := slog.LevelDebug
	for level < slog.LevelError && !p.log.Enabled(context.Background(), level) {
		level += 4
	}
	cfg := helperConfig{Name: p.name, Resource: p.cfg.Resource, Options: p.cfg.Options, StateDir: p.cfg.StateDir, Node: p.cfg.Node, LogLevel: level}
	if err := h.send(helperRequest{Op: "config", Config: &cfg}); err != nil {
		h.stop()
		return nil, helperReady{}, fmt.Errorf("provider %s: helper %s: %w", p.name, p.exe, err)
	}
	select {
	case r := <-readyCh:
		if r.Err != nil {
			h.stop()
			return nil, helperReady{}, r.Err.err()
		}
		if r.Ready == nil {
			h.stop()
			return nil, helperReady{}, fmt.Errorf("provider %s: helper %s answered the configuration without saying it is ready", p.name, p.exe)
		}
		return h, *r.Ready, nil
	case <-h.done:
		h.stop()
		return nil, helperReady{}, fmt.Errorf("provider %s: helper %s exited before it was ready: %v", p.name, p.exe, h.waitErr)
	case <-ctx.Done():
		h.stop()
		return nil, helperReady{}, fmt.Errorf("provider %s: helper %s not ready: %w", p.name, p.exe, ctx.Err())
	}
}

func (h *helperProc) send(req helperRequest) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	h.wmu.Lock()
	defer h.wmu.Unlock()
	_, err = h.stdin.Write(append(b, '\n'))
	return err
}

func (h *helperProc) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// read dispatches the helper's replies and log records until its stdout
// ends, then reaps it.
func (h *helperProc) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 4096), helperMaxLine)
	for sc.Scan() {
		var r helperReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			h.log.Warn("provider helper: unreadable line", "err", err, "line", truncate(sc.Text(), 200))
			continue
		}
		if r.Log != nil {
			var attrs []any
			for i := 0; i+1 < len(r.Log.Attrs); i += 2 {
				attrs = append(attrs, r.Log.Attrs[i], r.Log.Attrs[i+1])
			}
			h.log.Log(context.Background(), r.Log.Level, r.Log.Msg, attrs...)
			continue
		}
		h.mu.Lock()
		ch, ok := h.pending[r.ID]
		delete(h.pending, r.ID)
		h.mu.Unlock()
		if ok {
			ch <- r
		}
	}
	// Wait closes the pipes: read stderr to its end first (a panic's
	// trace is the last thing a dying helper writes).
	<-h.errDone
	h.waitErr = h.cmd.Wait()
	close(h.done)
}

func (h *helperProc) drainStderr(r io.Reader) {
	defer close(h.errDone)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), helperMaxLine)
	for sc.Scan() {
		h.log.Warn("provider helper: " + truncate(sc.Text(), 1000))
	}
}

// call sends req and waits for its reply, the helper's end or ctx's; on
// ctx's end it asks the helper to cancel the call.
func (h *helperProc) call(ctx context.Context, req helperRequest) (helperReply, error) {
	ch := make(chan helperReply, 1)
	h.mu.Lock()
	h.next++
	req.ID = h.next
	h.pending[req.ID] = ch
	h.mu.Unlock()
	forget := func() {
		h.mu.Lock()
		delete(h.pending, req.ID)
		h.mu.Unlock()
	}
	if err := h.send(req); err != nil {
		forget()
		return helperReply{}, fmt.Errorf("provider helper: %w", err)
	}
	select {
	case r := <-ch:
		return r, r.Err.err()
	case <-h.done:
		forget()
		return helperReply{}, fmt.Errorf("provider helper exited during %s: %v", req.Op, h.waitErr)
	case <-ctx.Done():
		forget()
		_ = h.send(helperRequest{ID: req.ID, Op: "cancel"})
		return helperReply{}, ctx.Err()
	}
}

// stop closes the helper's stdin, which ends it, and waits for it (killing
// it after 10 s).
func (h *helperProc) stop() {
	_ = h.stdin.Close()
	select {
	case <-h.done:
	case <-time.After(10 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// ServeHelper is the helper's side (cmd/shoal-provider): it reads the
// configuration from in, builds the provider from factories, and serves
// calls until in ends. Replies and the provider's log records go to out.
func ServeHelper(in io.Reader, out io.Writer, factories map[string]scale.Factory) error {
	var wmu sync.Mutex
	write := func(r helperReply) {
		b, err := json.Marshal(r)
		if err != nil {
			b, _ = json.Marshal(helperReply{ID: r.ID, Err: encodeErr(fmt.Errorf("provider helper: encoding a reply: %w", err))})
		}
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = out.Write(append(b, '\n'))
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), helperMaxLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return err
		}
		return errors.New("no configuration on stdin (shoal-provider is started by the shoal agent)")
	}
	var first helperRequest
	if err := json.Unmarshal(sc.Bytes(), &first); err != nil || first.Op != "config" || first.Config == nil {
		err := fmt.Errorf("provider helper: the first line must be the configuration, got %q", truncate(sc.Text(), 200))
		write(helperReply{Err: encodeErr(err)})
		return err
	}
	c := first.Config
	f, ok := factories[c.Name]
	if !ok {
		names := make([]string, 0, len(factories))
		for n := range factories {
			names = append(names, n)
		}
		err := fmt.Errorf("%w: %q: this helper has %s", scale.ErrUnknownProvider, c.Name, strings.Join(names, ", "))
		write(helperReply{Err: encodeErr(err)})
		return err
	}
	log := slog.New(&helperLogHandler{level: c.LogLevel, write: write})
	p, err := f(scale.ProviderConfig{Name: c.Name, Resource: c.Resource, Options: c.Options, StateDir: c.StateDir, Node: c.Node, Logger: log})
	if err != nil {
		write(helperReply{Err: encodeErr(err)})
		return err
	}
	lr, hasLast := p.(scale.LastActionReader)
	rr, hasCounts := p.(scale.ReadyReader)
	write(helperReply{Ready: &helperReady{Authoritative: p.Authoritative(), LastAction: hasLast, Counts: hasCounts}})

	var (
		mu      sync.Mutex
		cancels = map[uint64]context.CancelFunc{}
		wg      sync.WaitGroup
	)
	for sc.Scan() {
		var req helperRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			log.Warn("provider helper: unreadable request", "err", err)
			continue
		}
		if req.Op == "cancel" {
			mu.Lock()
			if cancel := cancels[req.ID]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		mu.Lock()
		cancels[req.ID] = cancel
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(cancels, req.ID)
				mu.Unlock()
				cancel()
			}()
			r := helperReply{ID: req.ID}
			var err error
			switch req.Op {
			case "current":
				r.Count, err = p.Current(ctx)
			case "counts":
				if !hasCounts {
					err = fmt.Errorf("provider helper: %s reads no ready count", c.Name)
					break
				}
				var n scale.Counts
				if n, err = rr.Counts(ctx); err == nil {
					r.Counts = &n
				}
			case "scale":
				if req.Lease == nil || req.Decision == nil {
					err = errors.New("provider helper: scale without a lease or a decision")
					break
				}
				err = p.Scale(ctx, req.Desired, *req.Lease, *req.Decision)
			case "last_action":
				if !hasLast {
					err = fmt.Errorf("provider helper: %s does not read the last action", c.Name)
					break
				}
				var a scale.Applied
				a, r.Found, err = lr.LastAction(ctx)
				if r.Found {
					r.Applied = &a
				}
			default:
				err = fmt.Errorf("provider helper: unknown operation %q", req.Op)
			}
			r.Err = encodeErr(err)
			write(r)
		}()
	}
	mu.Lock()
	for _, cancel := range cancels {
		cancel()
	}
	mu.Unlock()
	wg.Wait()
	if c, ok := p.(io.Closer); ok {
		_ = c.Close()
	}
	return sc.Err()
}

// helperLogHandler sends the provider's log records to the agent.
type helperLogHandler struct {
	level slog.Level
	attrs []string
	group string
	write func(helperReply)
}

func (h *helperLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *helperLogHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := append([]string(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = h.appendAttr(attrs, a)
		return true
	})
	h.write(helperReply{Log: &helperLog{Level: r.Level, Msg: r.Message, Attrs: attrs}})
	return nil
}

func (h *helperLogHandler) appendAttr(out []string, a slog.Attr) []string {
	key := a.Key
	if h.group != "" {
		key = h.group + "." + key
	}
	return append(out, key, a.Value.Resolve().String())
}

func (h *helperLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]string(nil), h.attrs...)
	for _, a := range as {
		c.attrs = h.appendAttr(c.attrs, a)
	}
	return &c
}

func (h *helperLogHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}
