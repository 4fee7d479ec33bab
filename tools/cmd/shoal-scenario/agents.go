package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	serfclient "github.com/hashicorp/serf/client"

	"github.com/shoalmesh/shoal/client"
)

const (
	gossipPort    = 7946
	shoalHTTPPort = 7950
	serfRPCPort   = 7373
)

type (
	infoT      = client.Info
	memberFull = client.Member
)

// member is one entry of a member list, as either implementation reports it.
type member struct {
	Name   string
	Status string
}

// impl is one mesh implementation: how to start an agent and how to ask it.
type impl interface {
	Name() string
	// Net is the first three octets of the agents' loopback addresses.
	Net() string
	// command returns the argv that starts agent a, joined to join ("" for the seed).
	command(a *agentProc, join string) []string
	// joinAddr is what others give to join through agent a (after connect).
	joinAddr(a *agentProc) string
	// connect waits until the agent answers and keeps the connection in a.
	connect(ctx context.Context, a *agentProc) error
	// members asks the agent for its member list.
	members(ctx context.Context, a *agentProc) ([]member, error)
}

// agentProc is one running agent process.
type agentProc struct {
	impl  impl
	Index int
	Name  string
	IP    string
	PID   int
	Log   string
	Dir   string
	// P2PAddr is the agent's QUIC multiaddr with its peer ID (p2p profile).
	P2PAddr string

	cmd     *exec.Cmd
	started time.Time
	done    chan struct{}
	waitErr error
	killed  bool

	mu    sync.Mutex
	shoal *client.Client
	serf  *serfclient.RPCClient
}

func (a *agentProc) gossipAddr() string { return fmt.Sprintf("%s:%d", a.IP, gossipPort) }

func (a *agentProc) exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// deadErr describes an agent that exited on its own, with the tail of its log.
func (a *agentProc) deadErr() error {
	return fmt.Errorf("%s (pid %d) exited: %v; last lines of %s:\n%s", a.Name, a.PID, a.waitErr, a.Log, tail(a.Log, 12))
}

func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, "  | "+sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "  (empty log)"
	}
	return strings.Join(lines, "\n")
}

// procSet owns every process the scenario starts and kills them all at the end.
type procSet struct {
	mu     sync.Mutex
	agents []*agentProc
	tmp    string
}

// childEnv is the environment without SHOAL_* variables, so that nothing in
// the caller's environment (an API token, a profile) changes the agents.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SHOAL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// start launches agent idx of im, joined to join ("" for none).
func (ps *procSet) start(im impl, idx int, join string) (*agentProc, error) {
	a := &agentProc{impl: im, Index: idx, Name: fmt.Sprintf("%s-%02d", im.Name(), idx),
		IP: fmt.Sprintf("%s.%d", im.Net(), idx), done: make(chan struct{})}
	a.Dir = filepath.Join(ps.tmp, a.Name)
	if err := os.MkdirAll(a.Dir, 0o755); err != nil {
		return nil, err
	}
	a.Log = filepath.Join(a.Dir, "agent.log")
	logf, err := os.Create(a.Log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	argv := im.command(a, join)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = a.Dir
	cmd.Env = childEnv()
	if e, ok := im.(interface{ extraEnv() []string }); ok {
		cmd.Env = append(cmd.Env, e.extraEnv()...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group: a Ctrl-C at the terminal reaches only the runner,
	// which then kills every agent itself. Pdeathsig: should the runner die
	// without cleaning up, the kernel kills the agents.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", a.Name, err)
	}
	a.cmd, a.PID, a.started = cmd, cmd.Process.Pid, time.Now()
	ps.agents = append(ps.agents, a)
	go func() {
		a.waitErr = cmd.Wait()
		close(a.done)
	}()
	return a, nil
}

// closeConn closes the reused connection to the agent, if it has one.
func (a *agentProc) closeConn() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.serf != nil {
		_ = a.serf.Close()
		a.serf = nil
	}
}

// kill9 sends SIGKILL to one agent and waits until it is gone.
func (a *agentProc) kill9() error {
	a.killed = true
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil && !a.exited() {
		return fmt.Errorf("kill -9 %s: %w", a.Name, err)
	}
	select {
	case <-a.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) still running 10s after SIGKILL", a.Name, a.PID)
	}
}

// closeAll kills every agent still running (by its own pid) and closes the
// connections to them.
func (ps *procSet) closeAll() {
	ps.mu.Lock()
	agents := append([]*agentProc(nil), ps.agents...)
	ps.mu.Unlock()
	for _, a := range agents {
		a.closeConn()
		if !a.exited() {
			a.killed = true
			_ = a.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	for _, a := range agents {
		select {
		case <-a.done:
		case <-time.After(10 * time.Second):
			fmt.Fprintf(os.Stderr, "shoal-scenario: %s (pid %d) did not exit after SIGKILL\n", a.Name, a.PID)
		}
	}
}

// connectLoop retries try until it succeeds, the agent exits, or ctx ends.
func connectLoop(ctx context.Context, a *agentProc, poll time.Duration, try func() error) error {
	var last error
	for {
		if a.exited() {
			return a.deadErr()
		}
		if last = try(); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer in time (last error: %v); log tail:\n%s", a.Name, last, tail(a.Log, 8))
		case <-a.done:
		case <-time.After(poll):
		}
	}
}

// shoalImpl runs `shoal agent` processes and asks them over the HTTP API.
type shoalImpl struct {
	bin, net string
	poll     time.Duration
	// name prefixes the agents' names ("" means "shoal"); profile is the
	// --profile ("" means lan); key, when set, is given as --encrypt.
	name, profile, key string
	// env is added to the agents' environment.
	env []string
}

func (s *shoalImpl) extraEnv() []string { return s.env }

func (s *shoalImpl) Name() string {
	if s.name == "" {
		return "shoal"
	}
	return s.name
}

func (s *shoalImpl) Net() string { return s.net }

func (s *shoalImpl) prof() string {
	if s.profile == "" {
		return "lan"
	}
	return s.profile
}

func (s *shoalImpl) httpAddr(a *agentProc) string { return fmt.Sprintf("%s:%d", a.IP, shoalHTTPPort) }

func (s *shoalImpl) command(a *agentProc, join string) []string {
	argv := []string{s.bin, "agent", "--node", a.Name, "--bind", a.gossipAddr(), "--profile", s.prof(),
		"--http-addr", s.httpAddr(a), "--data-dir", filepath.Join(a.Dir, "data"), "--log-level", "warn"}
	if s.key != "" {
		argv = append(argv, "--encrypt", s.key)
	}
	if join != "" {
		argv = append(argv, "--join", join)
	}
	return argv
}

// joinAddr is the gossip address, or on p2p the multiaddr read at connect.
func (s *shoalImpl) joinAddr(a *agentProc) string {
	if s.prof() == "p2p" {
		return a.P2PAddr
	}
	return a.gossipAddr()
}

func (s *shoalImpl) connect(ctx context.Context, a *agentProc) error {
	c := client.New(s.httpAddr(a), "")
	err := connectLoop(ctx, a, s.poll, func() error {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := c.Health(rctx)
		return err
	})
	if err == nil && s.prof() == "p2p" {
		// On p2p others join with the multiaddr `shoal info` reports.
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		in, ierr := c.Info(rctx)
		cancel()
		switch {
		case ierr != nil:
			err = fmt.Errorf("%s: info: %w", a.Name, ierr)
		case in.P2P == nil || len(in.P2P.Addrs) == 0:
			err = fmt.Errorf("%s: info reports no p2p addresses", a.Name)
		default:
			a.P2PAddr = pickP2PAddr(in.P2P.Addrs)
		}
	}
	if err == nil {
		a.mu.Lock()
		a.shoal = c
		a.mu.Unlock()
	}
	return err
}

// pickP2PAddr prefers the QUIC multiaddr (libp2p's first choice) and falls
// back to the first one.
func pickP2PAddr(addrs []string) string {
	for _, ad := range addrs {
		if strings.Contains(ad, "/quic-v1/") {
			return ad
		}
	}
	return addrs[0]
}

func (s *shoalImpl) members(ctx context.Context, a *agentProc) ([]member, error) {
	ms, err := s.fullMembers(ctx, a)
	if err != nil {
		return nil, err
	}
	out := make([]member, len(ms))
	for i, m := range ms {
		out[i] = member{Name: m.Name, Status: m.Status}
		if alias := m.Tags["alias"]; alias != "" && s.prof() == "p2p" {
			// On p2p the member name is the peer ID; the name given
			// with --node is kept as the alias tag.
			out[i].Name = alias
		}
	}
	return out, nil
}

func (s *shoalImpl) fullMembers(ctx context.Context, a *agentProc) ([]client.Member, error) {
	a.mu.Lock()
	c := a.shoal
	a.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%s: not connected", a.Name)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Members(rctx, client.MemberFilter{})
}

func (s *shoalImpl) info(ctx context.Context, a *agentProc) (client.Info, error) {
	a.mu.Lock()
	c := a.shoal
	a.mu.Unlock()
	if c == nil {
		return client.Info{}, fmt.Errorf("%s: not connected", a.Name)
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.Info(rctx)
}

// serfImpl runs stock `serf agent` processes and asks them over serf's RPC,
// one connection per agent, reused.
type serfImpl struct {
	bin, net string
	poll     time.Duration
}

func (s *serfImpl) Name() string { return "serf" }
func (s *serfImpl) Net() string  { return s.net }

func (s *serfImpl) rpcAddr(a *agentProc) string { return fmt.Sprintf("%s:%d", a.IP, serfRPCPort) }

func (s *serfImpl) joinAddr(a *agentProc) string { return a.gossipAddr() }

func (s *serfImpl) command(a *agentProc, join string) []string {
	argv := []string{s.bin, "agent", "-node", a.Name, "-bind", a.gossipAddr(), "-rpc-addr", s.rpcAddr(a), "-log-level", "warn"}
	if join != "" {
		argv = append(argv, "-join", join)
	}
	return argv
}

func (s *serfImpl) connect(ctx context.Context, a *agentProc) error {
	var c *serfclient.RPCClient
	err := connectLoop(ctx, a, s.poll, func() error {
		var err error
		c, err = serfclient.ClientFromConfig(&serfclient.Config{Addr: s.rpcAddr(a), Timeout: 5 * time.Second})
		return err
	})
	if err == nil {
		a.mu.Lock()
		a.serf = c
		a.mu.Unlock()
	}
	return err
}

func (s *serfImpl) members(ctx context.Context, a *agentProc) ([]member, error) {
	a.mu.Lock()
	c := a.serf
	a.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%s: not connected", a.Name)
	}
	if c.IsClosed() {
		return nil, errors.New(a.Name + ": RPC connection closed")
	}
	ms, err := c.Members()
	if err != nil {
		return nil, err
	}
	out := make([]member, len(ms))
	for i, m := range ms {
		out[i] = member{Name: m.Name, Status: m.Status}
	}
	return out, nil
}

// buildShoal builds ./cmd/shoal into the cache.
func buildShoal(ctx context.Context, root string, logf func(string, ...any)) (string, error) {
	out := filepath.Join(root, ".cache", "bin", "shoal-scenario-shoal")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	logf("building shoal: go build -o %s ./cmd/shoal", out)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/shoal")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/shoal: %v\n%s", err, b)
	}
	return out, nil
}

// shoalBinary returns the shoal binary a run uses and how to describe it:
// the prebuilt bin, or built at rev (committed tree), or from the working
// tree.
func shoalBinary(ctx context.Context, root, bin, rev string, logf func(string, ...any)) (path, desc string, err error) {
	switch {
	case bin != "" && rev != "":
		return "", "", errors.New("-shoal-bin and -shoal-rev exclude each other")
	case bin != "":
		return bin, " (prebuilt binary " + bin + ")", nil
	case rev != "":
		path, hash, err := buildShoalRev(ctx, root, rev, logf)
		if err != nil {
			return "", "", err
		}
		return path, " @ " + hash + " (committed tree)", nil
	}
	if path, err = buildShoal(ctx, root, logf); err != nil {
		return "", "", err
	}
	return path, gitRev(root), nil
}

// buildShoalRev builds ./cmd/shoal as committed at rev (git archive into a
// scratch directory under .cache, so the working tree is not involved), or
// reuses the binary built earlier for the same commit.
func buildShoalRev(ctx context.Context, root, rev string, logf func(string, ...any)) (bin, hash string, err error) {
	b, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "--short=12", rev+"^{commit}").Output()
	if err != nil {
		return "", "", fmt.Errorf("git rev-parse %s: %w", rev, err)
	}
	hash = strings.TrimSpace(string(b))
	out := filepath.Join(root, ".cache", "bin", "shoal-"+hash)
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		logf("reusing %s", out)
		return out, hash, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", "", err
	}
	dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), "shoal-src-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(dir)
	logf("building shoal at %s (git archive %s) into %s", hash, rev, out)
	arch := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", hash)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := arch.StdoutPipe()
	if err != nil {
		return "", "", err
	}
	untar.Stdin = pipe
	if err := untar.Start(); err != nil {
		return "", "", err
	}
	var stderr strings.Builder
	arch.Stderr = &stderr
	if err := arch.Run(); err != nil {
		return "", "", fmt.Errorf("git archive %s: %v %s", hash, err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		return "", "", fmt.Errorf("untar git archive: %w", err)
	}
	build := exec.CommandContext(ctx, "go", "build", "-o", out+".tmp", "./cmd/shoal")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	if b, err := build.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./cmd/shoal at %s: %v\n%s", hash, err, b)
	}
	return out, hash, os.Rename(out+".tmp", out)
}

// serfVersion is the serf module version our go.mod selects.
func serfVersion(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Version}}", "github.com/hashicorp/serf")
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/hashicorp/serf: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// buildSerf builds the stock serf agent at version in a throwaway module, or
// reuses the cached binary.
func buildSerf(ctx context.Context, root, version string, logf func(string, ...any)) (string, error) {
	out := filepath.Join(root, ".cache", "bin", "serf-"+version)
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
		logf("reusing %s", out)
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), "serf-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	logf("building stock serf %s from the module proxy in %s", version, dir)
	tmpOut := out + ".tmp"
	steps := [][]string{
		{"go", "mod", "init", "x"},
		// The package path, not the module: go get then records go.sum
		// entries for everything cmd/serf imports.
		{"go", "get", "github.com/hashicorp/serf/cmd/serf@" + version},
		{"go", "build", "-o", tmpOut, "github.com/hashicorp/serf/cmd/serf"},
	}
	for _, st := range steps {
		cmd := exec.CommandContext(ctx, st[0], st[1:]...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(st, " "), err, b)
		}
	}
	if err := os.Rename(tmpOut, out); err != nil {
		return "", err
	}
	return out, nil
}

// repoRoot finds the directory of the shoal module's go.mod, upwards from the
// working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/shoalmesh/shoal\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the github.com/shoalmesh/shoal module (run from the repository)")
		}
		dir = parent
	}
}
