package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// leafFields walks a Config for its exported leaf fields (recursing into
// struct sections such as Scale), each with its address. Written apart from
// configFields so that the test does not trust the code it checks.
func leafFields(c *Config) map[uintptr]string {
	out := map[uintptr]string{}
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(Duration(0)) {
				walk(v.Field(i), prefix+f.Name+".")
				continue
			}
			out[v.Field(i).Addr().Pointer()] = prefix + f.Name
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// TestSettingsCoverConfig: every exported Config field, those of its
// sections included, has exactly one entry in the settings table, with a
// flag, a variable, a config key, help and a group; every entry fills a
// real field; no two entries share a flag, a variable or a file key.
func TestSettingsCoverConfig(t *testing.T) {
	var c Config
	fields := leafFields(&c)
	owners := map[string][]string{}
	names, envs, keys := map[string]bool{}, map[string]bool{}, map[string]string{}
	flagRE := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	for _, s := range Settings() {
		if !flagRE.MatchString(s.Name) || names[s.Name] {
			t.Errorf("setting %q: want a unique lower-case flag name with dashes", s.Name)
		}
		names[s.Name] = true
		if !strings.HasPrefix(s.Env, "SHOAL_") || strings.ToUpper(s.Env) != s.Env || envs[s.Env] {
			t.Errorf("--%s: variable %q: want a unique SHOAL_* name in capitals", s.Name, s.Env)
		}
		envs[s.Env] = true
		if strings.TrimSpace(s.Help) == "" {
			t.Errorf("--%s has no help text", s.Name)
		}
		if !slices.Contains(Categories, s.Category) {
			t.Errorf("--%s: category %q is not one of %q", s.Name, s.Category, Categories)
		}
		if s.Field == nil {
			t.Errorf("--%s fills no field", s.Name)
			continue
		}
		path, ok := fields[reflect.ValueOf(s.Field(&c)).Pointer()]
		if !ok {
			t.Errorf("--%s: Field returns %T, which is not a field of Config", s.Name, s.Field(&c))
			continue
		}
		owners[path] = append(owners[path], s.Name)
		if s.FieldPath() != path {
			t.Errorf("--%s: FieldPath %q, want %q", s.Name, s.FieldPath(), path)
		}
		_ = s.Kind() // panics on a field type the flags and the file cannot take
		for _, k := range []string{s.Name, s.LegacyKey()} {
			if k == "" {
				continue
			}
			if other, dup := keys[k]; dup {
				t.Errorf("config key %q belongs to --%s and --%s", k, other, s.Name)
			}
			keys[k] = s.Name
		}
	}
	for _, path := range fields {
		if n := len(owners[path]); n != 1 {
			t.Errorf("Config.%s has %d settings %q: want exactly one entry in the table in settings.go", path, n, owners[path])
		}
	}
}

// sample returns a value for the setting that is not its default: as JSON
// for the file, and as the strings a flag or variable takes.
func sample(t *testing.T, s Setting) (js string, flagVals []string, env string) {
	t.Helper()
	d := DefaultConfig()
	switch v := s.Field(&d).(type) {
	case *string:
		return `"sample-value"`, []string{"sample-value"}, "sample-value"
	case *bool:
		b := map[bool]string{true: "true", false: "false"}[!*v]
		return b, []string{b}, b
	case *int:
		n := jsonOf(t, *v+7)
		return n, []string{n}, n
	case *float64:
		f := jsonOf(t, *v+0.25)
		return f, []string{f}, f
	case *Duration:
		x := time.Duration(*v) + 1500*time.Millisecond
		return jsonOf(t, x.String()), []string{x.String()}, x.String()
	case *[]string:
		return `["a1","b2"]`, []string{"a1", "b2"}, "a1,b2"
	case *map[string]string:
		return `{"k1":"v1","k2":"v2"}`, []string{"k1=v1", "k2=v2"}, "k1=v1,k2=v2"
	}
	t.Fatalf("--%s: no sample for %T", s.Name, s.Field(&d))
	return
}

func jsonOf(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// fileWith writes a config file with one key set to js; a key with a dot
// ("scale.min") goes into its section, as files of the old layout have it.
func fileWith(t *testing.T, key, js string) string {
	body := `{"` + key + `": ` + js + `}`
	if sec, k, ok := strings.Cut(key, "."); ok {
		body = `{"` + sec + `": {"` + k + `": ` + js + `}}`
	}
	f := filepath.Join(t.TempDir(), "shoal.json")
	if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestConfigFileTakesFlagNamesAndOldKeys: each setting's key (its flag's
// name) and its old key (the json tag) fill the same field with the same
// value; both at once are refused, naming both.
func TestConfigFileTakesFlagNamesAndOldKeys(t *testing.T) {
	for _, s := range Settings() {
		js, _, _ := sample(t, s)
		byName := DefaultConfig()
		if err := byName.LoadFile(fileWith(t, s.Name, js)); err != nil {
			t.Errorf("--%s: key %q: %v", s.Name, s.Name, err)
			continue
		}
		if reflect.DeepEqual(byName, DefaultConfig()) {
			t.Errorf("--%s: key %q = %s changed nothing", s.Name, s.Name, js)
		}
		lk := s.LegacyKey()
		if lk == "" {
			continue
		}
		byOld := DefaultConfig()
		if err := byOld.LoadFile(fileWith(t, lk, js)); err != nil {
			t.Errorf("--%s: old key %q: %v", s.Name, lk, err)
			continue
		}
		if !reflect.DeepEqual(byName, byOld) {
			t.Errorf("--%s: key %q and old key %q give different configs:\n%+v\n%+v", s.Name, s.Name, lk, byName, byOld)
		}
		both := `{"` + s.Name + `": ` + js + `, "` + lk + `": ` + js + `}`
		if sec, k, ok := strings.Cut(lk, "."); ok {
			both = `{"` + s.Name + `": ` + js + `, "` + sec + `": {"` + k + `": ` + js + `}}`
		}
		c := DefaultConfig()
		err := c.decodeFile("both.json", []byte(both))
		if err == nil || !strings.Contains(err.Error(), `"`+s.Name+`"`) || !strings.Contains(err.Error(), `"`+lk+`"`) {
			t.Errorf("--%s: file with both %q and %q: %v; want an error naming both", s.Name, s.Name, lk, err)
		}
	}
}

func TestConfigFileRefusesRepeatsAndNamesUnknownKeys(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"node": "a", "node": "b"}`, `both.json:1:15: key "node" is given twice`},
		{`{"node_name": "a",` + "\n" + ` "node": "b"}`, `both.json:2:2: keys "node_name" and "node" both set --node`},
		{`{"retry_joins": true}`, `unknown key "retry_joins" (did you mean "retry_join"?)`},
		{`{"scale": {"provder": "x"}}`, `unknown key "scale.provder" (did you mean "scale.provider"?)`},
		{`{"scale": 5}`, `"scale" (a section of the old layout) wants a JSON object, got a number`},
		{`["node"]`, `the config wants a JSON object, got an array`},
		{`{"` + strings.Repeat("k", 5000) + `": 1}`, `...(5000 bytes)`},
		{`{"retry-interval": "` + strings.Repeat("9", 5000) + `"}`, `...(5000 bytes)`},
		{`{"retry-interval": 1e300}`, `out of range`},
		{`{"tag": {"a": 5}}`, `"tag" wants string, got a JSON number`},
		{`{"join": "10.0.0.2"}`, `"join" wants []string, got a JSON string`},
	} {
		c := DefaultConfig()
		err := c.decodeFile("both.json", []byte(tc.body))
		if err == nil || !strings.Contains(err.Error(), tc.want) || len(err.Error()) > 400 {
			t.Errorf("%.60s: %v; want %q in an error of at most 400 bytes", tc.body, err, tc.want)
		}
	}
}

// TestConfigReferenceIsCurrent: docs/config.md is what the table makes.
func TestConfigReferenceIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatalf("%v: generate it with `go generate ./agent`", err)
	}
	if string(got) != ConfigReference() {
		t.Fatal("docs/config.md is stale (the settings table or the presets changed): regenerate it with `go generate ./agent` " +
			"(or, from the repository root, `go run ./internal/configdoc -o docs/config.md`) and commit it")
	}
	for _, s := range Settings() {
		if !strings.Contains(string(got), "`--"+s.Name+"`") {
			t.Errorf("docs/config.md does not list --%s", s.Name)
		}
	}
}
