//go:build nok8s

package scale

import "errors"

func init() {
	RegisterProvider("kubernetes", func(ProviderConfig) (Provider, error) {
		return nil, errors.New("this build has no Kubernetes provider (built with -tags nok8s); use a build without that tag")
	})
}
