package agent

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigFileErrorsSayWhere(t *testing.T) {
	cases := []struct {
		name, body, want string
	}{
		{"syntax", "{\n  \"node_name\": \"a\",\n  \"bind\" \"127.0.0.1:7946\"\n}", ":3:10: "},
		{"type", "{\n  \"node_name\": 5\n}", `:2:17: "node_name" wants string, got a JSON number`},
		{"unknown key", "{\n  \"node_name\": \"a\",\n  \"node_nmae\": \"b\"\n}", `node_nmae`},
		{"trailing object", `{"node_name": "a"} {"node_name": "b"}`, ":1:20: data after the config object"},
		{"trailing garbage", "{\"node_name\": \"a\"}\nx", ":2:1"},
		{"empty", "", "is empty"},
		{"bad duration", "{\"retry_interval\": \"5\"}", `"5"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "shoal.json")
			if err := os.WriteFile(f, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			c := DefaultConfig()
			err := c.LoadFile(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "shoal.json") {
				t.Fatalf("LoadFile(%q) = %v; want the file name and %q", tc.body, err, tc.want)
			}
		})
	}
	ok := filepath.Join(t.TempDir(), "ok.json")
	os.WriteFile(ok, []byte("{\"node_name\": \"a\"}\n\n"), 0o600)
	c := DefaultConfig()
	if err := c.LoadFile(ok); err != nil || c.NodeName != "a" {
		t.Fatalf("a valid file with trailing newlines: %v (node %q)", err, c.NodeName)
	}
}

func TestListenAddressesTakeLocalhostGossipDoesNot(t *testing.T) {
	c := DefaultConfig()
	c.Bind = "127.0.0.1:7946" // the default 0.0.0.0 needs a gossip key
	c.HTTPAddr = "localhost:7950"
	if err := c.Validate(); err != nil {
		t.Fatalf("http-addr localhost:7950 refused: %v", err)
	}
	c.Bind = "localhost:7946"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "IP address") {
		t.Fatalf("bind localhost:7946: %v; want the IP-only reason", err)
	}
	c = DefaultConfig()
	c.HTTPAddr = "example.internal:7950"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "API token") {
		t.Fatalf("a non-loopback name without a token: %v", err)
	}
}

func TestHugeValuesAreCutInErrors(t *testing.T) {
	c := DefaultConfig()
	c.Bind = strings.Repeat("9", 10_000)
	err := c.Validate()
	if err == nil || len(err.Error()) > 300 || !strings.Contains(err.Error(), "(10000 bytes)") {
		t.Fatalf("error for a 10 KB bind (%d bytes): %.200v", len(err.Error()), err)
	}
}

// FuzzConfigFile: whatever the file holds, decoding returns (no panic), a
// refusal is a configuration error, and its message stays short (values
// quoted back are cut).
func FuzzConfigFile(f *testing.F) {
	for _, seed := range []string{
		`{"node": "a", "retry-join": true, "join": ["10.0.0.2"], "tag": {"role": "db"}}`,
		`{"node_name": "a", "scale": {"provider": "dry-run", "min": 2, "up_window": "30s"}}`,
		`{"node": "a", "node_name": "b"}`, `{"scale": {"options": {"k": "v"}}, "scale-opt": {"k": "w"}}`,
		`{"retry_interval": 1.5}`, `{"retry-interval": "5"}`, `{"scale": []}`, `[]`, `null`, `{} {}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := DefaultConfig()
		err := c.decodeFile("f.json", b)
		if err == nil {
			return
		}
		if !errors.Is(err, ErrConfig) {
			t.Fatalf("%q: %v is not an ErrConfig", b, err)
		}
		if len(err.Error()) > 600 {
			t.Fatalf("%q: error of %d bytes: %.300s", b, len(err.Error()), err)
		}
	})
}
