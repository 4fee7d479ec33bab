// Package leakcheck runs a package's tests and then fails the run if any
// goroutine they started is still there (go.uber.org/goleak): whatever the
// code under test starts, its Stop or Close must end.
package leakcheck

import (
	"fmt"
	"net/http"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// VerifyTestMain is TestMain's body: it runs m, and when the tests passed,
// looks for goroutines left behind (goleak retries for a while, so one that
// is on its way out is not counted). opts names goroutines to ignore; each
// use says which and why.
//
// Before looking it closes the idle keep-alive connections of
// http.DefaultTransport, which the tests' own HTTP clients and client.Client
// use: each holds two goroutines until the transport's 90 s idle timeout,
// and the connection is the caller's to drop, not a leak of the agent's. A
// connection still in use is reported.
func VerifyTestMain(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if code == 0 {
		if tr, ok := http.DefaultTransport.(*http.Transport); ok {
			tr.CloseIdleConnections()
		}
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "leakcheck: goroutines still running after the tests passed:\n%v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// MemberlistProbe ignores a probe memberlist started before its Shutdown:
// probeNode waits for its ack timer (the probe timeout, scaled up to eight
// times when the node's health score is poor), which Shutdown does not
// cancel. It ends by itself within that bound; nothing of ours holds it.
var MemberlistProbe = goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode")
