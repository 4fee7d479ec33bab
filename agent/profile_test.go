package agent

import (
	"strings"
	"testing"
	"time"
)

// TestProfilePresets: each profile's preset as the agent runs it, and
// explicit settings over it. The values are those the profile switches
// gave before the presets (a change here changes a profile's behaviour).
func TestProfilePresets(t *testing.T) {
	want := map[string]struct {
		tick  time.Duration
		p2p   bool
		hooks bool
	}{
		"lan":   {100 * time.Millisecond, false, false},
		"wan":   {500 * time.Millisecond, false, false},
		"local": {100 * time.Millisecond, false, true},
		"p2p":   {200 * time.Millisecond, true, false},
	}
	if len(Presets()) != len(want) {
		t.Errorf("%d presets, want %d", len(Presets()), len(want))
	}
	for name, w := range want {
		c := DefaultConfig()
		c.Profile = name
		p := c.preset()
		if p.Name != name || p.Mesh != name || p.ElectionTick != w.tick || p.P2P != w.p2p || p.DebugHooks != w.hooks {
			t.Errorf("profile %s: preset %+v; want tick %v, p2p %v, test hooks %v", name, p, w.tick, w.p2p, w.hooks)
		}
		if p.ProxyDialTimeout != 2*time.Second || p.ProxyResponseHeaderTimeout != 30*time.Second {
			t.Errorf("profile %s: proxy timeouts %v / %v, want 2s / 30s", name, p.ProxyDialTimeout, p.ProxyResponseHeaderTimeout)
		}
		c.EnableDebug = true
		if !c.preset().DebugHooks {
			t.Errorf("profile %s: --enable-debug does not turn the test hooks on", name)
		}
	}
	c := DefaultConfig()
	c.Bind = "127.0.0.1:7946"
	c.Profile = "fast"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `profile "fast": use lan, wan, local or p2p`) {
		t.Errorf("profile fast: %v", err)
	}
}

// TestP2PWorkingSetSettingsAreChecked: the working-set settings name the
// bad value, and only the p2p profile takes them.
func TestP2PWorkingSetSettingsAreChecked(t *testing.T) {
	for _, tc := range []struct {
		profile string
		idle    time.Duration
		set     int
		want    string // "" for valid
	}{
		{"p2p", 0, 0, ""},
		{"p2p", 30 * time.Second, 40, ""},
		{"p2p", -time.Second, 0, "p2p idle connection timeout -1s: use 100ms or more"},
		{"p2p", 10 * time.Millisecond, 0, "p2p idle connection timeout 10ms: use 100ms or more"},
		{"p2p", 0, -3, "p2p working set -3: use 1 to 100000"},
		{"lan", 0, 20, "need --profile p2p"},
		{"lan", time.Second, 0, "need --profile p2p"},
	} {
		c := DefaultConfig()
		c.Bind = "127.0.0.1:7946"
		c.Profile = tc.profile
		c.P2PIdleConnTimeout = Duration(tc.idle)
		c.P2PWorkingSet = tc.set
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s, idle %v, working set %d: %v", tc.profile, tc.idle, tc.set, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s, idle %v, working set %d: error %v, want one saying %q", tc.profile, tc.idle, tc.set, err, tc.want)
		}
	}
}
