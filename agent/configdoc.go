package agent

import (
	"fmt"
	"strings"
)

// ConfigReference renders docs/config.md from the settings table and the
// profiles' presets. `go generate ./agent` writes it;
// TestConfigReferenceIsCurrent fails when the file is stale.
func ConfigReference() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Configuration reference\n\n")
	p("<!-- Generated from the settings table in agent/settings.go by `go generate ./agent`; do not edit by hand. -->\n\n")
	p("Every setting of `shoal agent` can be given as a flag, as a `SHOAL_*` environment variable, or as a key\n")
	p("of the JSON config file named by `--config FILE` (or `SHOAL_CONFIG`). A flag beats its variable, a\n")
	p("variable beats the file, and the file beats the defaults. `shoal agent --help` shows the same settings\n")
	p("in the same groups.\n\n")
	p("- **Config file**: one JSON object whose keys are the flags' names. Files written for earlier versions\n")
	p("  used other keys (`node_name`, and a `scale` object with `provider`, `min` ...); those are shown\n")
	p("  after \"or\" and still work, but a setting given twice, under either name, is an error. So is an\n")
	p("  unknown key, and anything after the object; errors give the line and column.\n")
	p("- **Values**: a list is a JSON array in the file, a repeated flag, and comma-separated in the variable\n")
	p("  (`SHOAL_JOIN=10.0.0.2,10.0.0.3`); key=value settings are a JSON object in the file and `key=value`\n")
	p("  items on the command line and in the variable, which add to the file's keys; durations are Go\n")
	p("  durations (`1.5s`, `5m`), or a number of seconds in the file; booleans are `true` or `false`\n")
	p("  (`--flag=false` on the command line).\n\n")
	p("```json\n{\n  \"node\": \"web-1\",\n  \"bind\": \"10.0.0.5:7946\",\n  \"join\": [\"10.0.0.2\"],\n  \"retry-join\": true,\n")
	p("  \"tag\": {\"service\": \"web\", \"port\": \"8080\"},\n  \"scale-provider\": \"dry-run\",\n  \"scale-interval\": \"5s\"\n}\n```\n\n")
	p("The agent checks the values when it starts: a bad one stops it with exit code 2 and names the value.\n\n")
	p("To add a setting: a field in `agent.Config` and one entry in the table in `agent/settings.go`; then\n")
	p("`go generate ./agent` rewrites this file.\n\n")
	for _, cat := range Categories {
		p("## %s\n\n", cat)
		p("| flag | environment | config key | value | default | description |\n")
		p("|---|---|---|---|---|---|\n")
		for _, s := range settings {
			if s.Category != cat {
				continue
			}
			key := "`" + s.Name + "`"
			if lk := s.LegacyKey(); lk != "" {
				key += " or `" + lk + "`"
			}
			def := s.DefaultString()
			if def == "" {
				def = "—"
			} else if s.DefaultText == "" {
				def = "`" + def + "`"
			}
			p("| `--%s` | `%s` | %s | %s | %s | %s |\n", s.Name, s.Env, key, s.Kind(), def, mdCell(s.Help))
		}
		if cat == CatNode {
			p("| `--config` | `SHOAL_CONFIG` | — | string | — | the JSON config file described above |\n")
		}
		p("\n")
	}
	p("## Profiles\n\n")
	p("`--profile` picks a preset. Settings given explicitly win over a preset's (`--enable-debug` serves\n")
	p("the test hooks on any profile; `--reconnect-timeout` replaces the profile's). The mesh timings are\n")
	p("memberlist's and serf's (`mesh/profile.go`); the election's lease is 10 ticks, renewed every 3.\n\n")
	p("| profile | mesh timings | election tick | proxy dial / response header timeout | test hooks | for |\n")
	p("|---|---|---|---|---|---|\n")
	for _, pr := range presets {
		hooks := "no"
		if pr.DebugHooks {
			hooks = "yes"
		}
		mt := "`" + pr.Mesh + "`"
		if pr.P2P {
			mt += " over libp2p"
		}
		p("| `%s` | %s | %v | %v / %v | %s | %s |\n", pr.Name, mt, pr.ElectionTick, pr.ProxyDialTimeout, pr.ProxyResponseHeaderTimeout, hooks, mdCell(pr.Summary))
	}
	return b.String()
}

// mdCell escapes text for a Markdown table cell.
func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
