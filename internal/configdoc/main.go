// Command configdoc writes docs/config.md, the configuration reference,
// from the agent's settings table (agent/settings.go). Run it through
// `go generate ./agent`, or from the repository root:
//
//	go run ./internal/configdoc -o docs/config.md
//
// Without -o it prints the reference.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/shoalmesh/shoal/agent"
)

func main() {
	out := flag.String("o", "", "write the reference to this file instead of standard output")
	flag.Parse()
	doc := agent.ConfigReference()
	if *out == "" {
		fmt.Print(doc)
		return
	}
	if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
