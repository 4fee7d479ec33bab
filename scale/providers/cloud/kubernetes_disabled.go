//go:build nok8s

package cloud

import (
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

func init() {
	factories[providers.KubernetesName] = func(scale.ProviderConfig) (scale.Provider, error) { return nil, providers.ErrNoKubernetes }
}
