package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shoalmesh/shoal/loadshare"
	"github.com/shoalmesh/shoal/mesh"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid configuration")

// Duration is a time.Duration that reads "1.5s" in config files.
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: want a Go duration such as \"1.5s\" or a number of seconds", clip(s))
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("duration %s: want a string like \"1.5s\" or seconds", clip(string(b)))
	}
	if math.IsNaN(f) || math.Abs(f) > float64(math.MaxInt64/int64(time.Second)) {
		return fmt.Errorf("duration %s seconds is out of range", clip(string(b)))
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is everything an agent needs. Flags, SHOAL_* environment variables
// and the optional JSON config file only fill this struct, all three from
// the one table in settings.go: a new field needs an entry there
// (TestSettingsCoverConfig). Validate checks it.
type Config struct {
	// NodeName is this node's unique name; default: the hostname.
	NodeName string `json:"node_name"`
	// Bind is the gossip address (UDP and TCP), host:port.
	Bind string `json:"bind"`
	// Advertise is the address other members dial, host:port; default: Bind.
	Advertise string `json:"advertise"`
	// Profile is lan, wan or local (fast timings for tests and dev meshes),
	// or p2p (memberlist over libp2p; the node name becomes the peer ID of
	// the key kept in DataDir). Each is a preset in profile.go.
	Profile string `json:"profile"`
	// P2PBootstrap lists peers (multiaddrs with /p2p/<id>) the p2p profile
	// keeps connected and joins through, retried with backoff.
	P2PBootstrap []string `json:"p2p_bootstrap"`
	// Relay makes this p2p node a circuit relay for nodes behind NAT.
	Relay bool `json:"relay"`
	// MDNS finds p2p peers on the local network.
	MDNS bool `json:"mdns"`
	// P2PAllowPeers, when set, admits only these peer IDs on p2p.
	P2PAllowPeers []string `json:"p2p_allow_peers"`
	// P2PMaxPeers sizes libp2p's resource and connection limits (0: 512).
	P2PMaxPeers int `json:"p2p_max_peers"`
	// P2PIdleConnTimeout closes a direct connection no packet crossed for
	// this long while more than P2PWorkingSet peers are connected (0:
	// never); P2PWorkingSet is that floor (0: 12).
	P2PIdleConnTimeout Duration `json:"p2p_idle_conn_timeout"`
	P2PWorkingSet      int      `json:"p2p_working_set"`
	// P2PPublicNets lists CIDR ranges libp2p should treat as public for hole
	// punching: the outside of the NATs when it is a private WAN, CGNAT
	// (100.64.0.0/10) or a test network.
	P2PPublicNets []string `json:"p2p_public_nets"`
	// P2PFastTimings runs memberlist over libp2p with the local profile's
	// fast timings: for 'shoal dev' and tests on one host, not for networks.
	P2PFastTimings bool `json:"p2p_fast_timings"`
	// Tags are static facts gossiped with membership (key=value).
	Tags map[string]string `json:"tags"`
	// Priority ranks this node in coordinator elections (higher wins).
	Priority int `json:"priority"`
	// Preempt lets this node, when it outranks an established coordinator
	// (it joined or came back later), take over through a handover.
	Preempt bool `json:"preempt"`
	// Quorum is how many members (counting this node) it must see alive
	// to act as coordinator; 0 means a majority of the members it last
	// knew. Set it to a majority of the expected mesh size when known.
	Quorum int `json:"quorum"`
	// Join lists members to join at start (host or host:port).
	Join []string `json:"join"`
	// RetryJoin keeps retrying Join with backoff; RetryMax bounds the
	// attempts (0: forever), RetryInterval is the first wait.
	RetryJoin     bool     `json:"retry_join"`
	RetryMax      int      `json:"retry_max"`
	RetryInterval Duration `json:"retry_interval"`
	// LeaveOnTerm leaves the mesh gracefully on SIGTERM/SIGINT; otherwise
	// the node just stops and the others see it fail.
	LeaveOnTerm bool `json:"leave_on_terminate"`
	// RejoinAfterLeave rejoins the snapshot's members even after a leave.
	RejoinAfterLeave bool `json:"rejoin_after_leave"`
	// ReconnectTimeout is how long a failed member stays listed before it
	// is reaped (0: the profile's: 24h on lan and wan, 30s on local).
	ReconnectTimeout Duration `json:"reconnect_timeout"`
	// DataDir keeps the membership snapshot and the keyring.
	DataDir string `json:"data_dir"`
	// ActingLog, when set, is a file to which the agent appends one JSON
	// line per change of its acting state and per lease renewal (see
	// election_adapter.go): a record for fault tests and audits.
	ActingLog string `json:"acting_log"`
	// EncryptKey is a base64 gossip key ('shoal keygen'); KeyringFile a
	// JSON array of such keys, primary first.
	EncryptKey  string `json:"encrypt"`
	KeyringFile string `json:"keyring_file"`
	// InsecureGossip lets gossip run without a key on an address other than
	// loopback: anyone who can reach the port can then join the mesh,
	// publish load and be picked. Without it such an agent refuses to start.
	InsecureGossip bool `json:"insecure_gossip"`
	// Label keeps meshes sharing a network apart.
	Label string `json:"label"`
	// HTTPAddr is where the API, /metrics and the dashboard listen.
	HTTPAddr string `json:"http_addr"`
	// APIToken is the API's admin token: every endpoint, writes included.
	// APIReadToken, when set, reads only (status, members, load, pick,
	// leader, metrics, events, the dashboard's data). Once either is set,
	// every request but the dashboard page needs one; without either, reads
	// are open and writes are served to loopback clients only. HTTPAddr
	// other than loopback needs a token or TLSClientCA (api_auth.go).
	APIToken     string `json:"api_token"`
	APIReadToken string `json:"api_read_token"`
	// TLSCert and TLSKey (PEM files) serve the API over TLS, reloaded on
	// SIGHUP; TLSClientCA (PEM) then requires client certificates signed
	// by it (mutual TLS). See api_tls.go.
	TLSCert     string `json:"tls_cert"`
	TLSKey      string `json:"tls_key"`
	TLSClientCA string `json:"tls_client_ca"`
	// SampleInterval is how often load is sampled; HalfLife smooths it.
	SampleInterval Duration `json:"sample_interval"`
	HalfLife       Duration `json:"half_life"`
	// LogLevel is debug, info, warn or error; LogJSON logs as JSON.
	LogLevel string `json:"log_level"`
	LogJSON  bool   `json:"log_json"`
	// ProxyListen, when set, runs the forwarding proxy there (host:port):
	// each request goes to a member tagged service=<ProxyService> with a
	// port tag, chosen by ProxyStrategy ("" means p2c).
	ProxyListen   string `json:"proxy_listen"`
	ProxyService  string `json:"proxy_service"`
	ProxyStrategy string `json:"proxy_strategy"`
	// ProxyInflightCount adds the proxy's own requests in flight to each
	// member to the member's gossiped run queue when picking (the fast
	// signal, loadshare_adapter.go); false picks by gossiped load alone,
	// as tools/cmd/shoal-proxybench does for comparison. Default true.
	ProxyInflightCount bool `json:"proxy_inflight_count"`
	// Scale is autoscaling: the provider and the policy (scale_adapter.go).
	Scale ScaleConfig `json:"scale"`
	// EnableDebug serves test hooks such as POST /v1/debug/load.
	EnableDebug bool `json:"enable_debug"`
}

// DefaultConfig returns the defaults for a production agent.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:           sanitizeName(host),
		Bind:               "0.0.0.0:7946",
		Profile:            mesh.ProfileLAN,
		Tags:               map[string]string{},
		RetryInterval:      Duration(time.Second),
		LeaveOnTerm:        true,
		HTTPAddr:           "127.0.0.1:7950",
		SampleInterval:     Duration(time.Second),
		HalfLife:           Duration(5 * time.Second),
		LogLevel:           "info",
		ProxyInflightCount: true,
		Scale:              DefaultScaleConfig(),
	}
}

func sanitizeName(h string) string {
	h = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, h)
	if h == "" {
		return "shoal"
	}
	if len(h) > 128 {
		h = h[:128]
	}
	return h
}

// ParseTag parses one key=value tag.
func ParseTag(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return "", "", fmt.Errorf("%w: tag %q: want key=value", ErrConfig, clip(s))
	}
	if len(k) > 64 || len(v) > 128 {
		return "", "", fmt.Errorf("%w: tag %q: key at most 64 bytes, value at most 128", ErrConfig, clip(s))
	}
	if err := mesh.CheckUserTag(k); err != nil {
		return "", "", fmt.Errorf("%w: tag %q: %v", ErrConfig, s, err)
	}
	return k, v, nil
}

// Validate checks every field, naming the first bad value.
func (c *Config) Validate() error {
	if !mesh.ValidName(c.NodeName) {
		return fmt.Errorf("%w: node name %q: use 1–128 letters, digits, '.', '_' or '-'", ErrConfig, c.NodeName)
	}
	if _, _, err := splitHostPort("bind", c.Bind); err != nil {
		return err
	}
	if c.Advertise != "" {
		if _, _, err := splitHostPort("advertise", c.Advertise); err != nil {
			return err
		}
	}
	preset, ok := LookupPreset(c.Profile) // profile.go
	if !ok {
		return fmt.Errorf("%w: profile %q: use %s", ErrConfig, clip(c.Profile), profileNames())
	}
	if !preset.P2P && (len(c.P2PBootstrap) > 0 || c.Relay || c.MDNS || len(c.P2PAllowPeers) > 0 || c.P2PMaxPeers != 0 || len(c.P2PPublicNets) > 0 ||
		c.P2PIdleConnTimeout != 0 || c.P2PWorkingSet != 0) {
		return fmt.Errorf("%w: --p2p-bootstrap, --relay, --mdns and the other --p2p-* settings need --profile p2p", ErrConfig)
	}
	if c.P2PMaxPeers < 0 || c.P2PMaxPeers > 100000 {
		return fmt.Errorf("%w: p2p max peers %d: use 1 to 100000 (0: 512)", ErrConfig, c.P2PMaxPeers)
	}
	if c.P2PWorkingSet < 0 || c.P2PWorkingSet > 100000 {
		return fmt.Errorf("%w: p2p working set %d: use 1 to 100000 (0: 12)", ErrConfig, c.P2PWorkingSet)
	}
	if d := time.Duration(c.P2PIdleConnTimeout); d != 0 && d < 100*time.Millisecond {
		return fmt.Errorf("%w: p2p idle connection timeout %v: use 100ms or more (0: never close idle connections)", ErrConfig, d)
	}
	for _, id := range c.P2PAllowPeers {
		if !strings.HasPrefix(id, "12D3KooW") && !strings.HasPrefix(id, "Qm") {
			return fmt.Errorf("%w: allowed peer %q is not a peer ID (12D3KooW…; 'shoal info' prints a node's)", ErrConfig, id)
		}
	}
	for _, n := range c.P2PPublicNets {
		if _, _, err := net.ParseCIDR(n); err != nil {
			return fmt.Errorf("%w: p2p public net %q is not a CIDR range such as 100.64.0.0/10", ErrConfig, n)
		}
	}
	for _, b := range c.P2PBootstrap {
		if !strings.HasPrefix(b, "/") || !strings.Contains(b, "/p2p/") {
			return fmt.Errorf("%w: p2p bootstrap peer %q: use a multiaddr with a peer ID, e.g. /ip4/198.18.0.1/udp/7946/quic-v1/p2p/12D3KooW…", ErrConfig, b)
		}
	}
	for k, v := range c.Tags {
		if _, _, err := ParseTag(k + "=" + v); err != nil {
			return err
		}
	}
	if c.EncryptKey != "" {
		if _, err := mesh.ParseKey(c.EncryptKey); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if c.Quorum < 0 {
		return fmt.Errorf("%w: quorum %d is negative: use 0 (a majority of the known members) or a member count", ErrConfig, c.Quorum)
	}
	if c.ReconnectTimeout != 0 && c.ReconnectTimeout < Duration(time.Second) {
		return fmt.Errorf("%w: reconnect-timeout %v: use 0 (the profile's) or 1s or more", ErrConfig, time.Duration(c.ReconnectTimeout))
	}
	if c.RetryMax < 0 {
		return fmt.Errorf("%w: retry-max %d is negative", ErrConfig, c.RetryMax)
	}
	if c.RetryInterval < Duration(10*time.Millisecond) {
		return fmt.Errorf("%w: retry-interval %v below 10ms", ErrConfig, time.Duration(c.RetryInterval))
	}
	host, _, err := splitListenAddr("http-addr", c.HTTPAddr)
	if err != nil {
		return err
	}
	if err := c.checkAPISecurity(host); err != nil { // api_auth.go
		return err
	}
	if c.SampleInterval < Duration(10*time.Millisecond) {
		return fmt.Errorf("%w: sample-interval %v below 10ms", ErrConfig, time.Duration(c.SampleInterval))
	}
	if c.HalfLife < 0 {
		return fmt.Errorf("%w: half-life %v is negative", ErrConfig, time.Duration(c.HalfLife))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%w: log level %q: use debug, info, warn or error", ErrConfig, c.LogLevel)
	}
	if c.ProxyStrategy != "" && !slices.Contains(loadshare.Strategies(), c.ProxyStrategy) {
		return fmt.Errorf("%w: proxy-strategy %q is unknown; valid strategies are %s", ErrConfig, c.ProxyStrategy, strings.Join(loadshare.Strategies(), ", "))
	}
	if c.ProxyListen != "" {
		if _, _, err := splitListenAddr("proxy-listen", c.ProxyListen); err != nil {
			return err
		}
		if c.ProxyService == "" {
			return fmt.Errorf("%w: proxy-listen %s needs proxy-service: the service whose members (tag service=NAME and a port tag) get the requests", ErrConfig, c.ProxyListen)
		}
	} else if c.ProxyService != "" {
		return fmt.Errorf("%w: proxy-service %q is set but proxy-listen is not: set proxy-listen (e.g. 127.0.0.1:8080) to run the proxy", ErrConfig, c.ProxyService)
	}
	if err := c.Scale.validate(); err != nil {
		return err
	}
	return c.checkGossipKey()
}

// checkGossipKey refuses gossip without a key on an address other than
// loopback, unless InsecureGossip says so. A keyring kept in the data
// directory by an earlier run counts as a key. The p2p profile has its own
// rule (a key or an allow-list), checked by mesh.New.
func (c *Config) checkGossipKey() error {
	if c.preset().P2P || c.InsecureGossip || c.EncryptKey != "" || c.KeyringFile != "" {
		return nil
	}
	host, _, _ := splitHostPort("bind", c.Bind)
	if isLoopback(host) {
		return nil
	}
	if c.DataDir != "" {
		if _, err := os.Stat(filepath.Join(c.DataDir, "keyring.json")); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: gossip bind %s is not a loopback address and no gossip key is set: anyone who reaches it could join the mesh, publish load and be picked. "+
		"Set a key (--encrypt \"$(shoal keygen)\", SHOAL_ENCRYPT, or --keyring-file), or accept an open mesh with --insecure-gossip (SHOAL_INSECURE_GOSSIP=true)", ErrConfig, c.Bind)
}

// splitHostPort reads a gossip address: memberlist binds and advertises IP
// addresses only.
func splitHostPort(what, s string) (string, int, error) {
	host, p, err := splitAddr(what, s)
	if err == nil && host != "" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%w: %s %q: host must be an IP address (gossip binds and advertises IPs; %q is a name)", ErrConfig, what, clip(s), clip(host))
	}
	return host, p, err
}

// splitListenAddr reads an HTTP listen address (API, proxy): an IP or a
// host name such as localhost, which net.Listen resolves.
func splitListenAddr(what, s string) (string, int, error) {
	return splitAddr(what, s)
}

func splitAddr(what, s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		why := err.Error()
		var ae *net.AddrError
		if errors.As(err, &ae) {
			why = ae.Err // without the address, which may be huge
		}
		return "", 0, fmt.Errorf("%w: %s %q: want host:port (%s)", ErrConfig, what, clip(s), why)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%w: %s %q: port must be 0–65535", ErrConfig, what, clip(s))
	}
	return host, p, nil
}

// isLoopback reports whether host (an IP or "localhost") names this host
// only. Any other name counts as reachable from the network.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// maxEcho bounds a value quoted back in an error message.
const maxEcho = 64

// clip cuts a value for an error message, saying how much was left out.
func clip(s string) string {
	if len(s) <= maxEcho {
		return s
	}
	cut := maxEcho
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:cut], len(s))
}
