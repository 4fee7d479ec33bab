package mesh

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// TestReplayedElectionEnvelopeIsRefused sends, from a plain UDP socket, an
// election envelope in the name of a member, sealed with the mesh key,
// three times: the first is handed to the election, the copies are
// refused by the anti-replay window, and an envelope older than the
// freshness bound (ElectionWindow behind the member's newest load) is
// refused too; each refusal is counted as a drop (replay).
func TestReplayedElectionEnvelopeIsRefused(t *testing.T) {
	key := bytes.Repeat([]byte{4}, 32)
	var mu sync.Mutex
	var got []string
	recv, err := New(Config{NodeName: "er2", BindAddr: "127.0.0.42", Profile: ProfileLocal, Keys: [][]byte{key},
		Load: func() (metrics.Load, bool) { return metrics.Load{CPUPercent: 20, Cores: 1}, true },
		OnElection: func(from string, body []byte) {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s:%s", from, body))
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { recv.Shutdown() })
	sender := startNodeAt(t, "er1", "127.0.0.41", key)
	if _, err := sender.Join([]string{addrOf(recv)}); err != nil {
		t.Fatal(err)
	}
	// The receiver holds er1's load: the freshness bound counts from it.
	waitFor(t, 20*time.Second, "er2 holds er1's load", func() error {
		recv.mu.Lock()
		v := recv.table.VersionOf("er1")
		recv.mu.Unlock()
		if v == 0 {
			return errors.New("no load from er1 yet")
		}
		return nil
	})
	seal := &Sealer{Keys: func() ([]byte, [][]byte) { return key, [][]byte{key} }}
	packet := func(v uint64, msg string) []byte {
		p, err := seal.Seal(nil, AppendElection(nil, "er1", v, []byte(msg)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.43")}, net.UDPAddrFromAddrPort(mustAddrPort(t, addrOf(recv))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := recv.Stats()
	replay0, stale0 := st.DroppedBy[DropReplay].Load(), st.StaleElections.Load()
	recv.mu.Lock()
	held := recv.table.VersionOf("er1")
	recv.mu.Unlock()
	fresh := packet(held+1000, "fresh")
	for range 3 {
		if _, err := c.Write(fresh); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Write(packet(held-ElectionWindow-100, "old")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the copies and the old envelope refused and counted", func() error {
		if d := st.DroppedBy[DropReplay].Load() - replay0; d < 3 {
			return fmt.Errorf("%d refused as replays so far", d)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "er1:fresh" {
		t.Fatalf("the election was handed %q; want the fresh envelope once", got)
	}
	if d, s := st.DroppedBy[DropReplay].Load()-replay0, st.StaleElections.Load()-stale0; d != 3 || s != 3 {
		t.Fatalf("refusals counted: %d drops (replay), %d stale elections; want 3 of each", d, s)
	}
}

func startNodeAt(t *testing.T, name, ip string, key []byte) *Mesh {
	t.Helper()
	m, err := New(Config{NodeName: name, BindAddr: ip, Profile: ProfileLocal, Keys: [][]byte{key},
		Load: func() (metrics.Load, bool) { return metrics.Load{CPUPercent: 10, Cores: 1}, true }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
