package main

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps: the helper links the SDK of each provider its build has, and no
// mesh: it serves one provider to one agent over a pipe.
func TestDeps(t *testing.T) {
	const k8sRest, awsASG = "k8s.io/client-go/rest", "github.com/aws/aws-sdk-go-v2/service/autoscaling"
	notMesh := map[string]string{
		"github.com/hashicorp/memberlist":     "the helper runs no mesh",
		"github.com/libp2p":                   "the helper runs no mesh",
		deptest.Module + "/mesh":              "the helper runs no mesh",
		deptest.Module + "/agent":             "the helper is not an agent",
		"k8s.io/client-go/kubernetes":         "the typed clientset registers every API group in init; the provider uses the dynamic client",
		"github.com/prometheus/client_golang": "the helper serves no metrics",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range notMesh {
			m[a] = b
		}
		return m
	}
	for _, c := range []deptest.DepChecker{
		{Tags: "", BadDeps: notMesh, WantDeps: []string{k8sRest, awsASG}},
		{Tags: "nok8s", BadDeps: with("k8s.io", "built with nok8s"), WantDeps: []string{awsASG}},
		{Tags: "noaws", BadDeps: with("github.com/aws", "built with noaws"), WantDeps: []string{k8sRest}},
	} {
		c.Pkg = "."
		t.Run("tags="+c.Tags, func(t *testing.T) { c.Check(t) })
	}
}
