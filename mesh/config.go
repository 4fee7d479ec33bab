package mesh

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"time"

	"github.com/shoalmesh/shoal/metrics"
)

// Profiles name a set of timings. lan and wan are memberlist's and serf's own
// defaults (so a stock serf agent on the same profile can share the pool);
// local is for tests and the dev mesh on one machine.
const (
	ProfileLAN   = "lan"
	ProfileWAN   = "wan"
	ProfileLocal = "local"
	ProfileP2P   = "p2p"
)

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid mesh configuration")

// Config configures a Mesh. Only NodeName is required; zero values take the
// profile's defaults.
type Config struct {
	// NodeName is this node's unique name in the mesh (1–128 bytes).
	NodeName string
	// BindAddr and BindPort are where the gossip port listens (UDP and TCP).
	// Port 0 picks a free port.
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other members dial; empty
	// and 0 mean the bound address and port.
	AdvertiseAddr string
	AdvertisePort int
	// Profile names the timings: lan, wan, local or p2p (lan's, with
	// stream timeouts for relays and NATs). The p2p profile goes with
	// P2PTransport, and the others with any other transport.
	Profile string
	// Transport carries the mesh: NetTransport (nil means it),
	// P2PTransport (the node name is then the peer ID of the key kept in
	// DataDir), or MemoryTransport for tests.
	Transport Transport
	// Tags are static key=value facts about this node, gossiped with its
	// membership (role, service, port, capacity ...). The reserved keys
	// (see ReservedTags) are refused: the mesh sets those itself.
	Tags map[string]string
	// Priority is this node's election priority, gossiped in TagPriority.
	Priority int
	// DataDir holds the membership snapshot (rejoin after restart) and the
	// persisted keyring. Empty: nothing is kept.
	DataDir string
	// RejoinAfterLeave makes a node that left gracefully rejoin the members
	// of its snapshot on restart (a node that crashed always does).
	RejoinAfterLeave bool
	// ReconnectTimeout is how long a failed member is kept (and retried)
	// before it is reaped from the member list; 0 keeps the profile's
	// (serf's 24 h on lan and wan, 30 s on local).
	ReconnectTimeout time.Duration
	// Keys are gossip encryption keys (16, 24 or 32 bytes), primary first.
	// Empty: gossip is not encrypted. A keyring persisted in DataDir by an
	// earlier run wins over these, since rotations change it.
	Keys [][]byte
	// Label keeps two meshes on one network apart: packets with another
	// label are dropped. Both sides must use the same label.
	Label string
	// GossipInterval is the relay's round: each round a node passes on
	// every broadcast it holds that has the round's bit left (one packet,
	// to one member) and, every third round, asks a peer for what it
	// lacks. Rounds are cut on the wall clock.
	GossipInterval time.Duration
	// ConfirmInterval is how often a node broadcasts its load: all members
	// on the same rounds of the wall clock (waves); a load that moved far
	// (Urgent) goes out in the round it is sampled in, a small move with
	// the next wave. 0: by the
	// number of members n, max(2 rounds, 1 s, 0.6 s × (n/100)^0.37): 1 s up
	// to 400, 1.4 s at 1,000, 3.3 s at 10,000 (see ConfirmIntervalFor).
	ConfirmInterval time.Duration
	// PacketBudget bounds the bytes of entries per packet; more go in
	// further packets.
	PacketBudget int
	// Load returns this node's current load; false while none is known.
	Load func() (metrics.Load, bool)
	// LoadChanged, if set, receives a value whenever Load may return
	// something new (a sample was taken, a synthetic load set). The relay
	// then sleeps through rounds with nothing to send, receive or confirm.
	// It reads Load on each signal, and runs the next round for it only if
	// the load moved past a bucket (Moved) since it last published; it
	// reads Load again in every round it runs. Without it Load is read,
	// and the relay's timer fires, every round.
	LoadChanged <-chan struct{}
	// OnElection receives election message bodies from other members. It
	// is called from the receive goroutine and must not block.
	OnElection func(from string, body []byte)
	// OnEvent receives membership events; it must not block.
	OnEvent func(Event)
	// Logger receives the mesh's logs (serf's and memberlist's included).
	Logger *slog.Logger
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidName reports whether s is a valid node name.
func ValidName(s string) bool { return nameRE.MatchString(s) }

func (c *Config) withDefaults() {
	if c.Transport == nil {
		c.Transport = NetTransport()
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
		if _, ok := c.Transport.(p2pSpec); ok {
			c.Profile = ProfileP2P
		}
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.GossipInterval == 0 {
		c.GossipInterval = profiles[c.Profile].gossipInterval // 0 for no profile: validate says so
	}
	if c.PacketBudget == 0 {
		c.PacketBudget = 1400
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	if !ValidName(c.NodeName) {
		return fmt.Errorf("%w: node name %q: use 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrConfig, c.NodeName)
	}
	if !ValidProfile(c.Profile) {
		return fmt.Errorf("%w: profile %q: use lan, wan, local or p2p", ErrConfig, c.Profile)
	}
	if _, isP2P := c.Transport.(p2pSpec); isP2P != (c.Profile == ProfileP2P) {
		return fmt.Errorf("%w: profile %q with a %s transport: the p2p profile and P2PTransport go together", ErrConfig, c.Profile, transportName(c.Transport))
	}
	if net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("%w: bind address %q is not an IP address", ErrConfig, c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("%w: advertise address %q is not an IP address", ErrConfig, c.AdvertiseAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return fmt.Errorf("%w: bind port %d out of range 0–65535", ErrConfig, c.BindPort)
	}
	if c.AdvertisePort < 0 || c.AdvertisePort > 65535 {
		return fmt.Errorf("%w: advertise port %d out of range 0–65535", ErrConfig, c.AdvertisePort)
	}
	for k := range c.Tags {
		if err := CheckUserTag(k); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	for i, k := range c.Keys {
		if l := len(k); l != 16 && l != 24 && l != 32 {
			return fmt.Errorf("%w: gossip key %d is %d bytes; keys are 16, 24 or 32 bytes (make one with 'shoal keygen')", ErrConfig, i+1, l)
		}
	}
	if len(c.Label) > 255 {
		return fmt.Errorf("%w: label of %d bytes, at most 255", ErrConfig, len(c.Label))
	}
	if c.GossipInterval < 10*time.Millisecond {
		return fmt.Errorf("%w: gossip interval %v below 10ms", ErrConfig, c.GossipInterval)
	}
	if c.ConfirmInterval != 0 && c.ConfirmInterval < c.GossipInterval {
		return fmt.Errorf("%w: confirm interval %v below the gossip interval %v", ErrConfig, c.ConfirmInterval, c.GossipInterval)
	}
	if c.PacketBudget < 128 || c.PacketBudget > 60000 {
		return fmt.Errorf("%w: packet budget %d outside 128–60000 bytes", ErrConfig, c.PacketBudget)
	}
	return nil
}

func transportName(t Transport) string {
	switch t.(type) {
	case netTransport:
		return "UDP/TCP"
	case p2pSpec:
		return "libp2p"
	case memTransport:
		return "memory"
	}
	return fmt.Sprintf("%T", t)
}

// ParseKey decodes a base64 gossip key (as printed by 'shoal keygen') and
// checks its length.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("gossip key %q is not valid base64: %w", abbreviate(s), err)
	}
	if l := len(k); l != 16 && l != 24 && l != 32 {
		return nil, fmt.Errorf("gossip key %q decodes to %d bytes; keys are 16, 24 or 32 bytes (make one with 'shoal keygen')", abbreviate(s), l)
	}
	return k, nil
}

// ReadKeyringFile reads a keyring file: a JSON array of base64 keys, the
// primary first (serf's format, so serf's files work too).
func ReadKeyringFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyringFile+1))
	if err != nil {
		return nil, fmt.Errorf("keyring file: %w", err)
	}
	return ParseKeyring(path, b)
}

// MaxKeyringFile bounds a keyring file: a few hundred keys.
const MaxKeyringFile = 64 << 10

// ParseKeyring decodes the content of the keyring file at path (named in
// errors): at most MaxKeyringFile bytes, a JSON array of one or more
// base64 keys of 16, 24 or 32 bytes, the primary first.
func ParseKeyring(path string, b []byte) ([][]byte, error) {
	if len(b) > MaxKeyringFile {
		return nil, fmt.Errorf("keyring file %s is over %d bytes", path, MaxKeyringFile)
	}
	var ks []string
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("keyring file %s: not a JSON array of base64 keys: %w", path, err)
	}
	if len(ks) == 0 {
		return nil, fmt.Errorf("keyring file %s holds no keys", path)
	}
	out := make([][]byte, 0, len(ks))
	for _, s := range ks {
		k, err := ParseKey(s)
		if err != nil {
			return nil, fmt.Errorf("keyring file %s: %w", path, err)
		}
		out = append(out, k)
	}
	return out, nil
}

func abbreviate(s string) string {
	if len(s) > 12 {
		return s[:6] + "…" + s[len(s)-4:]
	}
	return s
}
