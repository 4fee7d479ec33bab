package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	serfclient "github.com/hashicorp/serf/client"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/tools/internal/procs"
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
	// Proc is the process (PID, Log, Started, Exited, Kill, ...), set by
	// procSet.start.
	*procs.Proc
	impl  impl
	Index int
	Name  string
	IP    string
	Dir   string
	// P2PAddr is the agent's QUIC multiaddr with its peer ID (p2p profile).
	P2PAddr string

	mu    sync.Mutex
	shoal *client.Client
	serf  *serfclient.RPCClient
}

func (a *agentProc) gossipAddr() string { return fmt.Sprintf("%s:%d", a.IP, gossipPort) }

// procSet owns every agent the scenario starts, in a temporary directory,
// and kills them all at the end.
type procSet struct {
	g      *procs.Group
	mu     sync.Mutex
	agents []*agentProc
}

// newProcSet makes the temporary directory (os.MkdirTemp pattern).
func newProcSet(pattern string) (*procSet, error) {
	g, err := procs.NewGroup(pattern)
	if err != nil {
		return nil, err
	}
	return &procSet{g: g}, nil
}

// start launches agent idx of im, joined to join ("" for none). Its
// environment is the runner's without SHOAL_* variables, so that nothing in
// the caller's environment (an API token, a profile) changes the agents.
func (ps *procSet) start(im impl, idx int, join string) (*agentProc, error) {
	a := &agentProc{impl: im, Index: idx, Name: fmt.Sprintf("%s-%02d", im.Name(), idx),
		IP: fmt.Sprintf("%s.%d", im.Net(), idx)}
	a.Dir = filepath.Join(ps.g.Dir, a.Name)
	var extra []string
	if e, ok := im.(interface{ extraEnv() []string }); ok {
		extra = e.extraEnv()
	}
	p, err := ps.g.Start(procs.Spec{Name: a.Name, Argv: im.command(a, join), Dir: a.Dir,
		Env: procs.EnvWithout("SHOAL_", extra...), Log: filepath.Join(a.Dir, "agent.log")})
	if err != nil {
		return nil, err
	}
	a.Proc = p
	ps.mu.Lock()
	ps.agents = append(ps.agents, a)
	ps.mu.Unlock()
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

// close closes the connections to the agents, kills every agent still
// running and removes the temporary directory.
func (ps *procSet) close() error {
	ps.mu.Lock()
	agents := append([]*agentProc(nil), ps.agents...)
	ps.mu.Unlock()
	for _, a := range agents {
		a.closeConn()
	}
	if err := ps.g.KillAll(); err != nil {
		fmt.Fprintf(os.Stderr, "shoal-scenario: %v\n", err)
	}
	return os.RemoveAll(ps.g.Dir)
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
	err := a.WaitReady(ctx, s.poll, func() error {
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
	err := a.WaitReady(ctx, s.poll, func() error {
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

// buildShoal builds ./cmd/shoal of the working tree into the cache.
func buildShoal(ctx context.Context, root string, logf func(string, ...any)) (string, error) {
	out := filepath.Join(procs.CacheDir(root), "shoal-scenario-shoal")
	logf("building shoal: go build -o %s ./cmd/shoal", out)
	return out, procs.BuildShoal(ctx, root, out)
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
		path, hash, err := procs.BuildShoalAt(ctx, root, rev, logf)
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
	out := filepath.Join(procs.CacheDir(root), "serf-"+version)
	reused, err := procs.BuildOnce(out, func(tmpOut string) error {
		dir, err := os.MkdirTemp(filepath.Join(root, ".cache"), "serf-build-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		logf("building stock serf %s from the module proxy in %s", version, dir)
		env := []string{"GOWORK=off", "GOFLAGS=-mod=mod"}
		for _, st := range [][]string{
			{"go", "mod", "init", "x"},
			// The package path, not the module: go get then records go.sum
			// entries for everything cmd/serf imports.
			{"go", "get", "github.com/hashicorp/serf/cmd/serf@" + version},
			{"go", "build", "-o", tmpOut, "github.com/hashicorp/serf/cmd/serf"},
		} {
			if err := procs.Run(ctx, dir, env, st...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if reused {
		logf("reusing %s", out)
	}
	return out, nil
}
