//go:build !nolibp2p

package agent

import (
	"net/http"
	"net/http/pprof"
)

// profilerBuilt: this build serves /debug/pprof/.
const profilerBuilt = true

// registerProfiler serves Go's profiler at /debug/pprof/ (with
// --enable-debug). The build for small devices (-tags nolibp2p) leaves it
// out: net/http/pprof links runtime/pprof, runtime/trace and
// internal/profile, 432 KiB of the small binary (pprof_nolibp2p.go).
func registerProfiler(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
