package agent

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
)

// electionRunner drives the election state machine over the mesh.
// (Placeholder until the election adapter lands: no election runs.)
type electionRunner struct{}

func (a *Agent) startElection(ctx context.Context) error { return nil }
func (a *Agent) stopElection()                           {}

// onElectionMessage receives election message bodies from the mesh.
func (a *Agent) onElectionMessage(from string, body []byte) {}

func (a *Agent) registerElectionRoutes(mux *http.ServeMux, reg *prometheus.Registry) {}
