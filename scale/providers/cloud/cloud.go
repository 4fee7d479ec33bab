// Package cloud holds the scaling providers that need a cloud SDK: AWS Auto
// Scaling (aws-sdk-go-v2; not built with -tags noaws) and Kubernetes
// (client-go's dynamic client; not built with -tags nok8s). They run in the
// helper binary shoal-provider (cmd/shoal-provider), never in the agent:
// the agent reaches them through providers.HelperFactory.
package cloud

import (
	"maps"

	"github.com/shoalmesh/shoal/scale"
)

// factories holds this build's providers by name; each file adds its own.
var factories = map[string]scale.Factory{}

// Factories returns this build's providers by name (what the helper serves).
func Factories() map[string]scale.Factory { return maps.Clone(factories) }
