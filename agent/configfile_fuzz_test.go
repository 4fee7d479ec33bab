package agent

// The config file decoder, fuzzed through the public LoadFile and Validate
// only, so that the target outlives changes to the flag table.

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzConfigFileValidate feeds LoadFile arbitrary file contents: it never panics,
// refuses with ErrConfig, and a file it takes passes Validate or is
// refused by it with an error, and writes back (json.Marshal) to a file
// that loads to the same configuration.
func FuzzConfigFileValidate(f *testing.F) {
	// Seeds: the bodies of TestConfigFileErrorsSayWhere, and files that set
	// every kind of field.
	for _, s := range []string{
		"{\n  \"node_name\": \"a\",\n  \"bind\" \"127.0.0.1:7946\"\n}",
		"{\n  \"node_name\": 5\n}",
		"{\n  \"node_name\": \"a\",\n  \"node_nmae\": \"b\"\n}",
		`{"node_name": "a"} {"node_name": "b"}`,
		"{\"node_name\": \"a\"}\nx",
		"",
		"{\"retry_interval\": \"5\"}",
		"{\"node_name\": \"a\"}\n\n",
		`{"node_name":"n1","bind":"127.0.0.1:7946","profile":"local","tags":{"service":"web","port":"8080"},"priority":3,` +
			`"join":["127.0.0.2"],"retry_interval":"2s","reconnect_timeout":"1h","encrypt":"aGVsbG8taGVsbG8taGVsbG8=","label":"x",` +
			`"http_addr":"127.0.0.1:7950","sample_interval":"500ms","half_life":"5s","log_level":"debug","quorum":2,` +
			`"scale":{"provider":"dry-run","min":1,"max":5}}`,
		`{"p2p_bootstrap":["/ip4/1.2.3.4/udp/1/quic-v1/p2p/x"],"p2p_max_peers":-1,"retry_interval":"-5s","tags":{"scale":"1/2/3/4/5"}}`,
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxConfigFile+1 {
			return
		}
		path := filepath.Join(dir, "shoal.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c := DefaultConfig()
		if err := c.LoadFile(path); err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("LoadFile: %v does not wrap ErrConfig", err)
			}
			return
		}
		_ = c.Validate() // refusing is fine; panicking is not
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("a loaded config does not encode: %v", err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
		again := DefaultConfig()
		if err := again.LoadFile(path); err != nil {
			t.Fatalf("the config written back does not load: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("the config written back loads differently:\nfirst  %+v\nsecond %+v", c, again)
		}
	})
}
