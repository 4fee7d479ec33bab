package agent

// The one table of the agent's settings. Everything that fills a Config
// comes from it: the command-line flags (cmd/shoal builds them), their SHOAL_*
// environment variables, the config file's keys (configfile.go decodes
// with it), the groups of 'shoal agent --help' and docs/config.md
// (configdoc.go renders it; `go generate ./agent` rewrites the file).
// TestSettingsCoverConfig holds the table and Config to each other.

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/loadshare"
)

//go:generate go run ../internal/configdoc -o ../docs/config.md

// Setting is one agent setting.
type Setting struct {
	// Name is the flag (--Name) and the config file's key.
	Name string
	// Env is the environment variable, SHOAL_ and the name in capitals.
	Env string
	// Category is the group in 'shoal agent --help' and docs/config.md:
	// one of Categories.
	Category string
	// Help is the flag's one-line description.
	Help string
	// Field returns a pointer to the Config field the setting fills: a
	// *string, *bool, *int, *float64, *Duration, *[]string (a repeatable
	// flag) or *map[string]string (a repeatable key=value flag).
	Field func(*Config) any
	// ParseItem parses one key=value item of a map setting (nil: any
	// non-empty key). Flags and environment variables go through it; a
	// config file gives the map as a JSON object, which Validate checks.
	ParseItem func(string) (key, value string, err error)
	// DefaultText, when set, is the default docs/config.md shows instead
	// of DefaultConfig's value (which may depend on the host).
	DefaultText string
}

// Help groups, in the order 'shoal agent --help' and docs/config.md show them.
const (
	CatNode         = "Node"
	CatJoining      = "Joining"
	CatSecurity     = "Security"
	CatAPI          = "API, logs and load sampling"
	CatCoordination = "Coordination"
	CatScale        = "Autoscaling"
	CatProxy        = "Forwarding proxy"
	CatP2P          = "p2p (--profile p2p)"
)

// Categories lists the help groups in order.
var Categories = []string{CatNode, CatJoining, CatSecurity, CatAPI, CatCoordination, CatScale, CatProxy, CatP2P}

// settings is the table.
//
// TO ADD A SETTING: add the field to Config (or ScaleConfig), with a
// comment and a json tag, and ONE entry here, in its group. That is all:
// the flag, the SHOAL_* variable, the config file key (the flag's name, and
// the json tag's name for files written before this table), the help group
// and docs/config.md (`go generate ./agent`) follow from it, and
// TestSettingsCoverConfig fails until field and entry match. Check values
// in Config.Validate. Entries are independent lines so that rebases
// touching different settings do not conflict.
var settings = []Setting{
	// Node
	{Name: "node", Env: "SHOAL_NODE", Category: CatNode, Field: func(c *Config) any { return &c.NodeName },
		Help: "node name, unique in the mesh", DefaultText: "the host name"},
	{Name: "bind", Env: "SHOAL_BIND", Category: CatNode, Field: func(c *Config) any { return &c.Bind },
		Help: "gossip address (UDP and TCP), ip:port"},
	{Name: "advertise", Env: "SHOAL_ADVERTISE", Category: CatNode, Field: func(c *Config) any { return &c.Advertise },
		Help: "address other members dial, ip:port"},
	{Name: "profile", Env: "SHOAL_PROFILE", Category: CatNode, Field: func(c *Config) any { return &c.Profile },
		Help: "lan, wan, local (timings) or p2p (libp2p: QUIC/TCP, NAT traversal; the node name is the peer ID)"},
	{Name: "tag", Env: "SHOAL_TAGS", Category: CatNode, Field: func(c *Config) any { return &c.Tags }, ParseItem: ParseTag,
		Help: "key=value tag (repeatable)"},
	{Name: "data-dir", Env: "SHOAL_DATA_DIR", Category: CatNode, Field: func(c *Config) any { return &c.DataDir },
		Help: "directory for the membership snapshot and keyring"},
	{Name: "label", Env: "SHOAL_LABEL", Category: CatNode, Field: func(c *Config) any { return &c.Label },
		Help: "mesh label: meshes with different labels never mix"},

	// Joining
	{Name: "join", Env: "SHOAL_JOIN", Category: CatJoining, Field: func(c *Config) any { return &c.Join },
		Help: "address of a member to join (repeatable)"},
	{Name: "retry-join", Env: "SHOAL_RETRY_JOIN", Category: CatJoining, Field: func(c *Config) any { return &c.RetryJoin },
		Help: "keep retrying the join list with backoff"},
	{Name: "retry-max", Env: "SHOAL_RETRY_MAX", Category: CatJoining, Field: func(c *Config) any { return &c.RetryMax },
		Help: "join attempts with --retry-join (0: forever)"},
	{Name: "retry-interval", Env: "SHOAL_RETRY_INTERVAL", Category: CatJoining, Field: func(c *Config) any { return &c.RetryInterval },
		Help: "first wait between join attempts (doubles)"},
	{Name: "leave-on-terminate", Env: "SHOAL_LEAVE_ON_TERMINATE", Category: CatJoining, Field: func(c *Config) any { return &c.LeaveOnTerm },
		Help: "leave gracefully on SIGTERM/SIGINT"},
	{Name: "rejoin-after-leave", Env: "SHOAL_REJOIN_AFTER_LEAVE", Category: CatJoining, Field: func(c *Config) any { return &c.RejoinAfterLeave },
		Help: "rejoin snapshot members even after a graceful leave"},
	{Name: "reconnect-timeout", Env: "SHOAL_RECONNECT_TIMEOUT", Category: CatJoining, Field: func(c *Config) any { return &c.ReconnectTimeout },
		Help: "how long a failed member stays listed (and is retried) before it is reaped (0: the profile's, 24h on lan and wan, 30s on local)"},

	// Security
	{Name: "encrypt", Env: "SHOAL_ENCRYPT", Category: CatSecurity, Field: func(c *Config) any { return &c.EncryptKey },
		Help: "base64 gossip key (see 'shoal keygen')"},
	{Name: "keyring-file", Env: "SHOAL_KEYRING_FILE", Category: CatSecurity, Field: func(c *Config) any { return &c.KeyringFile },
		Help: "JSON array of base64 gossip keys, primary first"},
	{Name: "insecure-gossip", Env: "SHOAL_INSECURE_GOSSIP", Category: CatSecurity, Field: func(c *Config) any { return &c.InsecureGossip },
		Help: "gossip without a key on an address other than loopback (anyone who reaches the port can join and publish load)"},
	{Name: "api-token", Env: "SHOAL_API_TOKEN", Category: CatSecurity, Field: func(c *Config) any { return &c.APIToken },
		Help: "admin API token: every endpoint; once a token is set, writes need it on loopback too (a token or --tls-client-ca is required when --http-addr is not loopback)"},
	{Name: "api-read-token", Env: "SHOAL_API_READ_TOKEN", Category: CatSecurity, Field: func(c *Config) any { return &c.APIReadToken },
		Help: "read-only API token: status, members, load, pick, leader, metrics, events, dashboard"},
	{Name: "tls-cert", Env: "SHOAL_TLS_CERT", Category: CatSecurity, Field: func(c *Config) any { return &c.TLSCert },
		Help: "PEM certificate: serve the API over TLS (reloaded on SIGHUP)"},
	{Name: "tls-key", Env: "SHOAL_TLS_KEY", Category: CatSecurity, Field: func(c *Config) any { return &c.TLSKey },
		Help: "PEM private key of --tls-cert (reloaded on SIGHUP)"},
	{Name: "tls-client-ca", Env: "SHOAL_TLS_CLIENT_CA", Category: CatSecurity, Field: func(c *Config) any { return &c.TLSClientCA },
		Help: "PEM CA bundle: require API clients to present a certificate it signed (mTLS)"},

	// API, logs and load sampling
	{Name: "http-addr", Env: "SHOAL_HTTP_ADDR", Category: CatAPI, Field: func(c *Config) any { return &c.HTTPAddr },
		Help: "API, /metrics and dashboard address"},
	{Name: "sample-interval", Env: "SHOAL_SAMPLE_INTERVAL", Category: CatAPI, Field: func(c *Config) any { return &c.SampleInterval },
		Help: "load sampling interval"},
	{Name: "half-life", Env: "SHOAL_HALF_LIFE", Category: CatAPI, Field: func(c *Config) any { return &c.HalfLife },
		Help: "load smoothing half-life (0: none)"},
	{Name: "log-level", Env: "SHOAL_LOG_LEVEL", Category: CatAPI, Field: func(c *Config) any { return &c.LogLevel },
		Help: "debug, info, warn or error"},
	{Name: "log-json", Env: "SHOAL_LOG_JSON", Category: CatAPI, Field: func(c *Config) any { return &c.LogJSON },
		Help: "log as JSON lines"},
	{Name: "enable-debug", Env: "SHOAL_ENABLE_DEBUG", Category: CatAPI, Field: func(c *Config) any { return &c.EnableDebug },
		Help: "serve test hooks (POST /v1/debug/load sets a synthetic load) and Go's profiler at /debug/pprof/ (not in the small build, -tags nolibp2p)"},

	// Coordination
	{Name: "priority", Env: "SHOAL_PRIORITY", Category: CatCoordination, Field: func(c *Config) any { return &c.Priority },
		Help: "rank in coordinator elections (higher wins)"},
	{Name: "preempt", Env: "SHOAL_PREEMPT", Category: CatCoordination, Field: func(c *Config) any { return &c.Preempt },
		Help: "take over from a lower-ranked coordinator already in place"},
	{Name: "quorum", Env: "SHOAL_QUORUM", Category: CatCoordination, Field: func(c *Config) any { return &c.Quorum },
		Help: "members (counting this one) that must be seen to act as coordinator (0: a majority)"},
	{Name: "acting-log", Env: "SHOAL_ACTING_LOG", Category: CatCoordination, Field: func(c *Config) any { return &c.ActingLog },
		Help: "append one JSON line per change of this node's acting state and per lease renewal to FILE"},

	// Autoscaling
	{Name: "scale-provider", Env: "SHOAL_SCALE_PROVIDER", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Provider },
		Help: "autoscaling provider: dry-run, webhook, exec, aws, kubernetes (empty: off)"},
	{Name: "scale-provider-helper", Env: "SHOAL_SCALE_PROVIDER_HELPER", Category: CatScale, Field: func(c *Config) any { return &c.Scale.ProviderHelper },
		Help: "path of the shoal-provider binary, which runs the aws and kubernetes providers (empty: next to shoal, then on $PATH)"},
	{Name: "scale-resource", Env: "SHOAL_SCALE_RESOURCE", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Resource },
		Help: "what the provider scales: webhook URL, command, Auto Scaling group, [namespace/]deployment/NAME"},
	{Name: "scale-opt", Env: "SHOAL_SCALE_OPTS", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Options }, ParseItem: parseOption,
		Help: "provider option key=value (repeatable), e.g. secret=..., timeout=10s, region=eu-west-1"},
	{Name: "scale-metric", Env: "SHOAL_SCALE_METRIC", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Metric },
		Help: "watched metric: cpu, mem, net or tag:NAME, with :mean, :max, :min or :pNN"},
	{Name: "scale-target", Env: "SHOAL_SCALE_TARGET", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Target },
		Help: "target value of the metric per instance (HPA rule)"},
	{Name: "scale-tolerance", Env: "SHOAL_SCALE_TOLERANCE", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Tolerance },
		Help: "relative band around the target with no change (0.1 = ±10%)"},
	{Name: "scale-min", Env: "SHOAL_SCALE_MIN", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Min },
		Help: "fewest instances"},
	{Name: "scale-max", Env: "SHOAL_SCALE_MAX", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Max },
		Help: "most instances (0: unbounded)"},
	{Name: "scale-up-window", Env: "SHOAL_SCALE_UP_WINDOW", Category: CatScale, Field: func(c *Config) any { return &c.Scale.UpWindow },
		Help: "shortest window whose median demand must clear the band to scale up"},
	{Name: "scale-down-window", Env: "SHOAL_SCALE_DOWN_WINDOW", Category: CatScale, Field: func(c *Config) any { return &c.Scale.DownWindow },
		Help: "scale-down stabilization window"},
	{Name: "scale-up-cooldown", Env: "SHOAL_SCALE_UP_COOLDOWN", Category: CatScale, Field: func(c *Config) any { return &c.Scale.UpCooldown },
		Help: "wait after any action before scaling up"},
	{Name: "scale-down-cooldown", Env: "SHOAL_SCALE_DOWN_COOLDOWN", Category: CatScale, Field: func(c *Config) any { return &c.Scale.DownCooldown },
		Help: "wait after any action before scaling down"},
	{Name: "scale-up-step", Env: "SHOAL_SCALE_UP_STEP", Category: CatScale, Field: func(c *Config) any { return &c.Scale.UpStep },
		Help: "most instances added per step period (with --scale-up-step-percent, the larger wins)"},
	{Name: "scale-up-step-percent", Env: "SHOAL_SCALE_UP_STEP_PERCENT", Category: CatScale, Field: func(c *Config) any { return &c.Scale.UpStepPercent },
		Help: "most instances added per step period, in percent"},
	{Name: "scale-down-step", Env: "SHOAL_SCALE_DOWN_STEP", Category: CatScale, Field: func(c *Config) any { return &c.Scale.DownStep },
		Help: "most instances removed per step period"},
	{Name: "scale-down-step-percent", Env: "SHOAL_SCALE_DOWN_STEP_PERCENT", Category: CatScale, Field: func(c *Config) any { return &c.Scale.DownStepPercent },
		Help: "most instances removed per step period, in percent"},
	{Name: "scale-step-period", Env: "SHOAL_SCALE_STEP_PERIOD", Category: CatScale, Field: func(c *Config) any { return &c.Scale.StepPeriod },
		Help: "period of the step limits"},
	{Name: "scale-threshold", Env: "SHOAL_SCALE_THRESHOLDS", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Thresholds },
		Help: "thresholds mode rule, e.g. 'above 75% for 30s -> +1' (repeatable; replaces the HPA rule)"},
	{Name: "scale-dry-run", Env: "SHOAL_SCALE_DRY_RUN", Category: CatScale, Field: func(c *Config) any { return &c.Scale.DryRun },
		Help: "evaluate and record decisions, call no provider"},
	{Name: "scale-interval", Env: "SHOAL_SCALE_INTERVAL", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Interval },
		Help: "how often the policy is evaluated"},
	{Name: "scale-boot-time", Env: "SHOAL_SCALE_BOOT_TIME", Category: CatScale, Field: func(c *Config) any { return &c.Scale.BootTime },
		Help: "how long a new instance takes to serve, until the provider's ready counts show it"},
	{Name: "scale-trend-window", Env: "SHOAL_SCALE_TREND_WINDOW", Category: CatScale, Field: func(c *Config) any { return &c.Scale.TrendWindow },
		Help: "how far back the demand's trend is fitted (0: no trend)"},
	{Name: "scale-lookahead", Env: "SHOAL_SCALE_LOOKAHEAD", Category: CatScale, Field: func(c *Config) any { return &c.Scale.Lookahead },
		Help: "how far beyond the boot time the trend is projected"},

	// Forwarding proxy
	{Name: "proxy-listen", Env: "SHOAL_PROXY_LISTEN", Category: CatProxy, Field: func(c *Config) any { return &c.ProxyListen },
		Help: "run the forwarding proxy on this ip:port (needs --proxy-service)"},
	{Name: "proxy-service", Env: "SHOAL_PROXY_SERVICE", Category: CatProxy, Field: func(c *Config) any { return &c.ProxyService },
		Help: "the proxy forwards to members tagged service=NAME with a port tag"},
	{Name: "proxy-strategy", Env: "SHOAL_PROXY_STRATEGY", Category: CatProxy, Field: func(c *Config) any { return &c.ProxyStrategy },
		Help: "the proxy's picker: " + loadshare.Default + " (default), " + strings.Join(slices.DeleteFunc(loadshare.Strategies(), func(s string) bool { return s == loadshare.Default }), ", ")},
	{Name: "proxy-inflight-count", Env: "SHOAL_PROXY_INFLIGHT_COUNT", Category: CatProxy, Field: func(c *Config) any { return &c.ProxyInflightCount },
		Help: "add the proxy's own requests in flight to each member to its gossiped run queue when picking; false picks by gossiped load alone"},

	// p2p
	{Name: "p2p-bootstrap", Env: "SHOAL_P2P_BOOTSTRAP", Category: CatP2P, Field: func(c *Config) any { return &c.P2PBootstrap },
		Help: "p2p: bootstrap peer multiaddr /ip4/…/udp/…/quic-v1/p2p/<id> (repeatable)"},
	{Name: "relay", Env: "SHOAL_RELAY", Category: CatP2P, Field: func(c *Config) any { return &c.Relay },
		Help: "p2p: serve as a circuit relay for nodes behind NAT (needs a public address)"},
	{Name: "mdns", Env: "SHOAL_MDNS", Category: CatP2P, Field: func(c *Config) any { return &c.MDNS },
		Help: "p2p: find peers on the local network with mDNS"},
	{Name: "p2p-allow-peer", Env: "SHOAL_P2P_ALLOW_PEERS", Category: CatP2P, Field: func(c *Config) any { return &c.P2PAllowPeers },
		Help: "p2p: admit only these peer IDs (repeatable; in addition to the mesh key)"},
	{Name: "p2p-max-peers", Env: "SHOAL_P2P_MAX_PEERS", Category: CatP2P, Field: func(c *Config) any { return &c.P2PMaxPeers },
		Help: "p2p: size libp2p's connection and resource limits for this many peers (0: 512)"},
	{Name: "p2p-idle-conn-timeout", Env: "SHOAL_P2P_IDLE_CONN_TIMEOUT", Category: CatP2P, Field: func(c *Config) any { return &c.P2PIdleConnTimeout },
		Help: "p2p: close a direct connection no packet crossed for this long while more than --p2p-working-set peers are connected; the next packet reconnects; saves memory, costs a QUIC handshake for most probes (0: never)"},
	{Name: "p2p-working-set", Env: "SHOAL_P2P_WORKING_SET", Category: CatP2P, Field: func(c *Config) any { return &c.P2PWorkingSet },
		Help: "p2p: with --p2p-idle-conn-timeout, peers kept connected whatever their use (0: 12)"},
	{Name: "p2p-fast-timings", Env: "SHOAL_P2P_FAST_TIMINGS", Category: CatP2P, Field: func(c *Config) any { return &c.P2PFastTimings },
		Help: "p2p: memberlist's fast local timings (shoal dev and tests on one host; not for real networks)"},
	{Name: "p2p-public-net", Env: "SHOAL_P2P_PUBLIC_NETS", Category: CatP2P, Field: func(c *Config) any { return &c.P2PPublicNets },
		Help: "p2p: CIDR range to treat as public for hole punching (the outside of your NATs when it is a private WAN or CGNAT; repeatable)"},
}

// Settings returns the table, in help order within each group.
func Settings() []Setting { return slices.Clone(settings) }

// LookupSetting finds a setting by its name (the flag without "--").
func LookupSetting(name string) (Setting, bool) {
	for _, s := range settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// Kinds of setting, by the type of the field.
const (
	KindString   = "string"
	KindBool     = "bool"
	KindInt      = "int"
	KindFloat    = "float"
	KindDuration = "duration"
	KindList     = "list"      // []string: a repeatable flag, a JSON array
	KindMap      = "key=value" // map[string]string: a repeatable key=value flag, a JSON object
)

// Kind says how the setting is written, from its field's type.
func (s Setting) Kind() string {
	var c Config
	switch s.Field(&c).(type) {
	case *string:
		return KindString
	case *bool:
		return KindBool
	case *int:
		return KindInt
	case *float64:
		return KindFloat
	case *Duration:
		return KindDuration
	case *[]string:
		return KindList
	case *map[string]string:
		return KindMap
	}
	panic(fmt.Sprintf("agent: setting %s: field of type %T: add the type to Setting.Kind, configfile.go and cmd/shoal", s.Name, s.Field(&c)))
}

// LegacyKey is the config file key the setting had before the flag names
// became the keys: the Config field's json tag, with "scale." before a key
// of the scale section ("" when it is the same as Name). Files may use
// either; Config.LoadFile refuses both at once.
func (s Setting) LegacyKey() string {
	f, ok := fieldOf(s)
	if !ok || f.jsonPath == s.Name {
		return ""
	}
	return f.jsonPath
}

// FieldPath is the Config field the setting fills, as Go names it
// ("Scale.Provider").
func (s Setting) FieldPath() string {
	f, _ := fieldOf(s)
	return f.goPath
}

// AddItems parses key=value items into the setting's map (a map setting:
// the tags, the scale provider's options), keeping the keys already there.
func (s Setting) AddItems(c *Config, items []string) error {
	p, ok := s.Field(c).(*map[string]string)
	if !ok {
		return fmt.Errorf("agent: setting %s is not a key=value setting", s.Name)
	}
	parse := s.ParseItem
	if parse == nil {
		parse = func(kv string) (string, string, error) { return parseKV(s.Name, kv) }
	}
	for _, kv := range items {
		k, v, err := parse(kv)
		if err != nil {
			return err
		}
		if *p == nil {
			*p = map[string]string{}
		}
		(*p)[k] = v
	}
	return nil
}

// parseOption parses one scale provider option, key=value.
func parseOption(kv string) (string, string, error) { return parseKV("scale-opt", kv) }

func parseKV(name, kv string) (string, string, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return "", "", fmt.Errorf("%w: %s %q: want key=value", ErrConfig, name, clip(kv))
	}
	return k, v, nil
}

// DefaultString is the setting's default as docs/config.md shows it: its
// DefaultText, or DefaultConfig's value ("" for an empty or zero one that
// means "off" or "none").
func (s Setting) DefaultString() string {
	if s.DefaultText != "" {
		return s.DefaultText
	}
	d := DefaultConfig()
	return formatValue(s.Field(&d))
}

// formatValue writes a field's value as a flag would take it.
func formatValue(p any) string {
	switch v := p.(type) {
	case *string:
		return *v
	case *bool:
		return strconv.FormatBool(*v)
	case *int:
		return strconv.Itoa(*v)
	case *float64:
		return strconv.FormatFloat(*v, 'g', -1, 64)
	case *Duration:
		return time.Duration(*v).String()
	case *[]string:
		return strings.Join(*v, ",")
	case *map[string]string:
		keys := slices.Sorted(maps.Keys(*v))
		out := make([]string, len(keys))
		for i, k := range keys {
			out[i] = k + "=" + (*v)[k]
		}
		return strings.Join(out, ",")
	}
	return fmt.Sprint(p)
}

// configField is one leaf field of Config, found by walking it.
type configField struct {
	goPath   string // "Scale.Provider"
	jsonPath string // "scale.provider"
	addr     uintptr
	typ      reflect.Type
}

// configFields walks Config (and its struct sections, ScaleConfig) for the
// exported leaf fields, each with its address in the given Config.
func configFields(c *Config) []configField {
	var out []configField
	var walk func(v reflect.Value, goPrefix, jsonPrefix string)
	walk = func(v reflect.Value, goPrefix, jsonPrefix string) {
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" {
				name = sf.Name
			}
			fv := v.Field(i)
			if sf.Type.Kind() == reflect.Struct && sf.Type != reflect.TypeFor[Duration]() {
				walk(fv, goPrefix+sf.Name+".", jsonPrefix+name+".")
				continue
			}
			out = append(out, configField{goPrefix + sf.Name, jsonPrefix + name, fv.Addr().Pointer(), sf.Type})
		}
	}
	walk(reflect.ValueOf(c).Elem(), "", "")
	return out
}

// fieldsBySetting maps each setting's name to its field.
var fieldsBySetting = sync.OnceValue(func() map[string]configField {
	var c Config
	byAddr := map[uintptr]configField{}
	for _, f := range configFields(&c) {
		byAddr[f.addr] = f
	}
	out := map[string]configField{}
	for _, s := range settings {
		if f, ok := byAddr[reflect.ValueOf(s.Field(&c)).Pointer()]; ok {
			out[s.Name] = f
		}
	}
	return out
})

func fieldOf(s Setting) (configField, bool) {
	f, ok := fieldsBySetting()[s.Name]
	return f, ok
}
