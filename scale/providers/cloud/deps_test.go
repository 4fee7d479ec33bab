package cloud

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// typedClientset: the Kubernetes provider talks to the apiserver through
// the dynamic client. The typed clientset (k8s.io/client-go/kubernetes)
// registers every API group in init and cost each agent ~13 MB of RSS;
// k8s.io/api/core/v1 (pulled in by autoscaling/v1) is ~3 MB of binary.
// Neither may come back into the package's own (non-test) imports; tests
// may use the typed clientset.
var typedClientset = map[string]string{
	"k8s.io/client-go/kubernetes": "the typed clientset registers every API group in init (~13 MB RSS per agent); use the dynamic client",
	"k8s.io/api/core/v1":          "~3 MB of binary for fields read as JSON",
	deptest.Module + "/election":  "providers fence with package fence, not the election",
}

// TestDeps pins what the providers link with each build tag: the SDKs by
// default, none of client-go with nok8s, none of the AWS SDK with noaws.
func TestDeps(t *testing.T) {
	const k8sRest, awsASG = "k8s.io/client-go/rest", "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	noK8s := map[string]string{"k8s.io": "built with nok8s", "sigs.k8s.io": "built with nok8s"}
	noAWS := map[string]string{"github.com/aws/aws-sdk-go-v2": "built with noaws", "github.com/aws/smithy-go": "built with noaws"}
	merge := func(ms ...map[string]string) map[string]string {
		out := map[string]string{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	for _, c := range []deptest.DepChecker{
		{Tags: "", BadDeps: typedClientset, WantDeps: []string{k8sRest, awsASG}},
		{Tags: "nok8s", BadDeps: merge(typedClientset, noK8s), WantDeps: []string{awsASG}},
		{Tags: "noaws", BadDeps: merge(typedClientset, noAWS), WantDeps: []string{k8sRest}},
		{Tags: "nok8s,noaws", BadDeps: merge(typedClientset, noK8s, noAWS)},
	} {
		c.Pkg = "."
		t.Run("tags="+c.Tags, func(t *testing.T) { c.Check(t) })
	}
}
