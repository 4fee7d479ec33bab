// Package providers holds Shoal's scaling providers: dry-run, webhook and
// exec in the agent's process, AWS Auto Scaling (not built with -tags noaws)
// and Kubernetes (not built with -tags nok8s) in a helper process. Each
// registers itself with scale.RegisterProvider in init; import the package
// for its side effect:
//
//	import _ "github.com/shoalmesh/shoal/scale/providers"
//
// The AWS and Kubernetes providers themselves (package providers/cloud,
// with aws-sdk-go-v2 and client-go) run in the helper binary shoal-provider
// (cmd/shoal-provider), which the agent starts only when it needs them (see
// helper.go): every Go process runs the package initialisers of everything
// it links, and those SDKs cost every agent about 10 MiB of binary and 8 MB
// of memory for a provider only the coordinator of a mesh that scales
// calls. This package links neither (deps_test.go pins it).
//
// Every provider fences: it refuses a lease lower than the last it acted on
// (fence.Fence.AdmitLease over a persisted scale.FileFence, or, for AWS
// and Kubernetes, over the term kept on the group or object as well).
package providers

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoalmesh/shoal/scale"
)

// Provider names.
const (
	AWSName        = "aws"
	KubernetesName = "kubernetes"
)

// Errors the AWS and Kubernetes providers return (also across the helper
// process: errors.Is holds for them on the agent's side).
var (
	// ErrNoGroup is returned when the Auto Scaling group does not exist.
	ErrNoGroup = errors.New("no such Auto Scaling group")
	// ErrScaleConflict: the resource changed under the provider (another
	// writer, or a count other than the one the decision was computed from)
	// and the change was not applied; decide again from a fresh Current.
	ErrScaleConflict = errors.New("scale: the resource changed since the decision; not applied, decide again")
)

// Option keys shared by every provider.
const (
	// OptFenceFile overrides where the fence is kept (default:
	// StateDir/scale-fence-NAME.json). Agents on one host or a shared
	// volume that point at the same file are fenced against each other.
	OptFenceFile = "fence_file"
)

func init() {
	scale.RegisterProvider(DryRunName, NewDryRun)
	scale.RegisterProvider(WebhookName, NewWebhook)
	scale.RegisterProvider(ExecName, NewExec)
}

// OpenFence opens the provider's fence file.
func OpenFence(cfg scale.ProviderConfig) (*scale.FileFence, error) {
	path := cfg.Opt(OptFenceFile, "")
	if path == "" && cfg.StateDir != "" {
		path = filepath.Join(cfg.StateDir, "scale-fence-"+cfg.Name+".json")
	}
	return scale.NewFileFence(path)
}

// OptDuration reads option key as a positive duration (def when unset).
func OptDuration(cfg scale.ProviderConfig, key string, def time.Duration) (time.Duration, error) {
	s := cfg.Opt(key, "")
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: provider %s: option %s=%q: want a positive duration such as 10s", scale.ErrProviderConfig, cfg.Name, key, s)
	}
	return d, nil
}

// OptInt reads option key as a whole number ≥ lo (def when unset).
func OptInt(cfg scale.ProviderConfig, key string, def, lo int) (int, error) {
	s := cfg.Opt(key, "")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo {
		return 0, fmt.Errorf("%w: provider %s: option %s=%q: want a whole number ≥ %d", scale.ErrProviderConfig, cfg.Name, key, s, lo)
	}
	return n, nil
}

// LastFromState returns the fence state's last action.
func LastFromState(st scale.FenceState) (scale.Applied, bool) {
	if st.Last == nil {
		return scale.Applied{}, false
	}
	return *st.Last, true
}

// ActionTime is the time an action is recorded under: the decision's (the
// policy's clock), or now.
func ActionTime(d scale.Decision) time.Time {
	if !d.Time.IsZero() {
		return d.Time
	}
	return time.Now().UTC()
}

// maxQuoted bounds what of an answer an error message quotes.
const maxQuoted = 256

// quoteAnswer quotes an answer (a response body, a command's output) for
// an error message, trimmed of spaces and clipped to maxQuoted bytes.
func quoteAnswer(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > maxQuoted {
		return fmt.Sprintf("%q… (%d bytes)", s[:maxQuoted], len(s))
	}
	return fmt.Sprintf("%q", s)
}
