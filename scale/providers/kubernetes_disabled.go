//go:build nok8s

package providers

import (
	"errors"

	"github.com/shoalmesh/shoal/scale"
)

func init() {
	scale.RegisterProvider("kubernetes", func(scale.ProviderConfig) (scale.Provider, error) {
		return nil, errors.New("this build has no Kubernetes provider (built with -tags nok8s); use a build without that tag")
	})
}
