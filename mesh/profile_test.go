package mesh

import (
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
)

// TestProfileTimings pins each profile's timings to the values the
// per-profile switches set before the profile table (the load relay's
// round since issue 14: 100 ms, 250 ms on wan): a change here changes
// how fast a profile detects failures, and whether a stock serf agent can
// share a lan or wan pool.
func TestProfileTimings(t *testing.T) {
	type want struct {
		probe, tcp, gossip, reclaim      time.Duration
		reconnect, broadcast, leaveDelay time.Duration
	}
	serfDefault := serf.DefaultConfig()
	lanLike := want{time.Second, 10 * time.Second, 100 * time.Millisecond, 30 * time.Second,
		serfDefault.ReconnectTimeout, serfDefault.BroadcastTimeout, serfDefault.LeavePropagateDelay}
	cases := []struct {
		name string
		cfg  Config
		want want
	}{
		{"lan", Config{Profile: ProfileLAN}, lanLike},
		{"wan", Config{Profile: ProfileWAN}, want{5 * time.Second, 30 * time.Second, 250 * time.Millisecond, 30 * time.Second,
			serfDefault.ReconnectTimeout, serfDefault.BroadcastTimeout, serfDefault.LeavePropagateDelay}},
		{"local", Config{Profile: ProfileLocal}, want{200 * time.Millisecond, 500 * time.Millisecond, 100 * time.Millisecond, time.Second,
			30 * time.Second, 3 * time.Second, 500 * time.Millisecond}},
		{"p2p", Config{Profile: ProfileP2P, Transport: p2pSpec{}}, lanLike},
		{"p2p fast", Config{Profile: ProfileP2P, Transport: p2pSpec{cfg: P2PConfig{FastTimings: true}}}, want{200 * time.Millisecond, 5 * time.Second, 100 * time.Millisecond, 30 * time.Second,
			serfDefault.ReconnectTimeout, time.Second, 200 * time.Millisecond}},
	}
	for _, c := range cases {
		prof, ok := profiles[c.cfg.Profile]
		if !ok || !ValidProfile(c.cfg.Profile) {
			t.Fatalf("%s: no profile", c.name)
		}
		sc := serf.DefaultConfig()
		mc := prof.memberlist(c.cfg, sc)
		got := want{mc.ProbeInterval, mc.TCPTimeout, prof.gossipInterval, prof.deadNodeReclaim,
			sc.ReconnectTimeout, sc.BroadcastTimeout, sc.LeavePropagateDelay}
		if c.name == "p2p" {
			c.want.tcp = 10 * time.Second // streams cross relays and NATs
		}
		if got != c.want {
			t.Errorf("%s: timings %+v, want %+v", c.name, got, c.want)
		}
	}
	if ValidProfile("fast") {
		t.Error("profile fast accepted")
	}
}
