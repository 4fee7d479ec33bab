package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/scale"
)

func env(name string) []string { return []string{"SHOAL_" + name} }

func agentFlags() []cli.Flag {
	d := agent.DefaultConfig()
	return append([]cli.Flag{
		&cli.StringFlag{Name: "config", EnvVars: env("CONFIG"), Usage: "JSON config file (flags and SHOAL_* variables override it)"},
		&cli.StringFlag{Name: "node", EnvVars: env("NODE"), Value: d.NodeName, Usage: "node name, unique in the mesh"},
		&cli.StringFlag{Name: "bind", EnvVars: env("BIND"), Value: d.Bind, Usage: "gossip address (UDP and TCP), ip:port"},
		&cli.StringFlag{Name: "advertise", EnvVars: env("ADVERTISE"), Usage: "address other members dial, ip:port"},
		&cli.StringFlag{Name: "profile", EnvVars: env("PROFILE"), Value: d.Profile, Usage: "lan, wan, local (timings) or p2p (libp2p: QUIC/TCP, NAT traversal; the node name is the peer ID)"},
		&cli.StringSliceFlag{Name: "p2p-bootstrap", EnvVars: env("P2P_BOOTSTRAP"), Usage: "p2p: bootstrap peer multiaddr /ip4/…/udp/…/quic-v1/p2p/<id> (repeatable)"},
		&cli.BoolFlag{Name: "relay", EnvVars: env("RELAY"), Usage: "p2p: serve as a circuit relay for nodes behind NAT (needs a public address)"},
		&cli.BoolFlag{Name: "mdns", EnvVars: env("MDNS"), Usage: "p2p: find peers on the local network with mDNS"},
		&cli.StringSliceFlag{Name: "p2p-allow-peer", EnvVars: env("P2P_ALLOW_PEERS"), Usage: "p2p: admit only these peer IDs (repeatable; in addition to the mesh key)"},
		&cli.IntFlag{Name: "p2p-max-peers", EnvVars: env("P2P_MAX_PEERS"), Usage: "p2p: size libp2p's connection and resource limits for this many peers (0: 512)"},
		&cli.BoolFlag{Name: "p2p-fast-timings", EnvVars: env("P2P_FAST_TIMINGS"), Usage: "p2p: memberlist's fast local timings (shoal dev and tests on one host; not for real networks)"},
		&cli.StringSliceFlag{Name: "p2p-public-net", EnvVars: env("P2P_PUBLIC_NETS"), Usage: "p2p: CIDR range to treat as public for hole punching (the outside of your NATs when it is a private WAN or CGNAT; repeatable)"},
		&cli.StringSliceFlag{Name: "tag", EnvVars: env("TAGS"), Usage: "key=value tag (repeatable)"},
		&cli.IntFlag{Name: "priority", EnvVars: env("PRIORITY"), Usage: "rank in coordinator elections (higher wins)"},
		&cli.BoolFlag{Name: "preempt", EnvVars: env("PREEMPT"), Usage: "take over from a lower-ranked coordinator already in place"},
		&cli.IntFlag{Name: "quorum", EnvVars: env("QUORUM"), Usage: "members (counting this one) that must be seen to act as coordinator (0: a majority)"},
		&cli.StringSliceFlag{Name: "join", EnvVars: env("JOIN"), Usage: "address of a member to join (repeatable)"},
		&cli.BoolFlag{Name: "retry-join", EnvVars: env("RETRY_JOIN"), Usage: "keep retrying the join list with backoff"},
		&cli.IntFlag{Name: "retry-max", EnvVars: env("RETRY_MAX"), Usage: "join attempts with --retry-join (0: forever)"},
		&cli.DurationFlag{Name: "retry-interval", EnvVars: env("RETRY_INTERVAL"), Value: time.Duration(d.RetryInterval), Usage: "first wait between join attempts (doubles)"},
		&cli.BoolFlag{Name: "leave-on-terminate", EnvVars: env("LEAVE_ON_TERMINATE"), Value: d.LeaveOnTerm, Usage: "leave gracefully on SIGTERM/SIGINT"},
		&cli.BoolFlag{Name: "rejoin-after-leave", EnvVars: env("REJOIN_AFTER_LEAVE"), Usage: "rejoin snapshot members even after a graceful leave"},
		&cli.DurationFlag{Name: "reconnect-timeout", EnvVars: env("RECONNECT_TIMEOUT"), Usage: "how long a failed member stays listed (and is retried) before it is reaped (0: the profile's, 24h on lan and wan, 30s on local)"},
		&cli.StringFlag{Name: "data-dir", EnvVars: env("DATA_DIR"), Usage: "directory for the membership snapshot and keyring"},
		&cli.StringFlag{Name: "acting-log", EnvVars: env("ACTING_LOG"), Usage: "append one JSON line per change of this node's acting state and per lease renewal to FILE"},
		&cli.StringFlag{Name: "encrypt", EnvVars: env("ENCRYPT"), Usage: "base64 gossip key (see 'shoal keygen')"},
		&cli.StringFlag{Name: "keyring-file", EnvVars: env("KEYRING_FILE"), Usage: "JSON array of base64 gossip keys, primary first"},
		&cli.BoolFlag{Name: "insecure-gossip", EnvVars: env("INSECURE_GOSSIP"), Usage: "gossip without a key on an address other than loopback (anyone who reaches the port can join and publish load)"},
		&cli.StringFlag{Name: "label", EnvVars: env("LABEL"), Usage: "mesh label: meshes with different labels never mix"},
		&cli.StringFlag{Name: "http-addr", EnvVars: env("HTTP_ADDR"), Value: d.HTTPAddr, Usage: "API, /metrics and dashboard address"},
		&cli.StringFlag{Name: "api-token", EnvVars: env("API_TOKEN"), Usage: "admin API token: every endpoint; once a token is set, writes need it on loopback too (a token or --tls-client-ca is required when --http-addr is not loopback)"},
		&cli.StringFlag{Name: "api-read-token", EnvVars: env("API_READ_TOKEN"), Usage: "read-only API token: status, members, load, pick, leader, metrics, events, dashboard"},
		&cli.StringFlag{Name: "tls-cert", EnvVars: env("TLS_CERT"), Usage: "serve the API over TLS with this certificate (PEM; reloaded on SIGHUP)"},
		&cli.StringFlag{Name: "tls-key", EnvVars: env("TLS_KEY"), Usage: "the --tls-cert certificate's private key (PEM; reloaded on SIGHUP)"},
		&cli.StringFlag{Name: "tls-client-ca", EnvVars: env("TLS_CLIENT_CA"), Usage: "require API clients to present a certificate signed by this CA (PEM; mutual TLS)"},
		&cli.DurationFlag{Name: "sample-interval", EnvVars: env("SAMPLE_INTERVAL"), Value: time.Duration(d.SampleInterval), Usage: "load sampling interval"},
		&cli.DurationFlag{Name: "half-life", EnvVars: env("HALF_LIFE"), Value: time.Duration(d.HalfLife), Usage: "load smoothing half-life (0: none)"},
		&cli.StringFlag{Name: "log-level", EnvVars: env("LOG_LEVEL"), Value: d.LogLevel, Usage: "debug, info, warn or error"},
		&cli.BoolFlag{Name: "log-json", EnvVars: env("LOG_JSON"), Usage: "log as JSON lines"},
		&cli.StringFlag{Name: "proxy-listen", EnvVars: env("PROXY_LISTEN"), Usage: "run the forwarding proxy on this ip:port (needs --proxy-service)"},
		&cli.StringFlag{Name: "proxy-service", EnvVars: env("PROXY_SERVICE"), Usage: "the proxy forwards to members tagged service=NAME with a port tag"},
		&cli.StringFlag{Name: "proxy-strategy", EnvVars: env("PROXY_STRATEGY"), Usage: "the proxy's picker: p2c (default), weighted-random, swrr, local-first, round-robin, random, least-loaded"},
	}, scaleFlags()...) // scale_cmd.go
}

// agentConfig builds the Config: defaults, then the file, then whatever
// flags or SHOAL_* variables set.
func agentConfig(c *cli.Context) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	if p := c.String("config"); p != "" {
		if err := cfg.LoadFile(p); err != nil {
			return cfg, err
		}
	}
	set := c.IsSet
	if set("node") {
		cfg.NodeName = c.String("node")
	}
	if set("bind") {
		cfg.Bind = c.String("bind")
	}
	if set("advertise") {
		cfg.Advertise = c.String("advertise")
	}
	if set("profile") {
		cfg.Profile = c.String("profile")
	}
	if set("p2p-bootstrap") {
		cfg.P2PBootstrap = c.StringSlice("p2p-bootstrap")
	}
	if set("relay") {
		cfg.Relay = c.Bool("relay")
	}
	if set("mdns") {
		cfg.MDNS = c.Bool("mdns")
	}
	if set("p2p-allow-peer") {
		cfg.P2PAllowPeers = c.StringSlice("p2p-allow-peer")
	}
	if set("p2p-max-peers") {
		cfg.P2PMaxPeers = c.Int("p2p-max-peers")
	}
	if set("p2p-fast-timings") {
		cfg.P2PFastTimings = c.Bool("p2p-fast-timings")
	}
	if set("p2p-public-net") {
		cfg.P2PPublicNets = c.StringSlice("p2p-public-net")
	}
	if set("tag") {
		if cfg.Tags == nil {
			cfg.Tags = map[string]string{}
		}
		for _, t := range c.StringSlice("tag") {
			k, v, err := agent.ParseTag(t)
			if err != nil {
				return cfg, err
			}
			cfg.Tags[k] = v
		}
	}
	if set("priority") {
		cfg.Priority = c.Int("priority")
	}
	if set("preempt") {
		cfg.Preempt = c.Bool("preempt")
	}
	if set("quorum") {
		cfg.Quorum = c.Int("quorum")
	}
	if set("join") {
		cfg.Join = c.StringSlice("join")
	}
	if set("retry-join") {
		cfg.RetryJoin = c.Bool("retry-join")
	}
	if set("retry-max") {
		cfg.RetryMax = c.Int("retry-max")
	}
	if set("retry-interval") {
		cfg.RetryInterval = agent.Duration(c.Duration("retry-interval"))
	}
	if set("leave-on-terminate") {
		cfg.LeaveOnTerm = c.Bool("leave-on-terminate")
	}
	if set("rejoin-after-leave") {
		cfg.RejoinAfterLeave = c.Bool("rejoin-after-leave")
	}
	if set("reconnect-timeout") {
		cfg.ReconnectTimeout = agent.Duration(c.Duration("reconnect-timeout"))
	}
	if set("data-dir") {
		cfg.DataDir = c.String("data-dir")
	}
	if set("acting-log") {
		cfg.ActingLog = c.String("acting-log")
	}
	if set("encrypt") {
		cfg.EncryptKey = c.String("encrypt")
	}
	if set("keyring-file") {
		cfg.KeyringFile = c.String("keyring-file")
	}
	if set("insecure-gossip") {
		cfg.InsecureGossip = c.Bool("insecure-gossip")
	}
	if set("label") {
		cfg.Label = c.String("label")
	}
	if set("http-addr") {
		cfg.HTTPAddr = c.String("http-addr")
	}
	if set("api-token") {
		cfg.APIToken = c.String("api-token")
	}
	for flag, field := range map[string]*string{"api-read-token": &cfg.APIReadToken, "tls-cert": &cfg.TLSCert, "tls-key": &cfg.TLSKey, "tls-client-ca": &cfg.TLSClientCA} {
		if set(flag) {
			*field = c.String(flag)
		}
	}
	if set("sample-interval") {
		cfg.SampleInterval = agent.Duration(c.Duration("sample-interval"))
	}
	if set("half-life") {
		cfg.HalfLife = agent.Duration(c.Duration("half-life"))
	}
	if set("log-level") {
		cfg.LogLevel = c.String("log-level")
	}
	if set("log-json") {
		cfg.LogJSON = c.Bool("log-json")
	}
	if set("proxy-listen") {
		cfg.ProxyListen = c.String("proxy-listen")
	}
	if set("proxy-service") {
		cfg.ProxyService = c.String("proxy-service")
	}
	if set("proxy-strategy") {
		cfg.ProxyStrategy = c.String("proxy-strategy")
	}
	if err := applyScaleFlags(c, &cfg); err != nil { // scale_cmd.go
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:               "agent",
		Usage:              "run the Shoal agent on this host",
		Flags:              categorize(agentFlags()),
		CustomHelpTemplate: agentHelpTemplate,
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 0 {
				a := c.Args().First()
				if a == "true" || a == "false" {
					return usagef("agent takes no arguments, got %q: a boolean flag takes its value after '=', as in --leave-on-terminate=%s", a, a)
				}
				return usagef("agent takes no arguments, got %q", a)
			}
			cfg, err := agentConfig(c)
			if errors.Is(err, agent.ErrConfig) {
				return usageError{err} // a bad flag, variable or config file value: exit 2
			}
			if err != nil {
				return err
			}
			log := agent.NewLogger(os.Stderr, cfg.LogLevel, cfg.LogJSON)
			a, err := agent.New(cfg, agent.WithLogger(log))
			if err != nil {
				return asUsage(err)
			}
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sigs)
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP) // reload the API's TLS certificate (api_tls.go)
			defer signal.Stop(hup)
			ctx, cancel := context.WithCancel(c.Context)
			defer cancel()
			go func() {
				select {
				case <-sigs:
					cancel()
				case <-ctx.Done():
				}
			}()
			if err := a.Start(ctx); err != nil {
				return asUsage(err)
			}
			go func() {
				for {
					select {
					case <-hup:
						_ = a.ReloadTLS() // logs its outcome; a failure keeps the certificate in use
					case <-ctx.Done():
						return
					}
				}
			}()
			select {
			case <-ctx.Done():
				log.Info("signal received, stopping", "leave", cfg.LeaveOnTerm)
				a.Stop(cfg.LeaveOnTerm)
			case <-a.LeaveRequested():
				a.Stop(true)
			}
			return nil
		},
	}
}

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the commit, the Go version and the build tags",
		Flags: []cli.Flag{&cli.StringFlag{Name: "format", Value: "table", Usage: "output format: table or json"}},
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			asJSON, err := wantJSON(c)
			if err != nil {
				return err
			}
			v := readBuild()
			if asJSON {
				return printJSON(c.App.Writer, v)
			}
			tags := strings.Join(v.Tags, ",")
			if tags == "" {
				tags = "(none)"
			}
			fmt.Fprintf(c.App.Writer, "shoal %s\ncommit %s\ngo %s\ntags %s\n", v.Version, v.Commit, v.Go, tags)
			return nil
		},
	}
}

// commit may be set with -ldflags "-X main.commit=$(git rev-parse HEAD)"
// where the toolchain's VCS stamping is off (GOFLAGS=-buildvcs=false).
var commit string

// buildVersion is what 'shoal version' says about this binary.
type buildVersion struct {
	Version string   `json:"version"`
	Commit  string   `json:"commit"` // with "+dirty" when built from a modified tree
	Go      string   `json:"go"`
	Tags    []string `json:"tags"`
}

// readBuild reads the commit and build tags that the Go toolchain stamps
// into every binary built inside the repository.
func readBuild() buildVersion {
	v := buildVersion{Version: agent.Version, Commit: "unknown", Go: runtime.Version(), Tags: []string{}}
	if commit != "" {
		v.Commit = commit
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		case "-tags":
			for _, t := range strings.Split(s.Value, ",") {
				if t = strings.TrimSpace(t); t != "" {
					v.Tags = append(v.Tags, t)
				}
			}
		}
	}
	if dirty && v.Commit != "unknown" {
		v.Commit += "+dirty"
	}
	return v
}

// asUsage marks configuration mistakes found while starting (a provider's
// options, say) as usage errors, exit 2, like those Validate finds.
func asUsage(err error) error {
	if errors.Is(err, agent.ErrConfig) || errors.Is(err, scale.ErrProviderConfig) {
		return usageError{err}
	}
	return err
}
