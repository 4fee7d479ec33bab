package mesh

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/shoalmesh/shoal/mesh/memnet"
)

// MemoryTransport carries the mesh on an in-memory network, at
// Config.BindAddr and BindPort (port 0 picks a free one; the address must
// be a specific IP). The whole stack (serf, memberlist, Shoal's packets)
// runs as on NetTransport, so tests run many nodes in one process and
// shape the links between them: latency, loss, reordering, partitions
// (see package memnet).
func MemoryTransport(nw *memnet.Network) Transport { return memTransport{nw} }

type memTransport struct{ nw *memnet.Network }

func (m memTransport) open(env *transportEnv) (memberlist.NodeAwareTransport, error) {
	if m.nw == nil {
		return nil, fmt.Errorf("%w: memory transport without a network", ErrConfig)
	}
	stats := env.stats
	ep, err := m.nw.Listen(net.JoinHostPort(env.cfg.BindAddr, strconv.Itoa(env.cfg.BindPort)), memnet.Options{
		Packet: func(buf []byte, from net.Addr) bool {
			if !stats.countIn(buf) {
				return false
			}
			env.handle(buf, from)
			return true
		},
		Conn: func(c net.Conn) net.Conn { return &countingConn{Conn: c, s: stats} },
	})
	if err != nil {
		return nil, err
	}
	return &memEndpoint{Endpoint: ep, stats: stats}, nil
}

// memEndpoint counts the packets a memnet endpoint sends.
type memEndpoint struct {
	*memnet.Endpoint
	stats *Stats
}

func (e *memEndpoint) WriteTo(b []byte, addr string) (time.Time, error) {
	return e.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (e *memEndpoint) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	e.stats.countOut(b)
	ts, err := e.Endpoint.WriteToAddress(b, a)
	if err != nil {
		e.stats.SendErrors.Add(1)
	}
	return ts, err
}
