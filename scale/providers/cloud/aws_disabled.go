//go:build noaws

package cloud

import (
	"github.com/shoalmesh/shoal/scale"
	"github.com/shoalmesh/shoal/scale/providers"
)

func init() {
	factories[providers.AWSName] = func(scale.ProviderConfig) (scale.Provider, error) { return nil, providers.ErrNoAWS }
}
