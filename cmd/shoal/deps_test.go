package main

import (
	"testing"

	"github.com/shoalmesh/shoal/internal/deptest"
)

// TestDeps pins what the shoal binary links with each build tag (`go list
// -deps`, as tailscale pins its binaries): the default build has libp2p and
// the rest, and each tag drops its library entirely, not only the files
// that name it. TestSmallBuildDropsLibrariesAndSaysSo checks that what a tag
// drops then fails with a message naming the tag.
//
// Every Go process runs the initialisers of every package it links and
// pages in their code, so what is linked is what each agent pays for in
// memory (docs/benchmarks.md, footprint). No build links the cloud SDKs
// (the AWS and Kubernetes providers run in cmd/shoal-provider, started only
// where they are used) nor the libp2p transports the mesh does not use.
func TestDeps(t *testing.T) {
	const (
		libp2pQUIC = "github.com/libp2p/go-libp2p/p2p/transport/quic"
		libp2pTCP  = "github.com/libp2p/go-libp2p/p2p/transport/tcp"
		relay      = "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
		holepunch  = "github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
		mdns       = "github.com/libp2p/go-libp2p/p2p/discovery/mdns"
		serf       = "github.com/hashicorp/serf/serf"
		prom       = "github.com/shoalmesh/shoal/internal/prom"
		noLibp2p   = "built with nolibp2p"
		benchOnly  = "a benchmark's dependency, not the product's"
		helper     = "the AWS and Kubernetes providers run in the helper binary shoal-provider (scale/providers/helper.go), not in every agent"
		unused     = "a libp2p transport the mesh never listens on or dials (mesh/p2p_host.go builds the host without libp2p.New)"
	)
	always := map[string]string{
		"k8s.io":                                                 helper,
		"sigs.k8s.io":                                            helper,
		"github.com/aws/aws-sdk-go-v2":                           helper,
		"github.com/aws/smithy-go":                               helper,
		deptest.Module + "/scale/providers/cloud":                helper,
		"github.com/hashicorp/raft":                              benchOnly,
		"github.com/libp2p/go-libp2p/config":                     unused + "; it links WebRTC",
		"github.com/libp2p/go-libp2p/p2p/transport/webrtc":       unused,
		"github.com/libp2p/go-libp2p/p2p/transport/websocket":    unused,
		"github.com/libp2p/go-libp2p/p2p/transport/webtransport": unused,
		"github.com/pion":                                        unused + " (WebRTC)",
		"github.com/quic-go/webtransport-go":                     unused,
		"github.com/quic-go/quic-go/http3":                       unused + " (WebTransport)",
		"github.com/gorilla/websocket":                           unused,
		"go.uber.org/fx":                                         "libp2p.New's dependency injection; the host is built by hand",
		"go.uber.org/dig":                                        "libp2p.New's dependency injection; the host is built by hand",
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
	dropLibp2p := with(map[string]string{"github.com/libp2p": noLibp2p, "github.com/multiformats": noLibp2p, "github.com/quic-go": noLibp2p})
	// Without libp2p nothing needs the Prometheus client: /metrics is
	// written by internal/prom (2.75 MiB less binary).
	noClient := map[string]string{
		"github.com/prometheus/client_golang": "/metrics is internal/prom's; the client (and protobuf) came only with libp2p",
		"google.golang.org/protobuf":          "/metrics is internal/prom's; the client (and protobuf) came only with libp2p",
	}
	for k, v := range noClient {
		dropLibp2p[k] = v
	}
	// Nor Go's profiler (agent/pprof_nolibp2p.go): net/http/pprof links
	// runtime/pprof, runtime/trace and internal/profile (432 KiB).
	const noProfiler = "no /debug/pprof/ in the build for small devices (agent/pprof_nolibp2p.go)"
	for _, p := range []string{"net/http/pprof", "runtime/pprof", "runtime/trace"} {
		dropLibp2p[p] = noProfiler
	}
	p2p := []string{libp2pQUIC, libp2pTCP, relay, holepunch, mdns, serf}
	for _, c := range []deptest.DepChecker{
		{Tags: "", BadDeps: always, WantDeps: append(p2p, prom, "net/http/pprof")},
		{Tags: "nolibp2p", BadDeps: dropLibp2p, WantDeps: []string{serf, prom}},
		{Tags: "nok8s,noaws", BadDeps: always, WantDeps: p2p},
		{Tags: "nolibp2p,nok8s,noaws", BadDeps: dropLibp2p, WantDeps: []string{serf, prom}},
	} {
		c.Pkg = "."
		t.Run("tags="+c.Tags, func(t *testing.T) { c.Check(t) })
	}
}
