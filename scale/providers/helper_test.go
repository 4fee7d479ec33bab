package providers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/scale"
)

// helperModeEnv makes this test binary the helper (see TestMain): the
// providers it then serves are the dry-run one and a slow one, so that the
// protocol is tested without a cloud SDK.
const helperModeEnv = "SHOAL_PROVIDERS_TEST_HELPER"

func serveTestHelper() int {
	slow := func(scale.ProviderConfig) (scale.Provider, error) { return slowProvider{}, nil }
	if err := ServeHelper(os.Stdin, os.Stdout, map[string]scale.Factory{"dry-run": NewDryRun, "slow": slow}); err != nil {
		return 1
	}
	return 0
}

// slowProvider's calls wait for their context.
type slowProvider struct{}

func (slowProvider) Name() string        { return "slow" }
func (slowProvider) Authoritative() bool { return true }
func (slowProvider) Current(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}
func (slowProvider) Scale(ctx context.Context, _ int, _ fence.Lease, _ scale.Decision) error {
	<-ctx.Done()
	return ctx.Err()
}

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func useTestHelper(t *testing.T) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(HelperEnv, exe)
	t.Setenv(helperModeEnv, "1")
}

// TestHelperProvider runs the dry-run provider in a helper process through
// HelperFactory, as the agent runs AWS and Kubernetes: the configuration is
// checked at start, calls start the helper again after it has been stopped
// for idleness, errors keep their identity across the process, the
// provider's log reaches the agent's logger, and a cancelled call returns
// at once.
func TestHelperProvider(t *testing.T) {
	useTestHelper(t)
	defer func(d time.Duration) { HelperIdle = d }(HelperIdle)
	HelperIdle = 200 * time.Millisecond
	var logs logBuf
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	factory := HelperFactory("dry-run")
	ctx := context.Background()

	_, err := factory(scale.ProviderConfig{Name: "dry-run", Options: map[string]string{"initial": "many"}, StateDir: t.TempDir(), Logger: log})
	if !errors.Is(err, scale.ErrProviderConfig) || !strings.Contains(err.Error(), `initial="many"`) {
		t.Fatalf("bad option through the helper: %v; want scale.ErrProviderConfig naming the value", err)
	}

	p, err := factory(scale.ProviderConfig{Name: "dry-run", StateDir: t.TempDir(), Node: "n1", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer p.(interface{ Close() error }).Close()
	if p.Name() != "dry-run" || p.Authoritative() {
		t.Errorf("Name %q, Authoritative %v; want dry-run, false (the provider's own answer)", p.Name(), p.Authoritative())
	}
	if _, err := p.Current(ctx); !errors.Is(err, scale.ErrCountUnknown) {
		t.Fatalf("Current before any action: %v, want scale.ErrCountUnknown", err)
	}
	lease := fence.Lease{Holder: "n1", Priority: 1, Term: 4}
	d := scale.Decision{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Current: 3, Desired: 5, Action: scale.ActionUp, Reasons: []string{"load"}}
	if err := p.Scale(ctx, 5, lease, d); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Current(ctx); err != nil || n != 5 {
		t.Fatalf("Current after scaling to 5: %d, %v", n, err)
	}
	err = p.Scale(ctx, 2, fence.Lease{Holder: "n0", Priority: 0, Term: 3}, d)
	if !errors.Is(err, fence.ErrStaleTerm) {
		t.Fatalf("a lower term through the helper: %v, want fence.ErrStaleTerm", err)
	}
	lr, ok := p.(scale.LastActionReader)
	if !ok {
		t.Fatal("the dry-run provider reads its last action; through the helper it does not")
	}
	a, found, err := lr.LastAction(ctx)
	if err != nil || !found || a.Lease != lease || a.From != 3 || a.To != 5 || !a.Time.Equal(d.Time) {
		t.Fatalf("LastAction = %+v, %v, %v; want 3 -> 5 under %+v at %v", a, found, err, lease, d.Time)
	}
	poll.Until(t, 10*time.Second, "the provider's log record in the agent's log", func() error {
		if !strings.Contains(logs.String(), "dry-run: would scale") || !strings.Contains(logs.String(), "to=5") {
			return errors.New("no log record from the helper's provider; log:\n" + logs.String())
		}
		return nil
	})

	// Idle: the helper stops; the next call starts it again.
	hp := p.(*helperLastAction).helperProvider
	poll.Until(t, 10*time.Second, "the idle helper stopped", func() error {
		hp.mu.Lock()
		defer hp.mu.Unlock()
		if hp.h != nil {
			return errors.New("the helper still runs")
		}
		return nil
	})
	if n, err := p.Current(ctx); err != nil || n != 5 {
		t.Fatalf("Current from a restarted helper: %d, %v; want 5 (the fence file's)", n, err)
	}
}

func TestHelperCallCancelled(t *testing.T) {
	useTestHelper(t)
	p, err := HelperFactory("slow")(scale.ProviderConfig{Name: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.(interface{ Close() error }).Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := p.Current(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Current past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a cancelled call returned after %v", d)
	}
	// The helper is still usable after a cancelled call.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, err := p.Current(ctx2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second call: %v", err)
	}
}

func TestHelperMissing(t *testing.T) {
	t.Setenv(HelperEnv, "/nonexistent/shoal-provider")
	_, err := HelperFactory(AWSName)(scale.ProviderConfig{Name: AWSName, Resource: "web"})
	if err == nil || !strings.Contains(err.Error(), "SHOAL_SCALE_PROVIDER_HELPER /nonexistent/shoal-provider") {
		t.Errorf("helper path that does not exist: %v; want an error naming it", err)
	}
	plain := filepath.Join(t.TempDir(), "shoal-provider")
	if err := os.WriteFile(plain, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = HelperFactory(AWSName)(scale.ProviderConfig{Name: AWSName, Resource: "web", Helper: plain})
	if err == nil || !strings.Contains(err.Error(), "--scale-provider-helper "+plain+": not an executable") {
		t.Errorf("helper path that is not executable: %v; want an error naming the setting and the path", err)
	}
	t.Setenv(HelperEnv, "")
	t.Setenv("PATH", t.TempDir())
	_, err = HelperFactory(KubernetesName)(scale.ProviderConfig{Name: KubernetesName, Resource: "default/deployment/web"})
	if err == nil || !strings.Contains(err.Error(), "go build ./cmd/shoal-provider") || !strings.Contains(err.Error(), "provider kubernetes") {
		t.Errorf("no helper anywhere: %v; want an error saying how to build it", err)
	}
}
