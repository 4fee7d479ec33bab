//go:build containers

package containers

import (
	pollpkg "github.com/shoalmesh/shoal/internal/poll"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testenv"
)

// labelPID marks every Docker object a run creates with the test process's
// pid, so that a later run can remove what a run killed before its cleanup
// (a go test timeout panics without running t.Cleanup) left behind.
const labelPID = "org.shoalmesh.container-test.pid"

// run runs a command with a timeout and returns its trimmed stdout; the
// error carries stderr.
func run(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return strings.TrimSpace(out.String()), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(out.String()), nil
}

func docker(args ...string) (string, error) { return run(2*time.Minute, "docker", args...) }

func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// poll calls f until it returns nil or the timeout passes; it returns how
// long that took. Never a sleep for an outcome: only the poll period.
func poll(t testing.TB, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	return pollpkg.Every(t, timeout, 200*time.Millisecond, what, f)
}

// repoRoot is the module root, two levels up from this package.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	return root
}

// requireDocker skips the test, saying why, when no Docker engine answers
// (fails it under CI=true).
func requireDocker(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		testenv.RequireOrSkip(t, "container tier: no docker command on this machine (install Docker Engine to run it)")
	}
	if out, err := run(30*time.Second, "docker", "info", "--format", "{{.ServerVersion}}"); err != nil {
		testenv.RequireOrSkip(t, fmt.Sprintf("container tier: 'docker info' failed, no Docker engine reachable: %v", err))
	} else {
		t.Logf("Docker engine %s", out)
	}
}

// requireIsolationTools skips (fails under CI=true) unless the test can reach into the containers'
// network namespaces (root, nsenter, ip): that is how it keeps them off every
// network but the test's own (see isolate).
func requireIsolationTools(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.RequireOrSkip(t, "container tier: needs root, to remove the containers' default route with nsenter (they must reach nothing but each other)")
	}
	for _, tool := range []string{"nsenter", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.RequireOrSkip(t, "container tier: needs "+tool+" (util-linux, iproute2) to keep the containers off every other network")
		}
	}
}

// The static shoal binary, built once per test process: the agent in the
// image, and the CLI the tests check with.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// TestMain removes the shared binary's directory at the end.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func buildBinary(t testing.TB, root string) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "shoal-container-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "shoal")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/shoal")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("CGO_ENABLED=0 go build ./cmd/shoal: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// sweepStale removes containers, volumes and networks left by earlier runs
// whose process is gone (a run killed by a timeout runs no cleanup).
func sweepStale(t testing.TB) {
	t.Helper()
	dead := func(label string) bool {
		pid, err := strconv.Atoi(label)
		if err != nil || pid <= 0 {
			return false
		}
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	}
	list := func(kind string, args ...string) []string {
		out, err := docker(append(args, "--filter", "label="+labelPID, "--format", "{{.ID}}")...)
		if err != nil || out == "" {
			return nil
		}
		var stale []string
		for _, id := range strings.Fields(out) {
			lbl, err := docker(kind, "inspect", "-f", "{{index .Labels \""+labelPID+"\"}}", id)
			if kind == "container" {
				lbl, err = docker("container", "inspect", "-f", "{{index .Config.Labels \""+labelPID+"\"}}", id)
			}
			if err == nil && dead(lbl) {
				stale = append(stale, id)
			}
		}
		return stale
	}
	if ids := list("container", "ps", "-a"); len(ids) > 0 {
		t.Logf("removing %d containers left by a dead run", len(ids))
		docker(append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	if ids := list("volume", "volume", "ls", "-q"); len(ids) > 0 {
		docker(append([]string{"volume", "rm", "-f"}, ids...)...)
	}
	if ids := list("network", "network", "ls"); len(ids) > 0 {
		docker(append([]string{"network", "rm"}, ids...)...)
	}
}

// node is one agent container.
type node struct {
	name      string // node name (the container's hostname)
	container string
	volume    string
	ip        string
	port      int // API port published on 127.0.0.1
	join      []string
	priority  int
}

func (n *node) api() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

// cluster is the five agents, their network and the CLI that asks them.
type cluster struct {
	t       testing.TB
	bin     string // the shoal CLI on this host
	image   string
	network string
	subnet  string
	token   string
	key     string
	nodes   []*node
}

// createNetwork creates the test's network on a free 198.18.x.0/24 (the
// benchmarking range, RFC 2544, unlikely to be routed anywhere here). It is
// not "internal": Docker publishes no ports of containers on an internal
// network, and the API must be reached through 127.0.0.1. Instead, IP
// masquerading is off and isolate removes each container's default route,
// so the containers reach their own subnet and nothing else.
func (c *cluster) createNetwork(prefix string) {
	t := c.t
	var err error
	for range 8 {
		third := mrand.IntN(256)
		c.subnet = fmt.Sprintf("198.18.%d", third)
		_, err = docker("network", "create", "--driver", "bridge",
			"--subnet", c.subnet+".0/24", "--gateway", c.subnet+".1",
			"--opt", "com.docker.network.bridge.enable_ip_masquerade=false",
			"--opt", "com.docker.network.bridge.host_binding_ipv4=127.0.0.1",
			"--label", labelPID+"="+strconv.Itoa(os.Getpid()),
			c.network)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "overlap") {
			break
		}
	}
	t.Fatalf("creating the test network: %v", err)
}

// run starts node n's container (the first time).
func (c *cluster) run(n *node) {
	t := c.t
	args := []string{"run", "-d", "--name", n.container, "--hostname", n.name,
		"--network", c.network, "--ip", n.ip,
		"-p", fmt.Sprintf("127.0.0.1:%d:7950", n.port),
		"-v", n.volume + ":/data",
		"--label", labelPID + "=" + strconv.Itoa(os.Getpid()),
		"--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--stop-timeout", "15",
		"-e", "SHOAL_PROFILE=lan",
		"-e", "SHOAL_ENCRYPT=" + c.key,
		"-e", "SHOAL_API_TOKEN=" + c.token,
		"-e", "SHOAL_LABEL=container-test",
		"-e", "SHOAL_ENABLE_DEBUG=true", // POST /v1/leader/act, the action log the test replays
		"-e", "SHOAL_PRIORITY=" + strconv.Itoa(n.priority),
		// A node restarted after a graceful leave rejoins its snapshot's
		// members too (the first node has no join list).
		"-e", "SHOAL_REJOIN_AFTER_LEAVE=true",
	}
	if len(n.join) > 0 {
		args = append(args, "-e", "SHOAL_JOIN="+strings.Join(n.join, ","), "-e", "SHOAL_RETRY_JOIN=true")
	}
	args = append(args, c.image)
	mustDocker(t, args...)
	c.isolate(n)
}

// isolate removes the default route in n's network namespace: the container
// then reaches its own subnet (the other agents, and the bridge's address
// through which Docker's published port reaches it) and nothing else. It is
// needed after every start and every network connect, which recreate it.
func (c *cluster) isolate(n *node) {
	t := c.t
	pid := mustDocker(t, "inspect", "-f", "{{.State.Pid}}", n.container)
	if pid == "" || pid == "0" {
		t.Fatalf("%s is not running", n.container)
	}
	routes, err := run(10*time.Second, "nsenter", "-t", pid, "-n", "ip", "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	if routes == "" {
		return
	}
	if _, err := run(10*time.Second, "nsenter", "-t", pid, "-n", "ip", "route", "del", "default"); err != nil {
		t.Fatal(err)
	}
	if out, _ := run(10*time.Second, "nsenter", "-t", pid, "-n", "ip", "route", "get", "192.0.2.1"); out != "" {
		t.Fatalf("%s still routes outside its network: %s", n.name, out)
	}
}

func (c *cluster) start(n *node) {
	mustDocker(c.t, "start", n.container)
	c.isolate(n)
}

// cli runs the built shoal CLI against n's published API port and decodes
// its JSON output into out.
func (c *cluster) cli(n *node, out any, args ...string) error {
	args = append(args, "--http-addr", n.api(), "--token", c.token, "--format", "json")
	s, err := run(10*time.Second, c.bin, args...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), out)
}

// cliInside runs the image's own CLI in n's container (docker exec), for a
// container cut off from the network the published port goes through.
func (c *cluster) cliInside(n *node, out any, args ...string) error {
	args = append([]string{"exec", n.container, "/shoal"}, append(args, "--format", "json")...)
	s, err := run(20*time.Second, "docker", args...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), out)
}

func (c *cluster) members(n *node) ([]client.Member, error) {
	var ms []client.Member
	err := c.cli(n, &ms, "members")
	return ms, err
}

func (c *cluster) leader(n *node) (client.Leader, error) {
	var l client.Leader
	err := c.cli(n, &l, "leader")
	return l, err
}

// aliveView checks that n sees exactly want alive, each with load.
func (c *cluster) aliveView(n *node, want []*node, withLoad bool) error {
	ms, err := c.members(n)
	if err != nil {
		return err
	}
	alive := map[string]client.Member{}
	for _, m := range ms {
		if m.Status == "alive" {
			alive[m.Name] = m
		}
	}
	if len(alive) != len(want) {
		return fmt.Errorf("%s sees %d alive, want %d (%v)", n.name, len(alive), len(want), names(ms))
	}
	for _, w := range want {
		m, ok := alive[w.name]
		if !ok {
			return fmt.Errorf("%s does not see %s alive", n.name, w.name)
		}
		if m.Addr != w.ip {
			return fmt.Errorf("%s sees %s at %s, want %s", n.name, w.name, m.Addr, w.ip)
		}
		if withLoad && m.Load == nil {
			return fmt.Errorf("%s has no load from %s yet", n.name, w.name)
		}
	}
	return nil
}

func names(ms []client.Member) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Name+":"+m.Status)
	}
	return s
}

// allSee waits until every node in from sees exactly want alive.
func (c *cluster) allSee(from, want []*node, withLoad bool, timeout time.Duration, what string) time.Duration {
	return poll(c.t, timeout, what, func() error {
		for _, n := range from {
			if err := c.aliveView(n, want, withLoad); err != nil {
				return err
			}
		}
		return nil
	})
}

// agreed checks that every node in idx names one coordinator under one term
// above minTerm, that the coordinator is among them and acts, and that no
// other node acts; it returns the coordinator and term.
func (c *cluster) agreed(ns []*node, minTerm uint64) (*node, uint64, error) {
	var coord string
	var term uint64
	acting := 0
	for _, n := range ns {
		l, err := c.leader(n)
		if err != nil {
			return nil, 0, err
		}
		if l.Coordinator == "" || l.Term <= minTerm {
			return nil, 0, fmt.Errorf("%s names %q under term %d (want a term above %d)", n.name, l.Coordinator, l.Term, minTerm)
		}
		if coord != "" && (l.Coordinator != coord || l.Term != term) {
			return nil, 0, fmt.Errorf("%s names %s/%d, another %s/%d", n.name, l.Coordinator, l.Term, coord, term)
		}
		coord, term = l.Coordinator, l.Term
		if l.Acting {
			acting++
			if l.Node != coord {
				return nil, 0, fmt.Errorf("%s acts but names %s", n.name, coord)
			}
		}
	}
	var cn *node
	for _, n := range ns {
		if n.name == coord {
			cn = n
		}
	}
	if cn == nil {
		return nil, 0, fmt.Errorf("coordinator %s is not among %v", coord, nodeNames(ns))
	}
	if acting != 1 {
		return nil, 0, fmt.Errorf("%d nodes act (coordinator %s, term %d)", acting, coord, term)
	}
	return cn, term, nil
}

func nodeNames(ns []*node) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.name)
	}
	return s
}

func without(ns []*node, drop ...*node) []*node {
	var out []*node
next:
	for _, n := range ns {
		for _, d := range drop {
			if n == d {
				continue next
			}
		}
		out = append(out, n)
	}
	return out
}

// logsSince returns n's container logs (the agent logs to stderr) since t.
func (c *cluster) logsSince(n *node, since time.Time) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "docker", "logs", "--since", since.UTC().Format(time.RFC3339Nano), n.container).CombinedOutput()
	if err != nil {
		c.t.Logf("docker logs %s: %v", n.container, err)
	}
	return string(b)
}

// cleanup removes everything the run created; it runs even after a failure.
func (c *cluster) cleanup(t testing.TB, keepImage bool) {
	var ids, vols []string
	for _, n := range c.nodes {
		ids = append(ids, n.container)
		vols = append(vols, n.volume)
	}
	if t.Failed() {
		for _, n := range c.nodes {
			if out, err := run(30*time.Second, "sh", "-c", "docker logs --tail 40 "+n.container+" 2>&1"); err == nil {
				t.Logf("last log lines of %s:\n%s", n.name, out)
			}
		}
	}
	if len(ids) > 0 {
		docker(append([]string{"rm", "-f", "-v"}, ids...)...)
		docker(append([]string{"volume", "rm", "-f"}, vols...)...)
	}
	if _, err := docker("network", "rm", c.network); err != nil && !strings.Contains(err.Error(), "No such network") && !strings.Contains(err.Error(), "not found") {
		t.Logf("cleanup: %v", err)
	}
	if !keepImage {
		// The tag, if it still names this run's image, then the image.
		if id, err := docker("image", "inspect", "-f", "{{.ID}}", image); err == nil && (id == c.image || c.image == image) {
			docker("rmi", image)
		}
		if strings.HasPrefix(c.image, "sha256:") {
			docker("rmi", c.image)
		}
	}
	// Whatever is left with this run's label is a leak worth knowing of.
	for _, kind := range [][]string{{"ps", "-a", "-q"}, {"volume", "ls", "-q"}, {"network", "ls", "-q"}} {
		out, _ := docker(append(kind, "--filter", "label="+labelPID+"="+strconv.Itoa(os.Getpid()))...)
		if out != "" {
			t.Errorf("cleanup left %v behind: %s", kind, out)
		}
	}
}
