package main

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps pins what the shoal binary links with each build tag (`go list
// -deps`, as tailscale pins its binaries): the default build has every
// library, and each tag drops its library entirely, not only the files that
// name it. TestSmallBuildDropsLibrariesAndSaysSo checks that what a tag
// drops then fails with a message naming the tag.
func TestDeps(t *testing.T) {
	const (
		libp2p    = "github.com/libp2p/go-libp2p"
		clientGo  = "k8s.io/client-go/rest"
		awsASG    = "github.com/aws/aws-sdk-go-v2/service/autoscaling"
		serf      = "github.com/hashicorp/serf/serf"
		promhttp  = "github.com/prometheus/client_golang/prometheus/promhttp"
		noLibp2p  = "built with nolibp2p"
		noK8s     = "built with nok8s"
		noAWS     = "built with noaws"
		benchOnly = "a benchmark's dependency, not the product's"
	)
	always := map[string]string{
		"k8s.io/client-go/kubernetes": "the typed clientset registers every API group in init (~13 MB RSS per agent)",
		"github.com/hashicorp/raft":   benchOnly,
	}
	with := func(more map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range always {
			m[k] = v
		}
		for k, v := range more {
			m[k] = v
		}
		return m
	}
	dropLibp2p := map[string]string{"github.com/libp2p": noLibp2p, "github.com/multiformats": noLibp2p}
	dropK8s := map[string]string{"k8s.io": noK8s, "sigs.k8s.io": noK8s}
	dropAWS := map[string]string{"github.com/aws/aws-sdk-go-v2": noAWS, "github.com/aws/smithy-go": noAWS}
	merge := func(ms ...map[string]string) map[string]string {
		m := map[string]string{}
		for _, x := range ms {
			for k, v := range x {
				m[k] = v
			}
		}
		return with(m)
	}
	for _, c := range []deptest.DepChecker{
		{Tags: "", BadDeps: always, WantDeps: []string{libp2p, clientGo, awsASG, serf, promhttp}},
		{Tags: "nolibp2p", BadDeps: with(dropLibp2p), WantDeps: []string{clientGo, awsASG, serf}},
		{Tags: "nok8s", BadDeps: with(dropK8s), WantDeps: []string{libp2p, awsASG, serf}},
		{Tags: "noaws", BadDeps: with(dropAWS), WantDeps: []string{libp2p, clientGo, serf}},
		{Tags: "nolibp2p,nok8s,noaws", BadDeps: merge(dropLibp2p, dropK8s, dropAWS), WantDeps: []string{serf, promhttp}},
	} {
		c.Pkg = "."
		t.Run("tags="+c.Tags, func(t *testing.T) { c.Check(t) })
	}
}
