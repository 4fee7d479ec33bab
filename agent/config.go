package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

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
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("duration %s: want a string like \"1.5s\" or seconds", b)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Config is everything an agent needs. Flags, SHOAL_* environment variables
// and the optional JSON config file only fill this struct; Validate checks it.
type Config struct {
	// NodeName is this node's unique name; default: the hostname.
	NodeName string `json:"node_name"`
	// Bind is the gossip address (UDP and TCP), host:port.
	Bind string `json:"bind"`
	// Advertise is the address other members dial, host:port; default: Bind.
	Advertise string `json:"advertise"`
	// Profile is lan, wan or local (fast timings for tests and dev meshes),
	// or p2p (memberlist over libp2p; the node name becomes the peer ID of
	// the key kept in DataDir).
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
	// P2PPublicNets lists CIDR ranges libp2p should treat as public for hole
	// punching: the outside of the NATs when it is a private WAN, CGNAT
	// (100.64.0.0/10) or a test network.
	P2PPublicNets []string `json:"p2p_public_nets"`
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
	// DataDir keeps the membership snapshot and the keyring.
	DataDir string `json:"data_dir"`
	// EncryptKey is a base64 gossip key ('shoal keygen'); KeyringFile a
	// JSON array of such keys, primary first.
	EncryptKey  string `json:"encrypt"`
	KeyringFile string `json:"keyring_file"`
	// Label keeps meshes sharing a network apart.
	Label string `json:"label"`
	// HTTPAddr is where the API, /metrics and the dashboard listen.
	HTTPAddr string `json:"http_addr"`
	// APIToken protects the API; required when HTTPAddr is not loopback.
	APIToken string `json:"api_token"`
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
	// Scale is autoscaling: the provider and the policy (scale_adapter.go).
	Scale ScaleConfig `json:"scale"`
	// EnableDebug serves test hooks such as POST /v1/debug/load.
	EnableDebug bool `json:"enable_debug"`
}

// DefaultConfig returns the defaults for a production agent.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		NodeName:       sanitizeName(host),
		Bind:           "0.0.0.0:7946",
		Profile:        mesh.ProfileLAN,
		Tags:           map[string]string{},
		RetryInterval:  Duration(time.Second),
		LeaveOnTerm:    true,
		HTTPAddr:       "127.0.0.1:7950",
		SampleInterval: Duration(time.Second),
		HalfLife:       Duration(5 * time.Second),
		LogLevel:       "info",
		Scale:          DefaultScaleConfig(),
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

// LoadFile fills c from a JSON config file; unknown fields are errors.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// ParseTag parses one key=value tag.
func ParseTag(s string) (string, string, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return "", "", fmt.Errorf("%w: tag %q: want key=value", ErrConfig, s)
	}
	if len(k) > 64 || len(v) > 128 {
		return "", "", fmt.Errorf("%w: tag %q: key at most 64 bytes, value at most 128", ErrConfig, s)
	}
	if k == mesh.TagShoal || k == TagPriority {
		return "", "", fmt.Errorf("%w: tag %q: key %q is reserved", ErrConfig, s, k)
	}
	return k, v, nil
}

// TagPriority carries Config.Priority in the node's tags.
const TagPriority = "priority"

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
	switch c.Profile {
	case mesh.ProfileLAN, mesh.ProfileWAN, mesh.ProfileLocal, mesh.ProfileP2P:
	default:
		return fmt.Errorf("%w: profile %q: use lan, wan, local or p2p", ErrConfig, c.Profile)
	}
	if c.Profile != mesh.ProfileP2P && (len(c.P2PBootstrap) > 0 || c.Relay || c.MDNS || len(c.P2PAllowPeers) > 0 || c.P2PMaxPeers != 0 || len(c.P2PPublicNets) > 0) {
		return fmt.Errorf("%w: --p2p-bootstrap, --relay, --mdns and the other --p2p-* settings need --profile p2p", ErrConfig)
	}
	if c.P2PMaxPeers < 0 || c.P2PMaxPeers > 100000 {
		return fmt.Errorf("%w: p2p max peers %d: use 1 to 100000 (0: 512)", ErrConfig, c.P2PMaxPeers)
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
	if c.RetryMax < 0 {
		return fmt.Errorf("%w: retry-max %d is negative", ErrConfig, c.RetryMax)
	}
	if c.RetryInterval < Duration(10*time.Millisecond) {
		return fmt.Errorf("%w: retry-interval %v below 10ms", ErrConfig, time.Duration(c.RetryInterval))
	}
	host, _, err := splitHostPort("http-addr", c.HTTPAddr)
	if err != nil {
		return err
	}
	if !isLoopback(host) && c.APIToken == "" {
		return fmt.Errorf("%w: http-addr %s is not loopback: set an API token (--api-token or SHOAL_API_TOKEN) so the API is not open to the network", ErrConfig, c.HTTPAddr)
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
		if _, _, err := splitHostPort("proxy-listen", c.ProxyListen); err != nil {
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
	return nil
}

func splitHostPort(what, s string) (string, int, error) {
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %s %q: want host:port (%v)", ErrConfig, what, s, err)
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%w: %s %q: host must be an IP address", ErrConfig, what, s)
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("%w: %s %q: port must be 0–65535", ErrConfig, what, s)
	}
	return host, p, nil
}

func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
