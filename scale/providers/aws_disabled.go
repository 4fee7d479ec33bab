//go:build noaws

package providers

import (
	"errors"

	"github.com/shoalmesh/shoal/scale"
)

// AWSName is the AWS Auto Scaling provider's name.
const AWSName = "aws"

func init() {
	scale.RegisterProvider(AWSName, func(scale.ProviderConfig) (scale.Provider, error) {
		return nil, errors.New("this build has no AWS provider (built with -tags noaws); use a build without that tag")
	})
}
