// Package providers holds Shoal's scaling providers: dry-run, webhook, exec,
// AWS Auto Scaling (not built with -tags noaws) and Kubernetes (not built
// with -tags nok8s). Each registers itself with scale.RegisterProvider in
// init; import the package for its side effect:
//
//	import _ "github.com/shoalmesh/shoal/scale/providers"
//
// Every provider fences: it refuses a lease lower than the last it acted on
// (fence.Fence.AdmitLease over a persisted scale.FileFence, or, for AWS
// and Kubernetes, over the term kept on the group or object as well).
//
// The SDKs (aws-sdk-go-v2, client-go) live here and nowhere in package
// scale, whose policy links only the standard library and Shoal's pure
// packages (deps_test.go pins both).
package providers

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/shoalmesh/shoal/scale"
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

// openFence opens the provider's fence file.
func openFence(cfg scale.ProviderConfig) (*scale.FileFence, error) {
	path := cfg.Opt(OptFenceFile, "")
	if path == "" && cfg.StateDir != "" {
		path = filepath.Join(cfg.StateDir, "scale-fence-"+cfg.Name+".json")
	}
	return scale.NewFileFence(path)
}

func optDuration(cfg scale.ProviderConfig, key string, def time.Duration) (time.Duration, error) {
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

func optInt(cfg scale.ProviderConfig, key string, def, lo int) (int, error) {
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

// lastFromState returns the fence state's last action.
func lastFromState(st scale.FenceState) (scale.Applied, bool) {
	if st.Last == nil {
		return scale.Applied{}, false
	}
	return *st.Last, true
}

// actionTime is the time an action is recorded under: the decision's (the
// policy's clock), or now.
func actionTime(d scale.Decision) time.Time {
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
