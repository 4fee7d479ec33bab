package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
)

// TestConfigPrecedence: defaults, then the file, then SHOAL_* variables and
// flags (a flag beats its variable).
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "shoal.json")
	os.WriteFile(file, []byte(`{"node_name":"from-file","profile":"wan","tags":{"role":"db"},"retry_interval":"3s","label":"file-label"}`), 0o600)
	t.Setenv("SHOAL_PROFILE", "local")
	t.Setenv("SHOAL_LABEL", "env-label")
	var got agent.Config
	app := &cli.App{Commands: []*cli.Command{{Name: "agent", Flags: agentFlags(), Action: func(c *cli.Context) error {
		var err error
		got, err = agentConfig(c)
		return err
	}}}}
	if err := app.Run([]string{"shoal", "agent", "--config", file, "--label", "flag-label", "--tag", "zone=a", "--insecure-gossip"}); err != nil {
		t.Fatal(err)
	}
	if got.NodeName != "from-file" {
		t.Errorf("node name %q: the file should set it", got.NodeName)
	}
	if got.Profile != "local" {
		t.Errorf("profile %q: SHOAL_PROFILE should beat the file", got.Profile)
	}
	if got.Label != "flag-label" {
		t.Errorf("label %q: the flag should beat SHOAL_LABEL and the file", got.Label)
	}
	if time.Duration(got.RetryInterval) != 3*time.Second {
		t.Errorf("retry interval %v from the file", time.Duration(got.RetryInterval))
	}
	if got.Tags["role"] != "db" || got.Tags["zone"] != "a" {
		t.Errorf("tags %v: file tags and flag tags both kept", got.Tags)
	}
	if got.HTTPAddr != "127.0.0.1:7950" {
		t.Errorf("http addr %q: default expected", got.HTTPAddr)
	}
}

func TestConfigFileUnknownFieldNamed(t *testing.T) {
	file := filepath.Join(t.TempDir(), "shoal.json")
	os.WriteFile(file, []byte(`{"node_nmae":"typo"}`), 0o600)
	cfg := agent.DefaultConfig()
	err := cfg.LoadFile(file)
	if err == nil || !contains(err.Error(), "node_nmae") {
		t.Fatalf("want an error naming the unknown field, got %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// TestGossipNeedsAKeyOffLoopback: gossip on an address other than loopback
// needs a key, or --insecure-gossip; the error names the address and both
// ways out.
func TestGossipNeedsAKeyOffLoopback(t *testing.T) {
	keyed := t.TempDir()
	os.WriteFile(filepath.Join(keyed, "keyring.json"), []byte(`["cmVwbGF5LXRlc3Qta2V5IQ=="]`), 0o600)
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" : accepted
	}{
		{"all interfaces, no key", []string{"--bind", "0.0.0.0:7946"}, nil, "gossip bind 0.0.0.0:7946 is not a loopback address and no gossip key is set"},
		{"a LAN address, no key", []string{"--bind", "10.1.2.3:7946"}, nil, "gossip bind 10.1.2.3:7946"},
		{"the default bind, no key", nil, nil, "gossip bind 0.0.0.0:7946"},
		{"--insecure-gossip", []string{"--bind", "0.0.0.0:7946", "--insecure-gossip"}, nil, ""},
		{"SHOAL_INSECURE_GOSSIP", []string{"--bind", "0.0.0.0:7946"}, map[string]string{"SHOAL_INSECURE_GOSSIP": "true"}, ""},
		{"--insecure-gossip=false", []string{"--bind", "0.0.0.0:7946", "--insecure-gossip=false"}, nil, "--insecure-gossip"},
		{"--encrypt", []string{"--bind", "0.0.0.0:7946", "--encrypt", "cmVwbGF5LXRlc3Qta2V5IQ=="}, nil, ""},
		{"SHOAL_ENCRYPT", []string{"--bind", "0.0.0.0:7946"}, map[string]string{"SHOAL_ENCRYPT": "cmVwbGF5LXRlc3Qta2V5IQ=="}, ""},
		{"a keyring kept in the data dir", []string{"--bind", "0.0.0.0:7946", "--data-dir", keyed}, nil, ""},
		{"loopback, no key", []string{"--bind", "127.0.0.5:7946"}, nil, ""},
		{"p2p has its own rule", []string{"--bind", "0.0.0.0:7946", "--profile", "p2p"}, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			app := &cli.App{Commands: []*cli.Command{{Name: "agent", Flags: agentFlags(), Action: func(cc *cli.Context) error {
				_, err := agentConfig(cc)
				return err
			}}}}
			err := app.Run(append([]string{"shoal", "agent", "--node", "n1"}, c.args...))
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range []string{c.want, "--encrypt", "SHOAL_ENCRYPT", "--insecure-gossip", "SHOAL_INSECURE_GOSSIP=true"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
