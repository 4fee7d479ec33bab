// Package client is the Go client of a Shoal agent's HTTP API, and the wire
// types that API speaks. It imports only the standard library, so programs
// that ask an agent about the mesh stay small.
package client

// Load is a member's load as the API reports it (see metrics.Load).
type Load struct {
	CPUPercent   float64 `json:"cpu_percent"`
	MemPercent   float64 `json:"mem_percent"`
	MemAvailable uint64  `json:"mem_available_bytes"`
	NetRxBps     float64 `json:"net_rx_bps"`
	NetTxBps     float64 `json:"net_tx_bps"`
	Load1        float64 `json:"load1"`
	Cores        float64 `json:"cores"`
}

// Member is one member as the asked agent sees it.
type Member struct {
	Name   string            `json:"name"`
	Addr   string            `json:"addr"`
	Port   int               `json:"port"`
	Status string            `json:"status"`
	Tags   map[string]string `json:"tags"`
	Self   bool              `json:"self"`
	// Load is nil when no load has arrived from the member yet.
	Load *Load `json:"load"`
	// LoadAgeSeconds is how long ago the member published Load; -1 if none.
	LoadAgeSeconds float64 `json:"load_age_seconds"`
	// P2PConn tells, on the p2p profile, how the agent reaches the member:
	// direct, relayed (through a circuit relay), idle (its connection was
	// closed as idle, --p2p-idle-conn-timeout; the next packet reconnects)
	// or none.
	P2PConn string `json:"p2p_conn,omitempty"`
	// Coordinator is true on the member the agent names as coordinator.
	Coordinator bool `json:"coordinator"`
	// Share is what the agent measured of the member (GET /v1/load only;
	// nil elsewhere, and for a member the agent does not track).
	Share *MemberShare `json:"share,omitempty"`
}

// MemberShare is what the asked agent measured of one member: its share of
// the picks it answered and of the requests its proxy forwarded, and how much
// of the time the member was alive. Shares are taken within the member's
// service (its service tag; "" groups the members without one), so that the
// shares of a service's members sum to 1; -1 means no pick (or proxied
// request) went to that service yet.
type MemberShare struct {
	// Service is the member's service tag ("" for none): the group its
	// shares are taken in.
	Service string `json:"service"`
	// Picks counts the times GET /v1/pick on this agent returned the
	// member (n=3 counts once for each of the three members returned).
	Picks     uint64  `json:"picks"`
	PickShare float64 `json:"pick_share"`
	// ProxyRequests counts the requests this agent's proxy forwarded to
	// the member and got a response for (any status).
	ProxyRequests uint64  `json:"proxy_requests"`
	ProxyShare    float64 `json:"proxy_share"`
	// Uptime is the fraction of the time since this agent first saw the
	// member alive that it was alive; UptimeRecent the same over the last
	// Measured.RecentSeconds (or since first seen alive, if later).
	Uptime       float64 `json:"uptime"`
	UptimeRecent float64 `json:"uptime_recent"`
	// ObservedSeconds is how long ago this agent first saw the member alive.
	ObservedSeconds float64 `json:"observed_seconds"`
}

// Measured puts what the asked agent measured beside the simple model of a
// cluster of n interchangeable nodes: each takes P = N/n of N requests
// (ModelShare = 1/n) and the cluster's availability is A = 1 - 1/n.
type Measured struct {
	// N is the number of alive members now.
	N                 int     `json:"n"`
	ModelShare        float64 `json:"model_share"`        // 1/n (0 when n = 0)
	ModelAvailability float64 `json:"model_availability"` // 1 - 1/n (0 when n = 0)
	// UptimeMean is the mean Uptime of the members listed (failed and left
	// ones included, until they are forgotten), over their lifetime and
	// over the recent window.
	UptimeMean       float64 `json:"uptime_mean"`
	UptimeRecentMean float64 `json:"uptime_recent_mean"`
	// Availability is the fraction of the time since a member was first
	// healthy for GET /v1/pick without a service (alive with a load sample
	// no older than the pickers' limit, 30 s) during which one was; -1
	// before any was.
	Availability       float64 `json:"availability"`
	AvailabilityRecent float64 `json:"availability_recent"`
	// RecentSeconds is the length of the recent window.
	RecentSeconds float64 `json:"recent_seconds"`
	// Picks and ProxyRequests are the totals the shares are taken from.
	Picks         uint64 `json:"picks"`
	ProxyRequests uint64 `json:"proxy_requests"`
	// Services has one entry per service (service tag) sorted by name; the
	// members without a service tag are the entry with Service "" when any
	// exist.
	Services []ServiceMeasured `json:"services"`
}

// ServiceMeasured is one service's model and measured figures.
type ServiceMeasured struct {
	Service string `json:"service"`
	// N is the number of alive members with this service tag; Healthy how
	// many of them GET /v1/pick?service=S could return now: alive, with a
	// numeric port tag and a load sample no older than 30 s.
	N                 int     `json:"n"`
	Healthy           int     `json:"healthy"`
	ModelShare        float64 `json:"model_share"`
	ModelAvailability float64 `json:"model_availability"`
	// Availability is the fraction of the time since this agent first saw
	// the service healthy during which at least one of its members was
	// healthy (the clock starts at the first healthy moment, so that an
	// agent's start-up, before any load sample has arrived, is not counted
	// as downtime); -1 before that, and for the group of members without a
	// service (which nothing picks by name).
	Availability       float64 `json:"availability"`
	AvailabilityRecent float64 `json:"availability_recent"`
	// Picks and ProxyRequests are the service's totals; the shares of its
	// alive members range from PickShareMin to PickShareMax (-1 without
	// picks), and likewise for the proxy.
	Picks         uint64  `json:"picks"`
	PickShareMin  float64 `json:"pick_share_min"`
	PickShareMax  float64 `json:"pick_share_max"`
	ProxyRequests uint64  `json:"proxy_requests"`
	ProxyShareMin float64 `json:"proxy_share_min"`
	ProxyShareMax float64 `json:"proxy_share_max"`
}

// GossipStats counts traffic through the agent's gossip port.
type GossipStats struct {
	PacketsIn      uint64 `json:"packets_in"`
	PacketsOut     uint64 `json:"packets_out"`
	BytesIn        uint64 `json:"bytes_in"`
	BytesOut       uint64 `json:"bytes_out"`
	LoadPacketsIn  uint64 `json:"load_packets_in"`
	LoadPacketsOut uint64 `json:"load_packets_out"`
	LoadBytesIn    uint64 `json:"load_bytes_in"`
	LoadBytesOut   uint64 `json:"load_bytes_out"`
	Dropped        uint64 `json:"dropped"`
	SendErrors     uint64 `json:"send_errors"`
}

// Info describes the asked agent.
type Info struct {
	Node          string            `json:"node"`
	Version       string            `json:"version"`
	Profile       string            `json:"profile"`
	Gossip        string            `json:"gossip_addr"`
	HTTP          string            `json:"http_addr"`
	UptimeSeconds float64           `json:"uptime_seconds"`
	Tags          map[string]string `json:"tags"`
	Load          *Load             `json:"load"`
	Encrypted     bool              `json:"encrypted"`
	Members       map[string]int    `json:"members"`
	Traffic       GossipStats       `json:"gossip"`
	// P2P is the p2p transport's view; nil on the other profiles.
	P2P *P2PInfo `json:"p2p,omitempty"`
}

// P2PInfo is what the p2p profile adds to Info: addresses and counters.
type P2PInfo struct {
	// Addrs are the node's multiaddrs with its peer ID: what others give
	// as --join or --p2p-bootstrap.
	Addrs []string `json:"addrs"`
	// RefusedKey counts peers that could not prove the mesh key;
	// RefusedGater connections turned away (refused lately, not allowed).
	RefusedKey   uint64 `json:"refused_key"`
	RefusedGater uint64 `json:"refused_gater"`
	// QueueDrops counts packets dropped on a full send queue.
	QueueDrops        uint64 `json:"queue_drops"`
	DialFailures      uint64 `json:"dial_failures"`
	BootstrapFailures uint64 `json:"bootstrap_failures"`
	// PacketsDirect and PacketsRelayed count packets sent on direct and on
	// relayed connections.
	PacketsDirect  uint64 `json:"packets_direct"`
	PacketsRelayed uint64 `json:"packets_relayed"`
	// HolePunches counts finished hole-punch attempts, HolePunchesDirect
	// those that gave a direct connection; Upgrades counts packet streams
	// moved off a relay.
	HolePunches       uint64 `json:"hole_punches"`
	HolePunchesDirect uint64 `json:"hole_punches_direct"`
	Upgrades          uint64 `json:"upgrades"`
	// PunchRetries counts relayed connections closed to start another
	// hole punch (peers still relayed after the first one).
	PunchRetries uint64 `json:"punch_retries"`
	// Relays are the slots this node holds at relays.
	Relays []RelaySlot `json:"relays"`
}

// RelaySlot is a reservation at a relay: until when, and how long and how
// many bytes one relayed connection may carry there (0: no limit).
type RelaySlot struct {
	Relay               string  `json:"relay"`
	Expires             string  `json:"expires"`
	CircuitLimitSeconds float64 `json:"circuit_limit_seconds"`
	CircuitLimitBytes   uint64  `json:"circuit_limit_bytes"`
}

// Health is the agent's liveness answer.
type Health struct {
	Status  string `json:"status"`
	Node    string `json:"node"`
	Alive   int    `json:"alive"`
	Members int    `json:"members"`
}

// Aggregate summarises the load of the alive members that reported one.
type Aggregate struct {
	Members    int     `json:"members"`
	CPUMean    float64 `json:"cpu_mean"`
	CPUMax     float64 `json:"cpu_max"`
	MemMean    float64 `json:"mem_mean"`
	MemMax     float64 `json:"mem_max"`
	NetRxBps   float64 `json:"net_rx_bps"`
	NetTxBps   float64 `json:"net_tx_bps"`
	Cores      float64 `json:"cores"`
	MaxAgeSecs float64 `json:"max_age_seconds"`
}

// LoadReport is the mesh's load table with its aggregate.
type LoadReport struct {
	Members   []Member  `json:"members"`
	Aggregate Aggregate `json:"aggregate"`
	// Measured is the shares and availability the agent measured, beside
	// the model's figures for the current n; nil from an older agent.
	Measured *Measured `json:"measured,omitempty"`
}

// JoinRequest asks the agent to join these addresses.
type JoinRequest struct {
	Addrs []string `json:"addrs"`
}

// JoinResponse says how many addresses answered.
type JoinResponse struct {
	Joined int `json:"joined"`
}

// ForceLeaveRequest marks a failed member as left.
type ForceLeaveRequest struct {
	Node  string `json:"node"`
	Prune bool   `json:"prune"`
}

// KeyRequest names a gossip key (base64) for install, use or remove.
type KeyRequest struct {
	Key string `json:"key"`
}

// KeysResponse is the mesh's answer to a keyring operation.
type KeysResponse struct {
	Messages    map[string]string `json:"messages"`
	NumNodes    int               `json:"num_nodes"`
	NumResp     int               `json:"num_resp"`
	NumErr      int               `json:"num_err"`
	Keys        map[string]int    `json:"keys,omitempty"`
	PrimaryKeys map[string]int    `json:"primary_keys,omitempty"`
}

// Event is one of the agent's recent events.
type Event struct {
	Time   string `json:"time"`
	Type   string `json:"type"`
	Member string `json:"member,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// ErrorBody is what the API answers with on an error.
type ErrorBody struct {
	Error string `json:"error"`
}
