//go:build !noaws

package providers

import "github.com/shoalmesh/shoal/scale"

func init() { scale.RegisterProvider(AWSName, HelperFactory(AWSName)) }
