package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every command's help fits 100 columns and shows each default once; the
// agent's flags all belong to a group, shown in a fixed order.
func TestAgentHelpIsGroupedAndNarrow(t *testing.T) {
	for _, f := range agentFlags() {
		if flagCategory(f.Names()[0]) == "" {
			t.Errorf("agent flag --%s has no help group: give its entry in agent/settings.go a Category", f.Names()[0])
		}
	}
	var cmds [][]string
	for _, c := range newApp(nil, nil).Commands {
		cmds = append(cmds, []string{c.Name})
		for _, s := range c.Subcommands {
			cmds = append(cmds, []string{c.Name, s.Name})
		}
	}
	cmds = append(cmds, nil) // shoal --help
	for _, c := range cmds {
		var out, errb bytes.Buffer
		args := append(append([]string{"shoal"}, c...), "--help")
		if code := run(args, &out, &errb); code != 0 {
			t.Errorf("%v: exit %d: %s", c, code, errb.String())
			continue
		}
		for i, ln := range strings.Split(out.String(), "\n") {
			if len(ln) > helpWidth {
				t.Errorf("shoal %s --help line %d is %d columns: %q", strings.Join(c, " "), i+1, len(ln), ln)
			}
		}
		for _, para := range strings.Split(out.String(), "\n   --") {
			if strings.Count(para, "(default") > 1 {
				t.Errorf("shoal %s --help shows a default twice: %q", strings.Join(c, " "), para)
			}
		}
	}
	var out bytes.Buffer
	run([]string{"shoal", "agent", "--help"}, &out, &out)
	last := -1
	for _, cat := range agentCategoryOrder {
		i := strings.Index(out.String(), "\n"+cat+":\n")
		if i < 0 {
			t.Errorf("agent help has no %q group", cat)
			continue
		}
		if i < last {
			t.Errorf("agent help group %q out of order", cat)
		}
		last = i
	}
}
