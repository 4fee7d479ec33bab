//go:build nolibp2p

package mesh

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/hashicorp/memberlist"
)

// p2pIdentity is unavailable in this build.
func p2pIdentity(cfg *Config, log *slog.Logger) (any, error) {
	return nil, fmt.Errorf("%w: profile p2p: %s", ErrConfig, errNoLibp2pText)
}

func newP2PTransport(cfg Config, pc P2PConfig, id any, stats *Stats, log *slog.Logger, handle func([]byte, net.Addr), keys func() [][]byte) (memberlist.NodeAwareTransport, error) {
	return nil, fmt.Errorf("%w: profile p2p: %s", ErrConfig, errNoLibp2pText)
}
