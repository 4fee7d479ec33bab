//go:build !nolibp2p

package mesh

import (
	"fmt"
	"testing"
	"time"
)

// Two nodes with no join list find each other by mDNS.
func TestP2PMDNSDiscovery(t *testing.T) {
	a := startP2P(t, 1, t.TempDir(), testKey(1), P2PConfig{MDNS: true})
	b := startP2P(t, 2, t.TempDir(), testKey(1), P2PConfig{MDNS: true})
	waitFor(t, 20*time.Second, "found by mDNS", func() error {
		if s := statusOf(a.m, b.m.LocalName()); s != StatusAlive {
			return fmt.Errorf("a sees b %s", s)
		}
		return nil
	})
}
