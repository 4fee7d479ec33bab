package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
)

// buildWith runs 'shoal agent args...' far enough to build the Config (not
// validated: the samples are not all valid values, only distinct ones).
func buildWith(t *testing.T, args ...string) agent.Config {
	t.Helper()
	var got agent.Config
	app := &cli.App{Commands: []*cli.Command{{Name: "agent", Flags: agentFlags(), Action: func(c *cli.Context) error {
		var err error
		got, err = buildAgentConfig(c)
		return err
	}}}}
	if err := app.Run(append([]string{"shoal", "agent"}, args...)); err != nil {
		t.Fatalf("shoal agent %q: %v", args, err)
	}
	return got
}

// settingSample is a value for s that is not its default, written as the
// file (JSON), the flag (one argument per repetition) and the variable take it.
func settingSample(t *testing.T, s agent.Setting) (js string, flagVals []string, env string) {
	t.Helper()
	d := agent.DefaultConfig()
	str := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	switch v := s.Field(&d).(type) {
	case *string:
		return `"sample-value"`, []string{"sample-value"}, "sample-value"
	case *bool:
		b := str(!*v)
		return b, []string{b}, b
	case *int:
		n := str(*v + 7)
		return n, []string{n}, n
	case *float64:
		f := str(*v + 0.25)
		return f, []string{f}, f
	case *agent.Duration:
		x := (time.Duration(*v) + 1500*time.Millisecond).String()
		return str(x), []string{x}, x
	case *[]string:
		return `["a1","b2"]`, []string{"a1", "b2"}, "a1,b2"
	case *map[string]string:
		return `{"k1":"v1","k2":"v2"}`, []string{"k1=v1", "k2=v2"}, "k1=v1,k2=v2"
	}
	t.Fatalf("--%s: no sample for %T", s.Name, s.Field(&d))
	return
}

// TestEverySettingSameByFlagEnvAndFile: for every setting of the table, the
// flag, the SHOAL_* variable, the config file key and the file's old key
// give the same Config, and it is not the default one.
func TestEverySettingSameByFlagEnvAndFile(t *testing.T) {
	def := buildWith(t)
	if !reflect.DeepEqual(def, agent.DefaultConfig()) {
		t.Fatalf("no flags: %+v, want the defaults %+v", def, agent.DefaultConfig())
	}
	dir := t.TempDir()
	for _, s := range agent.Settings() {
		t.Run(s.Name, func(t *testing.T) {
			js, vals, env := settingSample(t, s)
			var args []string
			for _, v := range vals {
				args = append(args, "--"+s.Name+"="+v)
			}
			byFlag := buildWith(t, args...)
			if reflect.DeepEqual(byFlag, def) {
				t.Fatalf("%q changed nothing", args)
			}
			t.Setenv(s.Env, env)
			byEnv := buildWith(t)
			os.Unsetenv(s.Env)
			if !reflect.DeepEqual(byEnv, byFlag) {
				t.Errorf("%s=%s gives\n%+v\nbut %q gives\n%+v", s.Env, env, byEnv, args, byFlag)
			}
			keys := []string{s.Name}
			if lk := s.LegacyKey(); lk != "" {
				keys = append(keys, lk)
			}
			for j, key := range keys {
				body := `{"` + key + `": ` + js + `}`
				if sec, k, ok := strings.Cut(key, "."); ok {
					body = `{"` + sec + `": {"` + k + `": ` + js + `}}`
				}
				file := filepath.Join(dir, strings.Repeat("x", j)+s.Name+".json")
				if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
				if byFile := buildWith(t, "--config", file); !reflect.DeepEqual(byFile, byFlag) {
					t.Errorf("file %s gives\n%+v\nbut %q gives\n%+v", body, byFile, args, byFlag)
				}
			}
		})
	}
}

// TestFlagsComeFromTheTable: 'shoal agent' has --config and one flag per
// setting, each with its variable and the setting's help group.
func TestFlagsComeFromTheTable(t *testing.T) {
	flags := agentFlags()
	if len(flags) != len(agent.Settings())+1 {
		t.Errorf("%d agent flags for %d settings (+ --config)", len(flags), len(agent.Settings()))
	}
	for _, f := range flags[1:] {
		name := f.Names()[0]
		s, ok := agent.LookupSetting(name)
		if !ok {
			t.Errorf("--%s has no setting", name)
			continue
		}
		df := f.(cli.DocGenerationFlag)
		if env := df.GetEnvVars(); len(env) != 1 || env[0] != s.Env {
			t.Errorf("--%s: variables %q, want %s", name, env, s.Env)
		}
		if cat := f.(cli.CategorizableFlag).GetCategory(); cat != s.Category {
			t.Errorf("--%s in help group %q, want %q", name, cat, s.Category)
		}
	}
}

// TestProxyInflightCountFlag: the proxy's in-flight signal is a setting
// (on by default), no longer a hidden variable.
func TestProxyInflightCountFlag(t *testing.T) {
	if c := buildWith(t); !c.ProxyInflightCount {
		t.Error("the in-flight count is off by default")
	}
	if c := buildWith(t, "--proxy-inflight-count=false"); c.ProxyInflightCount {
		t.Error("--proxy-inflight-count=false left it on")
	}
	t.Setenv("SHOAL_PROXY_INFLIGHT_COUNT", "false")
	if c := buildWith(t); c.ProxyInflightCount {
		t.Error("SHOAL_PROXY_INFLIGHT_COUNT=false left it on")
	}
}
