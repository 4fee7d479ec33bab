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
	if err := app.Run([]string{"shoal", "agent", "--config", file, "--label", "flag-label", "--tag", "zone=a"}); err != nil {
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
