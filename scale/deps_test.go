package scale

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps: the policy, history, persistent fence, provider registry and
// simulation link only the standard library and package fence, so that the
// policy runs in tests, simulations and tools/cmd/shoal-scalebench on a fake
// clock without an SDK (DESIGN.md). Providers with SDKs live in
// scale/providers, and package scale does not import the election.
func TestDeps(t *testing.T) {
	deptest.DepChecker{
		Pkg:     ".",
		StdOnly: true,
		Allow:   []string{deptest.Module + "/fence"},
		BadDeps: map[string]string{
			"k8s.io":                          "the Kubernetes provider lives in scale/providers",
			"sigs.k8s.io":                     "the Kubernetes provider lives in scale/providers",
			"github.com/aws":                  "the AWS provider lives in scale/providers",
			"github.com/hashicorp/serf":       "the policy knows no mesh",
			"github.com/hashicorp/memberlist": "the policy knows no mesh",
			"github.com/libp2p":               "the policy knows no mesh",
			deptest.Module + "/election":      "Lease and Fence come from package fence; the policy needs none of the election's machinery",
		},
	}.Check(t)
}
