//go:build nolibp2p

package agent

import (
	"errors"
	"net/http"
)

// profilerBuilt: this build has no /debug/pprof/.
const profilerBuilt = false

// errNoProfiler is what /debug/pprof/ answers in the build for small
// devices, which leaves Go's profiler out (pprof.go).
var errNoProfiler = errors.New("this build has no profiler (built with -tags nolibp2p, the build for small devices); /debug/pprof/ is in the default build")

// registerProfiler answers /debug/pprof/ with 501 and why.
func registerProfiler(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		writeErr(w, http.StatusNotImplemented, errNoProfiler)
	})
}
