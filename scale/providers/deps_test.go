package providers

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps: the agent's providers link no cloud SDK in any build. AWS and
// Kubernetes reach their SDKs through the helper process (helper.go); the
// SDKs are linked by package cloud and cmd/shoal-provider only.
func TestDeps(t *testing.T) {
	sdks := map[string]string{
		"k8s.io":                                  "client-go belongs in the helper (providers/cloud), not in every agent",
		"sigs.k8s.io":                             "client-go belongs in the helper (providers/cloud), not in every agent",
		"github.com/aws/aws-sdk-go-v2":            "the AWS SDK belongs in the helper (providers/cloud), not in every agent",
		"github.com/aws/smithy-go":                "the AWS SDK belongs in the helper (providers/cloud), not in every agent",
		deptest.Module + "/scale/providers/cloud": "the agent reaches the cloud providers through the helper process",
		deptest.Module + "/election":              "providers fence with package fence, not the election",
	}
	for _, tags := range []string{"", "nok8s", "noaws", "nok8s,noaws"} {
		c := deptest.DepChecker{Pkg: ".", Tags: tags, BadDeps: sdks}
		t.Run("tags="+tags, func(t *testing.T) { c.Check(t) })
	}
}
