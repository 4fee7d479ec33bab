package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
)

// helpWidth bounds every line of 'shoal CMD --help'.
const helpWidth = 100

// helpIndent is where a flag's description starts under its name; the help
// template itself indents the name by three spaces.
const helpIndent = "         "

func init() { cli.FlagStringer = helpFlag }

// helpFlag prints a flag as its name on one line and its description,
// default (when it is not the zero value) and environment variable wrapped
// under it, so no line passes helpWidth whatever the flag. urfave/cli's
// own stringer pads every name to the longest one and runs long
// descriptions to 200 columns and more.
func helpFlag(f cli.Flag) string {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return ""
	}
	var names []string
	for _, n := range df.Names() {
		if len(n) == 1 {
			names = append(names, "-"+n)
		} else {
			names = append(names, "--"+n)
		}
	}
	head := strings.Join(names, ", ")
	if df.TakesValue() {
		head += " value"
	}
	text := df.GetUsage()
	if sf, ok := f.(cli.DocGenerationSliceFlag); ok && sf.IsSliceFlag() && !strings.Contains(text, "repeatable") {
		text += " (repeatable)"
	}
	if d := df.GetDefaultText(); shownDefault(d) {
		text += fmt.Sprintf(" (default: %s)", d)
	}
	if env := df.GetEnvVars(); len(env) > 0 {
		text += " [$" + strings.Join(env, ", $") + "]"
	}
	return head + "\n" + wrapText(text, helpWidth-3-len(helpIndent), helpIndent)
}

// shownDefault leaves out defaults that say nothing: off, zero, empty.
func shownDefault(d string) bool {
	switch d {
	case "", "0", "false", `""`, "[]", "0s":
		return false
	}
	return true
}

// wrapText breaks s at spaces into lines of at most width bytes, each after
// indent (a word longer than width gets a line of its own).
func wrapText(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for _, w := range strings.Fields(s) {
		switch {
		case n == 0:
			b.WriteString(indent)
		case n+1+len(w) > width:
			b.WriteString("\n")
			b.WriteString(indent)
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len(w)
	}
	return b.String()
}

// flagCategory is an agent flag's group in 'shoal agent --help': its
// setting's Category in the table (agent/settings.go); "" for no setting.
func flagCategory(name string) string {
	if name == "config" {
		return agent.CatNode
	}
	s, _ := agent.LookupSetting(name)
	return s.Category
}

// agentCategoryOrder is the order of the groups in 'shoal agent --help'
// (urfave/cli sorts them by name).
var agentCategoryOrder = agent.Categories

// agentHelpTemplate is urfave/cli's command template with the flag groups
// in agentCategoryOrder.
const agentHelpTemplate = `NAME:
   {{template "helpNameTemplate" .}}

USAGE:
   {{template "usageTemplate" .}}{{if .Description}}

DESCRIPTION:
   {{template "descriptionTemplate" .}}{{end}}
{{range inCategoryOrder .VisibleFlagCategories}}
{{.Name}}:{{range .Flags}}
   {{.}}{{end}}
{{end}}`

func init() {
	// helpFlag indents its own continuation lines; the stock templates'
	// "wrap 6" would indent them again past helpWidth.
	const stock, ours = `{{template "visibleFlagTemplate" .}}`, "{{range .VisibleFlags}}\n   {{.}}{{end}}"
	cli.CommandHelpTemplate = strings.ReplaceAll(cli.CommandHelpTemplate, stock, ours)
	cli.SubcommandHelpTemplate = strings.ReplaceAll(cli.SubcommandHelpTemplate, stock, ours)
	cli.AppHelpTemplate = strings.ReplaceAll(cli.AppHelpTemplate, stock, ours)
	cli.HelpPrinter = func(w io.Writer, templ string, data any) {
		cli.HelpPrinterCustom(w, templ, data, map[string]any{
			"inCategoryOrder": inCategoryOrder,
			"wrapAt":          func() int { return helpWidth },
		})
	}
}

func inCategoryOrder(cats []cli.VisibleFlagCategory) []cli.VisibleFlagCategory {
	rank := func(name string) int {
		for i, n := range agentCategoryOrder {
			if n == name {
				return i
			}
		}
		return len(agentCategoryOrder)
	}
	out := slices.Clone(cats)
	slices.SortStableFunc(out, func(a, b cli.VisibleFlagCategory) int { return rank(a.Name()) - rank(b.Name()) })
	return out
}
