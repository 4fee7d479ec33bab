package agent

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// proxyRunner runs the forwarding proxy.
// (Placeholder until the load-sharing adapter lands.)
type proxyRunner struct{}

func (a *Agent) startProxy(ctx context.Context) error { return nil }
func (a *Agent) stopProxy()                           {}

func (a *Agent) registerPickRoutes(mux *http.ServeMux, reg *prometheus.Registry) {}
