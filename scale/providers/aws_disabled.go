//go:build noaws

package providers

import (
	"errors"

	"github.com/shoalmesh/shoal/scale"
)

// ErrNoAWS is what a build with -tags noaws says when asked for the AWS provider.
var ErrNoAWS = errors.New("this build has no AWS provider (built with -tags noaws); use a build without that tag")

func init() {
	scale.RegisterProvider(AWSName, func(scale.ProviderConfig) (scale.Provider, error) { return nil, ErrNoAWS })
}
