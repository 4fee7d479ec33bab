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
	"github.com/shoalmesh/shoal/internal/footprint"
	"github.com/shoalmesh/shoal/scale"
)

// agentFlags are the agent's flags: --config, and one per setting of the
// table in agent/settings.go (a new flag is an entry there, not here).
func agentFlags() []cli.Flag {
	flags := []cli.Flag{&cli.StringFlag{Name: "config", EnvVars: []string{"SHOAL_CONFIG"}, Category: agent.CatNode,
		Usage: "JSON config file (flags and SHOAL_* variables override it; keys in docs/config.md)"}}
	d := agent.DefaultConfig()
	for _, s := range agent.Settings() {
		flags = append(flags, settingFlag(s, s.Field(&d)))
	}
	return flags
}

// settingFlag is the flag of a setting, its default from def (a pointer to
// the field in DefaultConfig).
func settingFlag(s agent.Setting, def any) cli.Flag {
	env := []string{s.Env}
	switch v := def.(type) {
	case *string:
		return &cli.StringFlag{Name: s.Name, EnvVars: env, Category: s.Category, Usage: s.Help, Value: *v}
	case *bool:
		return &cli.BoolFlag{Name: s.Name, EnvVars: env, Category: s.Category, Usage: s.Help, Value: *v}
	case *int:
		return &cli.IntFlag{Name: s.Name, EnvVars: env, Category: s.Category, Usage: s.Help, Value: *v}
	case *float64:
		return &cli.Float64Flag{Name: s.Name, EnvVars: env, Category: s.Category, Usage: s.Help, Value: *v}
	case *agent.Duration:
		return &cli.DurationFlag{Name: s.Name, EnvVars: env, Category: s.Category, Usage: s.Help, Value: time.Duration(*v)}
	case *[]string, *map[string]string:
		// Defaults of lists and maps are empty: a default here would be
		// kept under the values given.
		return &cli.StringSliceFlag{Name: s.Name, EnvVars: env, Category: s.Category, Usage: s.Help}
	}
	panic(fmt.Sprintf("setting --%s: no flag for a field of type %T", s.Name, def))
}

// setFromFlag copies a setting's flag (or its variable) into cfg. Lists
// replace what the file gave; key=value maps add to it.
func setFromFlag(c *cli.Context, s agent.Setting, cfg *agent.Config) error {
	switch p := s.Field(cfg).(type) {
	case *string:
		*p = c.String(s.Name)
	case *bool:
		*p = c.Bool(s.Name)
	case *int:
		*p = c.Int(s.Name)
	case *float64:
		*p = c.Float64(s.Name)
	case *agent.Duration:
		*p = agent.Duration(c.Duration(s.Name))
	case *[]string:
		*p = c.StringSlice(s.Name)
	case *map[string]string:
		return s.AddItems(cfg, c.StringSlice(s.Name))
	default:
		return fmt.Errorf("setting --%s: no flag for a field of type %T", s.Name, p)
	}
	return nil
}

// agentConfig builds the Config: defaults, then the file, then whatever
// flags or SHOAL_* variables set (a flag beats its variable), and
// validates it.
func agentConfig(c *cli.Context) (agent.Config, error) {
	cfg, err := buildAgentConfig(c)
	if err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func buildAgentConfig(c *cli.Context) (agent.Config, error) {
	cfg := agent.DefaultConfig()
	if p := c.String("config"); p != "" {
		if err := cfg.LoadFile(p); err != nil {
			return cfg, err
		}
	}
	for _, s := range agent.Settings() {
		if !c.IsSet(s.Name) {
			continue
		}
		if err := setFromFlag(c, s, &cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:               "agent",
		Usage:              "run the Shoal agent on this host",
		Flags:              agentFlags(),
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
			gc := footprint.SetGCDefaults() // GOGC, GOMEMLIMIT from the environment win
			log.Debug("garbage collector", "gogc", gc.Percent, "memory_limit", gc.Limit, "cgroup_memory_max", gc.CgroupLimit)
			procs := footprint.SetProcsDefault(cfg.ProxyListen != "") // GOMAXPROCS from the environment wins
			log.Debug("processors", "gomaxprocs", procs.Procs, "cpus", procs.Previous, "from_env", procs.FromEnv, "proxy", procs.Proxy)
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
			footprint.StartTrimmer(ctx, log) // drops start-up's pages of the binary
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
