package main

// The API's TLS, mutual TLS and token scopes, with the built binary as the
// agent and as the client (issue 13, the API part).

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testbin"
	"github.com/shoalmesh/shoal/internal/testpki"
)

// startSecured starts an agent with agentArgs and waits until 'shoal info'
// with clientArgs (its TLS files and token) answers.
func startSecured(t *testing.T, name, ip string, clientArgs []string, agentArgs ...string) *proc {
	t.Helper()
	p := &proc{http: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")), gossip: fmt.Sprintf("%s:%d", ip, freePort(t, ip)), stderr: &testbin.SyncBuffer{}}
	args := append([]string{"agent", "--node", name, "--bind", p.gossip, "--profile", "local", "--http-addr", p.http,
		"--data-dir", t.TempDir(), "--sample-interval", "200ms", "--log-level", "info"}, agentArgs...)
	p.cmd = exec.Command(shoalBin, args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	})
	poll(t, 10*time.Second, name+" API up", func() error {
		code, _, stderr := runCLI(t, append([]string{"info", "--http-addr", p.http}, clientArgs...)...)
		if code != 0 {
			return fmt.Errorf("info: exit %d: %s (agent: %s)", code, stderr, lastLine(p.stderr.String()))
		}
		return nil
	})
	return p
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func membersOf(t *testing.T, args ...string) []client.Member {
	t.Helper()
	code, out, stderr := runCLI(t, append([]string{"members", "--format", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("members %v: exit %d: %s", args, code, stderr)
	}
	var ms []client.Member
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestCLIOverTLSAndMutualTLS(t *testing.T) {
	ca := testpki.NewCA(t, "e2e")
	srv, cli := ca.Server(t, "agent"), ca.Client(t, "operator")
	withCert := []string{"--ca", ca.File, "--cert", cli.CertFile, "--key", cli.KeyFile}
	a := startSecured(t, "tls-1", "127.0.0.51", withCert,
		"--tls-cert", srv.CertFile, "--tls-key", srv.KeyFile, "--tls-client-ca", ca.File)
	b := startAgent(t, "tls-2", "127.0.0.52", "")
	if ms := membersOf(t, append([]string{"--http-addr", a.http}, withCert...)...); len(ms) != 1 || ms[0].Name != "tls-1" {
		t.Fatalf("members over mutual TLS: %+v", ms)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no client certificate", []string{"--ca", ca.File}, "--cert and --key"},
		{"plain HTTP", nil, "--ca"},
		{"no CA", []string{"--http-addr", "https://" + a.http, "--cert", cli.CertFile, "--key", cli.KeyFile}, "--ca"},
	} {
		args := append([]string{"members", "--http-addr", a.http}, c.args...)
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(lastLine(stderr), c.want) {
			t.Errorf("%s: exit %d, %q; want exit 1 naming %q", c.name, code, lastLine(stderr), c.want)
		}
	}
	if code, _, stderr := runCLI(t, "members", "--http-addr", "http://"+a.http, "--ca", ca.File); code != 2 || !strings.Contains(stderr, "http://") {
		t.Errorf("--ca with an http:// address: exit %d, %s; want a usage error", code, stderr)
	}
	// The same files from the environment; with mutual TLS and no token
	// a verified client may act: join the second agent.
	cmd := exec.Command(shoalBin, "join", "--http-addr", a.http, b.gossip)
	cmd.Env = append(os.Environ(), "SHOAL_CA="+ca.File, "SHOAL_CERT="+cli.CertFile, "SHOAL_KEY="+cli.KeyFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("join over mutual TLS with SHOAL_CA, SHOAL_CERT, SHOAL_KEY: %v: %s", err, out)
	}
	poll(t, 10*time.Second, "tls-1 lists tls-2", func() error {
		if ms := membersOf(t, append([]string{"--http-addr", a.http}, withCert...)...); len(ms) != 2 {
			return fmt.Errorf("%d members", len(ms))
		}
		return nil
	})
}

func TestAgentReloadsTLSOnSIGHUP(t *testing.T) {
	ca := testpki.NewCA(t, "reload")
	first, second := ca.Server(t, "first"), ca.Server(t, "second")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	first.WriteTo(t, cert, key)
	a := startSecured(t, "hup-1", "127.0.0.53", []string{"--ca", ca.File}, "--tls-cert", cert, "--tls-key", key)
	served := func() (string, error) {
		conn, err := tls.Dial("tcp", a.http, &tls.Config{RootCAs: ca.Pool()})
		if err != nil {
			return "", err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
	}
	if cn, err := served(); err != nil || cn != "first" {
		t.Fatalf("serves %q (%v), want first", cn, err)
	}
	second.WriteTo(t, cert, key)
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the agent serves the new certificate after SIGHUP", func() error {
		cn, err := served()
		if err == nil && cn != "second" {
			err = fmt.Errorf("still serves %q", cn)
		}
		return err
	})
	// A reload that fails (a key that is not the certificate's) logs and
	// keeps the certificate in use.
	if err := os.WriteFile(key, first.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "the failed reload is logged", func() error {
		if !strings.Contains(a.stderr.String(), "tls reload failed") {
			return fmt.Errorf("log: %s", lastLine(a.stderr.String()))
		}
		return nil
	})
	if cn, err := served(); err != nil || cn != "second" {
		t.Fatalf("after a failed reload serves %q (%v), want second", cn, err)
	}
	if code, _, stderr := runCLI(t, "info", "--http-addr", a.http, "--ca", ca.File); code != 0 {
		t.Fatalf("info after a failed reload: exit %d: %s", code, stderr)
	}
}

func TestCLITokenScopes(t *testing.T) {
	a := startSecured(t, "tok-1", "127.0.0.54", []string{"--token", "read-secret"},
		"--api-token", "admin-secret", "--api-read-token", "read-secret")
	b := startAgent(t, "tok-2", "127.0.0.55", "")
	if ms := membersOf(t, "--http-addr", a.http, "--token", "read-secret"); len(ms) != 1 {
		t.Fatalf("members with the read token: %+v", ms)
	}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"join with the read token", []string{"--token", "read-secret"}, "(403): POST /v1/join needs the admin scope"},
		{"join without a token on loopback", nil, "(401): POST /v1/join needs an API token"},
		{"join with a wrong token", []string{"--token", "guess"}, "(401): missing or wrong API token"},
	} {
		args := append(append([]string{"join", "--http-addr", a.http}, c.args...), b.gossip) // flags before the address
		code, _, stderr := runCLI(t, args...)
		if code != 1 || !strings.Contains(lastLine(stderr), c.want) {
			t.Errorf("%s: exit %d, %q; want exit 1 with %q", c.name, code, lastLine(stderr), c.want)
		}
	}
	if ms := membersOf(t, "--http-addr", a.http, "--token", "read-secret"); len(ms) != 1 {
		t.Fatalf("a refused join joined: %+v", ms)
	}
	if code, _, stderr := runCLI(t, "join", "--http-addr", a.http, "--token", "admin-secret", b.gossip); code != 0 {
		t.Fatalf("join with the admin token: exit %d: %s", code, stderr)
	}
	poll(t, 10*time.Second, "tok-1 lists tok-2 after the admin's join", func() error {
		if ms := membersOf(t, "--http-addr", a.http, "--token", "read-secret"); len(ms) != 2 {
			return fmt.Errorf("%d members", len(ms))
		}
		return nil
	})
}
