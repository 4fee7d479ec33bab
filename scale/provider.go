package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shoalmesh/shoal/fence"
)

// Provider errors.
var (
	// ErrUnknownProvider: no provider is registered under the name.
	ErrUnknownProvider = errors.New("scale: unknown provider")
	// ErrCountUnknown is returned by Current when the provider cannot tell
	// the instance count (a webhook without current_url, an exec hook
	// without current_command): the caller starts from the newest action
	// known (see Basis), else the mesh's alive members.
	ErrCountUnknown = errors.New("scale: the provider does not know the instance count")
	// ErrProviderConfig is wrapped by a provider's configuration errors.
	ErrProviderConfig = errors.New("scale: invalid provider configuration")
)

// MaxCount bounds an instance count a provider reads from outside (a
// webhook's answer, a command's output): a count above it is refused as
// implausible, so that the policy's arithmetic on it cannot overflow.
const MaxCount = 1 << 20

// Provider changes the instance count of one resource (a Deployment, an
// Auto Scaling group, whatever a webhook or command stands for).
//
// Concurrency: implementations must be safe for concurrent use; the agent
// calls them from its scale goroutine, and the API may call Current.
//
// Fencing: Scale must refuse (with an error wrapping fence.ErrStaleTerm)
// a lease lower than the last one it acted on, by fence.Fence.AdmitLease
// over a fence it persists (FileFence, or state kept on the resource).
type Provider interface {
	// Name is the name the provider is registered under.
	Name() string
	// Current returns the instance count, or ErrCountUnknown. Where
	// Authoritative is false, a count it returns is the provider's own
	// record (a dry-run simulation), used only when no action is known.
	Current(ctx context.Context) (int, error)
	// Authoritative reports whether Current reads the count from the
	// resource itself (the Kubernetes scale subresource, an Auto Scaling
	// group's DesiredCapacity, an exec current_command, a webhook
	// current_url), the same for every node. A new coordinator starts
	// from that count; without one it starts from the newest action
	// announced in the mesh or kept in a history (by term), which misses an
	// action whose announcement its predecessor died before sending. The
	// answer does not change over the provider's life.
	Authoritative() bool
	// Scale sets the instance count to desired under lease; d is the
	// decision behind it, for the record.
	Scale(ctx context.Context, desired int, lease fence.Lease, d Decision) error
}

// LastActionReader is implemented by providers that keep the last action
// with the resource (AWS tags, a shared state file, a Kubernetes
// annotation): a new coordinator reads it on takeover so that it neither
// repeats nor reverses that action inside the cooldown.
type LastActionReader interface {
	LastAction(ctx context.Context) (Applied, bool, error)
}

// Counts is what a ReadyReader reads: the count asked for (as Current)
// and, when the resource tells, how many of those instances are ready to
// serve.
type Counts struct {
	Current    int
	Ready      int
	ReadyKnown bool
}

// ReadyReader is implemented by providers that can tell how many instances
// serve, not only how many were asked for: Kubernetes (status.readyReplicas
// of the Deployment or StatefulSet), AWS (instances InService and Healthy),
// an exec current_command or webhook current_url whose answer carries a
// ready count. The policy then counts booting instances as capacity that
// is coming, not as capacity that serves (Input.Ready). Counts answers
// what Current answers (or its error, ErrCountUnknown included) and, in
// the same read, the ready count when the resource reports one
// (ReadyKnown false otherwise).
type ReadyReader interface {
	Counts(ctx context.Context) (Counts, error)
}

// ErrBadCounts is wrapped by the error for a count answer that does not
// parse or is out of range (negative, or absurdly large).
var ErrBadCounts = errors.New("scale: bad count answer")

// ParseCounts reads a count answer from a hook (an exec current_command's
// output): one whole number (the count), two (the count, then how many of
// those instances are ready), or a JSON object {"current": N, "ready": M}
// with ready optional; each from 0 to MaxCount. Surrounding white space is
// ignored. Errors wrap ErrBadCounts and do not quote the answer (the
// caller quotes it, clipped).
func ParseCounts(b []byte) (Counts, error) {
	s := strings.TrimSpace(string(b))
	if len(s) > 4096 {
		return Counts{}, fmt.Errorf("%w: %d bytes", ErrBadCounts, len(s))
	}
	if strings.HasPrefix(s, "{") {
		var v struct {
			Current *int `json:"current"`
			Ready   *int `json:"ready"`
		}
		if err := json.Unmarshal([]byte(s), &v); err != nil || v.Current == nil {
			return Counts{}, fmt.Errorf("%w: want {\"current\": N} or {\"current\": N, \"ready\": M}", ErrBadCounts)
		}
		c := Counts{Current: *v.Current}
		if v.Ready != nil {
			c.Ready, c.ReadyKnown = *v.Ready, true
		}
		return c, c.check()
	}
	f := strings.Fields(s)
	if len(f) < 1 || len(f) > 2 {
		return Counts{}, fmt.Errorf("%w: want a count, optionally followed by the ready count", ErrBadCounts)
	}
	var c Counts
	var err error
	if c.Current, err = strconv.Atoi(f[0]); err != nil {
		return Counts{}, fmt.Errorf("%w: the count is not a whole number", ErrBadCounts)
	}
	if len(f) == 2 {
		if c.Ready, err = strconv.Atoi(f[1]); err != nil {
			return Counts{}, fmt.Errorf("%w: the ready count is not a whole number", ErrBadCounts)
		}
		c.ReadyKnown = true
	}
	return c, c.check()
}

func (c Counts) check() error {
	if c.Current < 0 || c.Current > MaxCount || (c.ReadyKnown && (c.Ready < 0 || c.Ready > MaxCount)) {
		return fmt.Errorf("%w: counts must be from 0 to %d (got %d, ready %d)", ErrBadCounts, MaxCount, c.Current, c.Ready)
	}
	return nil
}

// Applied is an action a provider carried out, with its lease.
type Applied struct {
	Time  time.Time   `json:"time"`
	From  int         `json:"from"`
	To    int         `json:"to"`
	Lease fence.Lease `json:"lease"`
}

// ProviderConfig is what a provider factory gets.
type ProviderConfig struct {
	// Name selects the factory (RegisterProvider).
	Name string
	// Resource is what to scale: an Auto Scaling group's name, a webhook's
	// URL, a command line, "namespace/deployment/name"; its meaning is the
	// provider's.
	Resource string
	// Options are provider-specific settings (key=value), e.g. secret,
	// region, endpoint, timeout, kubeconfig. A provider rejects keys it
	// does not know, naming them.
	Options map[string]string
	// StateDir is where the provider persists its fence (the agent's data
	// directory; may be empty for in-memory state, in tests).
	StateDir string
	// Node is this agent's name, for the record.
	Node string
	// Logger is the agent's logger; a component attribute is added by the
	// provider. Nil discards.
	Logger *slog.Logger
	// Helper is the path of the binary that runs providers out of process
	// (aws and kubernetes: shoal-provider); empty: the default places.
	Helper string
}

// Opt returns Options[key] or def.
func (c ProviderConfig) Opt(key, def string) string {
	if v, ok := c.Options[key]; ok {
		return v
	}
	return def
}

// CheckOptions returns an error naming the first option key not in known.
func (c ProviderConfig) CheckOptions(known ...string) error {
	keys := make([]string, 0, len(c.Options))
	for k := range c.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			return fmt.Errorf("%w: provider %s: unknown option %q; known options: %s", ErrProviderConfig, c.Name, k, strings.Join(known, ", "))
		}
	}
	return nil
}

// Factory builds a provider. It checks the configuration and may reach the
// resource to check it exists; a failure is an error naming the value.
type Factory func(cfg ProviderConfig) (Provider, error)

var registry = struct {
	sync.RWMutex
	m map[string]Factory
}{m: map[string]Factory{}}

// RegisterProvider makes a provider available under name (for
// --scale-provider NAME). Providers register in an init function of their
// package, which the agent imports; registering a name twice panics.
func RegisterProvider(name string, f Factory) {
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[name]; dup {
		panic("scale: provider " + name + " registered twice")
	}
	registry.m[name] = f
}

// Providers lists the registered provider names, sorted.
func Providers() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.m))
	for n := range registry.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Registered reports whether a provider is registered under name.
func Registered(name string) bool {
	registry.RLock()
	defer registry.RUnlock()
	_, ok := registry.m[name]
	return ok
}

// NewProvider builds the provider cfg.Name names, or an error wrapping
// ErrUnknownProvider that lists the registered names.
func NewProvider(cfg ProviderConfig) (Provider, error) {
	registry.RLock()
	f, ok := registry.m[cfg.Name]
	registry.RUnlock()
	if !ok {
		return nil, UnknownProviderError(cfg.Name)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return f(cfg)
}

// UnknownProviderError is the error for an unregistered provider name.
func UnknownProviderError(name string) error {
	return fmt.Errorf("%w %q: registered providers are %s", ErrUnknownProvider, name, strings.Join(Providers(), ", "))
}
