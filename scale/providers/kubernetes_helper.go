//go:build !nok8s

package providers

import "github.com/shoalmesh/shoal/scale"

func init() { scale.RegisterProvider(KubernetesName, HelperFactory(KubernetesName)) }
