//go:build !nolibp2p

// The p2p transport's libp2p host, assembled from its parts instead of with
// libp2p.New. libp2p.New (the root package and its config package) links
// every transport libp2p has, WebRTC (pion), WebTransport (HTTP/3) and
// WebSocket included, and the go.uber.org/fx dependency injection that wires
// them: about 9 MiB of the binary and their package initialisers in every
// Shoal process, the lan profile's included, for transports the mesh never
// listens on or dials. This file builds the same host libp2p.New built with
// the options Shoal gave it (QUIC and TCP, Noise on TCP, yamux, the relay
// transport and client, hole punching, AutoNAT v1, the relay service or
// static auto-relay, identify, ping), in the order config.NewNode starts and
// stops the parts. TestP2PHostLinksOnlyQUICAndTCP pins what it links.

package mesh

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"

	"github.com/libp2p/go-libp2p/core/connmgr"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/host/observedaddrs"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/quic-go/quic-go"
	"golang.org/x/crypto/hkdf"
)

// hostConfig is what the p2p transport asks of its libp2p host.
type hostConfig struct {
	key     crypto.PrivKey
	listen  []ma.Multiaddr
	rm      network.ResourceManager
	cm      connmgr.ConnManager
	gater   connmgr.ConnectionGater
	punch   []holepunch.Option
	relay   bool              // serve as a circuit relay (and report public reachability)
	relayRc relayv2.Resources // the relay's limits, when relay
	static  []peer.AddrInfo   // relays to reserve slots at (auto-relay), when not relay
}

// p2pHost is the host with what closing it takes.
type p2pHost struct {
	*bhost.BasicHost
	stops     []func() error // in reverse start order
	closeOnce sync.Once
	closeErr  error
}

// Close stops the parts in the reverse order of their start, then the
// host (as config.NewNode's closable host does).
func (h *p2pHost) Close() error {
	h.closeOnce.Do(func() {
		var errs []error
		for i := len(h.stops) - 1; i >= 0; i-- {
			if err := h.stops[i](); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, h.BasicHost.Close())
		h.closeErr = errors.Join(errs...)
	})
	return h.closeErr
}

// newP2PHost builds and starts the host. On error nothing is left running.
func newP2PHost(c hostConfig) (_ *p2pHost, err error) {
	out := &p2pHost{}
	var ps interface{ Close() error }
	defer func() {
		if err != nil {
			if out.BasicHost != nil {
				_ = out.Close()
			} else {
				for i := len(out.stops) - 1; i >= 0; i-- {
					_ = out.stops[i]()
				}
			}
			if ps != nil {
				_ = ps.Close()
			}
		}
	}()

	store, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	ps = store
	pid, err := peer.IDFromPublicKey(c.key.GetPublic())
	if err != nil {
		return nil, err
	}
	if err := store.AddPrivKey(pid, c.key); err != nil {
		return nil, err
	}
	if err := store.AddPubKey(pid, c.key.GetPublic()); err != nil {
		return nil, err
	}
	bus := eventbus.NewBus()

	// QUIC's connection manager (one UDP socket per listen address, shared
	// by dials): started before the swarm, stopped after it.
	resetKey, tokenKey, err := quicKeys(c.key)
	if err != nil {
		return nil, err
	}
	rm := c.rm
	qcm, err := quicreuse.NewConnManager(resetKey, tokenKey,
		quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
			addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
			if err != nil {
				addr = nil // the resource manager decides
			}
			scope, err := rm.OpenConnection(network.DirInbound, false, addr)
			if err != nil {
				return ctx, err
			}
			ctx = network.WithConnManagementScope(ctx, scope)
			context.AfterFunc(ctx, scope.Done)
			return ctx, nil
		}),
		quicreuse.VerifySourceAddress(func(addr net.Addr) bool { return rm.VerifySourceAddress(addr) }),
	)
	if err != nil {
		return nil, err
	}
	out.stops = append(out.stops, qcm.Close)

	sw, err := swarm.NewSwarm(pid, store, bus,
		swarm.WithUDPBlackHoleSuccessCounter(&swarm.BlackHoleSuccessCounter{N: 100, MinSuccesses: 5, Name: "UDP"}),
		swarm.WithIPv6BlackHoleSuccessCounter(&swarm.BlackHoleSuccessCounter{N: 100, MinSuccesses: 5, Name: "IPv6"}),
		swarm.WithConnectionGater(c.gater),
		swarm.WithResourceManager(rm),
		swarm.WithDialRanker(p2pDialRanker),
	)
	if err != nil {
		return nil, err
	}
	out.stops = append(out.stops, sw.Close)

	// TCP: Noise, then yamux. QUIC brings its own security and muxer.
	muxers := []tptu.StreamMuxer{{ID: yamux.ID, Muxer: yamux.DefaultTransport}}
	nz, err := noise.New(noise.ID, c.key, muxers)
	if err != nil {
		return nil, err
	}
	up, err := tptu.New([]sec.SecureTransport{nz}, muxers, nil, rm, c.gater)
	if err != nil {
		return nil, err
	}
	qt, err := libp2pquic.NewTransport(c.key, qcm, nil, c.gater, rm)
	if err != nil {
		return nil, err
	}
	if err := sw.AddTransport(qt); err != nil {
		return nil, err
	}
	tt, err := tcp.NewTCPTransport(up, rm, nil)
	if err != nil {
		return nil, err
	}
	if err := sw.AddTransport(tt); err != nil {
		return nil, err
	}

	obs, err := observedaddrs.NewManager(bus, sw)
	if err != nil {
		return nil, err
	}
	opts := &bhost.HostOpts{
		EventBus:             bus,
		ConnManager:          c.cm,
		EnablePing:           true,
		UserAgent:            "shoal",
		EnableHolePunching:   true,
		HolePunchingOptions:  c.punch,
		ObservedAddrsManager: obs,
	}
	if c.relay {
		opts.EnableRelayService = true
		opts.RelayServiceOpts = []relayv2.Option{relayv2.WithResources(c.relayRc)}
	}
	h, err := bhost.NewHost(sw, opts)
	if err != nil {
		_ = obs.Close()
		return nil, err
	}
	out.BasicHost = h
	ps = nil // the host closes it
	// The relay transport: dial and accept /p2p-circuit connections.
	if err := relayclient.AddTransport(h, up); err != nil {
		return nil, err
	}

	// Start in config.NewNode's order: listen, observed addresses,
	// auto-relay, the host.
	if err := sw.Listen(c.listen...); err != nil {
		return nil, err
	}
	obs.Start(sw)
	out.stops = append(out.stops, obs.Close)
	if !c.relay && len(c.static) > 0 {
		ar, err := autorelay.NewAutoRelay(h, autorelay.WithStaticRelays(c.static))
		if err != nil {
			return nil, err
		}
		ar.Start()
		out.stops = append(out.stops, ar.Close)
	}
	h.Start()

	// AutoNAT v1 as config.NewNode sets it up: it probes public addresses
	// only, and a relay says it is public.
	anOpts := []autonat.Option{autonat.UsingAddresses(func() []ma.Multiaddr {
		return slices.DeleteFunc(h.AllAddrs(), func(a ma.Multiaddr) bool { return !manet.IsPublicAddr(a) })
	})}
	if c.relay {
		anOpts = append(anOpts, autonat.WithReachability(network.ReachabilityPublic))
	}
	an, err := autonat.New(h, anOpts...)
	if err != nil {
		return nil, fmt.Errorf("autonat: %w", err)
	}
	h.SetAutoNat(an)
	return out, nil
}

// quicKeys derives QUIC's stateless reset and token keys from the host key,
// as libp2p's config package does (HKDF-SHA256 with its info strings), so
// that a restarted node resets its peers' stale connections.
func quicKeys(key crypto.PrivKey) (reset quic.StatelessResetKey, token quic.TokenGeneratorKey, err error) {
	raw, err := key.Raw()
	if err != nil {
		return reset, token, err
	}
	if _, err := io.ReadFull(hkdf.New(sha256.New, raw, nil, []byte("libp2p quic stateless reset key")), reset[:]); err != nil {
		return reset, token, err
	}
	if _, err := io.ReadFull(hkdf.New(sha256.New, raw, nil, []byte("libp2p quic token generator key")), token[:]); err != nil {
		return reset, token, err
	}
	return reset, token, nil
}

// p2pServiceLimits adds libp2p's default limits for its own services
// (identify, ping, AutoNAT, hole punching, the relay) to a resource manager
// configuration: libp2p.SetDefaultServiceLimits (go-libp2p limits.go, MIT),
// kept here because the root package links every transport.
func p2pServiceLimits(config *rcmgr.ScalingLimitConfig) {
	config.AddServiceLimit(identify.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20})
	config.AddServicePeerLimit(identify.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: 1 << 20},
		rcmgr.BaseLimitIncrease{})
	for _, id := range [...]protocol.ID{identify.ID, identify.IDPush} {
		config.AddProtocolLimit(id,
			rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20},
			rcmgr.BaseLimitIncrease{StreamsInbound: 64, StreamsOutbound: 64, Streams: 128, Memory: 4 << 20})
		config.AddProtocolPeerLimit(id,
			rcmgr.BaseLimit{StreamsInbound: 16, StreamsOutbound: 16, Streams: 32, Memory: 32 * (256<<20 + 16<<10)},
			rcmgr.BaseLimitIncrease{})
	}
	both := func(service string, proto protocol.ID, limit rcmgr.BaseLimit, inc rcmgr.BaseLimitIncrease, perPeer rcmgr.BaseLimit) {
		config.AddServiceLimit(service, limit, inc)
		config.AddProtocolLimit(proto, limit, inc)
		config.AddServicePeerLimit(service, perPeer, rcmgr.BaseLimitIncrease{})
		config.AddProtocolPeerLimit(proto, perPeer, rcmgr.BaseLimitIncrease{})
	}
	both(ping.ServiceName, ping.ID,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20},
		rcmgr.BaseLimit{StreamsInbound: 2, StreamsOutbound: 3, Streams: 4, Memory: 32 * (256<<20 + 16<<10)})
	both(autonat.ServiceName, autonat.AutoNATProto,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 4, StreamsOutbound: 4, Streams: 4, Memory: 2 << 20},
		rcmgr.BaseLimit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 2, Memory: 1 << 20})
	both(holepunch.ServiceName, holepunch.Protocol,
		rcmgr.BaseLimit{StreamsInbound: 32, StreamsOutbound: 32, Streams: 64, Memory: 4 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 8, StreamsOutbound: 8, Streams: 16, Memory: 4 << 20},
		rcmgr.BaseLimit{StreamsInbound: 2, StreamsOutbound: 2, Streams: 2, Memory: 1 << 20})
	config.AddServiceLimit(relayv2.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 256, StreamsOutbound: 256, Streams: 256, Memory: 16 << 20},
		rcmgr.BaseLimitIncrease{StreamsInbound: 256, StreamsOutbound: 256, Streams: 256, Memory: 16 << 20})
	config.AddServicePeerLimit(relayv2.ServiceName,
		rcmgr.BaseLimit{StreamsInbound: 64, StreamsOutbound: 64, Streams: 64, Memory: 1 << 20},
		rcmgr.BaseLimitIncrease{})
	for _, proto := range [...]protocol.ID{relayproto.ProtoIDv2Hop, relayproto.ProtoIDv2Stop} {
		config.AddProtocolLimit(proto,
			rcmgr.BaseLimit{StreamsInbound: 640, StreamsOutbound: 640, Streams: 640, Memory: 16 << 20},
			rcmgr.BaseLimitIncrease{StreamsInbound: 640, StreamsOutbound: 640, Streams: 640, Memory: 16 << 20})
		config.AddProtocolPeerLimit(proto,
			rcmgr.BaseLimit{StreamsInbound: 128, StreamsOutbound: 128, Streams: 128, Memory: 32 << 20},
			rcmgr.BaseLimitIncrease{})
	}
}
