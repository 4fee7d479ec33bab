// Command shoal-provider runs the scaling providers that need a cloud SDK,
// AWS Auto Scaling and Kubernetes, for a shoal agent. The agent starts it
// (from next to its own executable, from $PATH, or from
// $SHOAL_PROVIDER_HELPER) when it is configured with --scale-provider aws
// or kubernetes, and talks to it over stdin and stdout; see
// scale/providers/helper.go. It is a binary of its own so that agents do
// not link, initialise and hold the SDKs in memory: only the coordinator of
// a mesh that scales runs it, and only while it acts.
//
// Build tags: -tags noaws and -tags nok8s leave the AWS SDK or client-go
// out of it, as they leave those providers out of the agent.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/shoalmesh/shoal/scale/providers"
	"github.com/shoalmesh/shoal/scale/providers/cloud"
)

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "serve" {
		// A helper holds a provider's client for a few calls: a small,
		// steady heap, as the agent's.
		debug.SetGCPercent(50)
		if err := providers.ServeHelper(stdin, stdout, cloud.Factories()); err != nil {
			fmt.Fprintf(stderr, "shoal-provider: %v\n", err)
			return 1
		}
		return 0
	}
	if len(args) == 1 && args[0] == "version" {
		v := "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			v = bi.Main.Version
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					v += " " + s.Value
				}
			}
		}
		fmt.Fprintf(stdout, "shoal-provider %s\n", v)
		return 0
	}
	fmt.Fprintf(stderr, `usage: shoal-provider serve | version

shoal-provider runs the AWS and Kubernetes scaling providers for a shoal
agent, which starts it when it needs them (install it next to shoal, or set
%s to its path). It is not meant to be run by hand.
`, providers.HelperEnv)
	return 2
}
