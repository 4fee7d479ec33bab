//go:build nok8s

package providers

import (
	"errors"

	"github.com/shoalmesh/shoal/scale"
)

// ErrNoKubernetes is what a build with -tags nok8s says when asked for the
// Kubernetes provider.
var ErrNoKubernetes = errors.New("this build has no Kubernetes provider (built with -tags nok8s); use a build without that tag")

func init() {
	scale.RegisterProvider(KubernetesName, func(scale.ProviderConfig) (scale.Provider, error) { return nil, ErrNoKubernetes })
}
