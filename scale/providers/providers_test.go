package providers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoalmesh/shoal/fence"
	"github.com/shoalmesh/shoal/scale"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func decision(cur, desired int) scale.Decision {
	a := scale.ActionUp
	if desired < cur {
		a = scale.ActionDown
	}
	return scale.Decision{Time: t0, Current: cur, Desired: desired, Action: a, Metric: "cpu", Value: 91, Target: 70,
		Reasons: []string{"cpu 91.0 vs target 70: ceil(3 × 1.300) = 4"}}
}

func newProvider(t *testing.T, cfg scale.ProviderConfig) scale.Provider {
	t.Helper()
	if cfg.StateDir == "" {
		cfg.StateDir = t.TempDir()
	}
	p, err := scale.NewProvider(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFencingTwoCoordinators: two agents both believe they coordinate
// (leases built directly: el-2 deposed under term 3, el-3 acting under
// term 4), with providers sharing one fence (as agents on one host or a
// shared volume do). Whatever the order of their calls, the lower term is
// refused once the higher one has acted, and the refusal survives a
// restart of the provider.
func TestFencingTwoCoordinators(t *testing.T) {
	for _, name := range []string{DryRunName, ExecName} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fenceFile := filepath.Join(dir, "shared-fence.json")
			cfg := func(node string) scale.ProviderConfig {
				c := scale.ProviderConfig{Name: name, Node: node, StateDir: filepath.Join(dir, node),
					Options: map[string]string{OptFenceFile: fenceFile}}
				if name == ExecName {
					c.Resource = "echo \"$SHOAL_SCALE_TERM $SHOAL_SCALE_HOLDER $SHOAL_SCALE_DESIRED\" >> " + filepath.Join(dir, "calls")
				}
				return c
			}
			old := newProvider(t, cfg("el-2"))
			cur := newProvider(t, cfg("el-3"))
			deposed := fence.Lease{Holder: "el-2", Priority: 2, Term: 3}
			acting := fence.Lease{Holder: "el-3", Priority: 3, Term: 4}
			ctx := context.Background()
			if err := old.Scale(ctx, 4, deposed, decision(3, 4)); err != nil {
				t.Fatalf("term 3 before anyone higher: %v", err)
			}
			if err := cur.Scale(ctx, 5, acting, decision(4, 5)); err != nil {
				t.Fatalf("term 4: %v", err)
			}
			err := old.Scale(ctx, 3, deposed, decision(5, 3))
			if !errors.Is(err, fence.ErrStaleTerm) {
				t.Fatalf("deposed term 3 after term 4: %v, want ErrStaleTerm", err)
			}
			// Same number, lower-ranked holder: refused too.
			if err := old.Scale(ctx, 3, fence.Lease{Holder: "el-1", Priority: 1, Term: 4}, decision(5, 3)); !errors.Is(err, fence.ErrTermConflict) {
				t.Fatalf("same term, lower holder: %v", err)
			}
			// A restarted provider remembers.
			again := newProvider(t, cfg("el-2"))
			if err := again.Scale(ctx, 3, deposed, decision(5, 3)); !errors.Is(err, fence.ErrStaleTerm) {
				t.Fatalf("after restart: %v", err)
			}
			// The dry-run's simulated count is its fence's; exec without
			// current_command knows no count (its fence's record comes with
			// its lease from LastAction).
			if n, err := again.Current(ctx); name == DryRunName && (err != nil || n != 5) {
				t.Fatalf("current %d, %v: want 5 (the count after the admitted action)", n, err)
			} else if name == ExecName && !errors.Is(err, scale.ErrCountUnknown) {
				t.Fatalf("exec without current_command: current %d, %v: want ErrCountUnknown", n, err)
			}
			if again.Authoritative() {
				t.Fatalf("%s without a way to read the resource claims an authoritative count", name)
			}
			last, ok, err := again.(scale.LastActionReader).LastAction(ctx)
			if err != nil || !ok || last.To != 5 || last.Lease != acting || !last.Time.Equal(t0) {
				t.Fatalf("last action %+v %v %v", last, ok, err)
			}
			if name == ExecName {
				b, _ := os.ReadFile(filepath.Join(dir, "calls"))
				if got := string(b); got != "3 el-2 4\n4 el-3 5\n" {
					t.Fatalf("the command ran for: %q", got)
				}
			}
		})
	}
}

// TestFenceConcurrent: many goroutines with random-order terms; the
// admitted terms never go down.
func TestFenceConcurrent(t *testing.T) {
	f, err := scale.NewFileFence(filepath.Join(t.TempDir(), "f.json"))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for i := 1; i <= 20; i++ {
		wg.Add(1)
		go func(term uint64) {
			defer wg.Done()
			_ = f.Do(fence.Lease{Holder: "n", Term: term}, func(st *scale.FenceState) error {
				mu.Lock()
				order = append(order, term)
				mu.Unlock()
				return nil
			})
		}(uint64((i * 7) % 20))
	}
	wg.Wait()
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			t.Fatalf("acted under %d after %d: %v", order[i], order[i-1], order)
		}
	}
}

func TestWebhook(t *testing.T) {
	secret := "s3cret"
	var calls atomic.Int32
	var got WebhookPayload
	var mu sync.Mutex
	var lastTerm uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !VerifySignature([]byte(secret), body, r.Header.Get(SignatureHeader)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		n := calls.Add(1)
		if n == 1 {
			http.Error(w, "try again", http.StatusServiceUnavailable) // a retry follows
			return
		}
		term, _ := strconv.ParseUint(r.Header.Get(TermHeader), 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if term < lastTerm { // the receiver fences too
			http.Error(w, fmt.Sprintf("term %d below %d", term, lastTerm), http.StatusConflict)
			return
		}
		lastTerm = term
		if err := json.Unmarshal(body, &got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	p := newProvider(t, scale.ProviderConfig{Name: WebhookName, Resource: srv.URL + "/scale", Node: "el-3",
		Options: map[string]string{"secret": secret, "backoff": "10ms"}})
	ctx := context.Background()
	if _, err := p.Current(ctx); !errors.Is(err, scale.ErrCountUnknown) {
		t.Fatalf("current before any action: %v", err)
	}
	lease := fence.Lease{Holder: "el-3", Priority: 3, Term: 7}
	if err := p.Scale(ctx, 4, lease, decision(3, 4)); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls: want a 503 then a retry", calls.Load())
	}
	mu.Lock()
	if got.Term != 7 || got.Holder != "el-3" || got.Desired != 4 || got.Current != 3 || got.Action != "up" || got.Node != "el-3" || !strings.Contains(got.Reason, "ceil") {
		t.Fatalf("payload %+v", got)
	}
	mu.Unlock()
	// Its fence's count is this node's own last action, not the
	// resource's: Current does not offer it, LastAction does with the lease.
	if n, err := p.Current(ctx); !errors.Is(err, scale.ErrCountUnknown) || p.Authoritative() {
		t.Fatalf("current after: %d %v (authoritative %v): want ErrCountUnknown", n, err, p.Authoritative())
	}
	if last, ok, err := p.(scale.LastActionReader).LastAction(ctx); err != nil || !ok || last.To != 4 || last.Lease != lease {
		t.Fatalf("last action %+v %v %v", last, ok, err)
	}
	// A lower term: refused locally, without a call.
	before := calls.Load()
	if err := p.Scale(ctx, 2, fence.Lease{Holder: "el-2", Priority: 2, Term: 6}, decision(4, 2)); !errors.Is(err, fence.ErrStaleTerm) {
		t.Fatalf("lower term: %v", err)
	}
	if calls.Load() != before {
		t.Fatal("a refused lease reached the webhook")
	}
	// Another node's provider (its own fence) with a lower term: the
	// receiver's 409 comes back as ErrStaleTerm.
	other := newProvider(t, scale.ProviderConfig{Name: WebhookName, Resource: srv.URL, Node: "el-2",
		Options: map[string]string{"secret": secret, "backoff": "10ms"}})
	if err := other.Scale(ctx, 2, fence.Lease{Holder: "el-2", Priority: 2, Term: 6}, decision(4, 2)); !errors.Is(err, fence.ErrStaleTerm) {
		t.Fatalf("receiver's 409: %v", err)
	}
	// A wrong secret: 401, not retried, named.
	bad := newProvider(t, scale.ProviderConfig{Name: WebhookName, Resource: srv.URL, Options: map[string]string{"secret": "wrong", "backoff": "10ms"}})
	before = calls.Load()
	err := bad.Scale(ctx, 5, fence.Lease{Holder: "el-3", Priority: 3, Term: 8}, decision(4, 5))
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
	// Unreachable: retried, then the error names the URL.
	dead := newProvider(t, scale.ProviderConfig{Name: WebhookName, Resource: "http://127.0.0.1:1/x", Options: map[string]string{"secret": "x", "backoff": "5ms", "retries": "2"}})
	if err := dead.Scale(ctx, 5, lease, decision(4, 5)); err == nil || !strings.Contains(err.Error(), "3 attempts failed") {
		t.Fatalf("unreachable: %v", err)
	}
}

func TestWebhookCurrentURL(t *testing.T) {
	var answer atomic.Value
	answer.Store(`{"current": 6}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, answer.Load().(string))
	}))
	defer srv.Close()
	p := newProvider(t, scale.ProviderConfig{Name: WebhookName, Resource: srv.URL, Options: map[string]string{"secret": "x", "current_url": srv.URL + "/count"}})
	ctx := context.Background()
	if n, err := p.Current(ctx); err != nil || n != 6 || !p.Authoritative() {
		t.Fatalf("%d %v (authoritative %v)", n, err, p.Authoritative())
	}
	rr := p.(scale.ReadyReader)
	if c, err := rr.Counts(ctx); err != nil || c != (scale.Counts{Current: 6}) {
		t.Fatalf("no ready field: %+v %v", c, err)
	}
	answer.Store(`{"current": 6, "ready": 4}`)
	if c, err := rr.Counts(ctx); err != nil || c != (scale.Counts{Current: 6, Ready: 4, ReadyKnown: true}) {
		t.Fatalf("with a ready field: %+v %v", c, err)
	}
	for _, bad := range []string{`{"current": 6, "ready": -1}`, `{"ready": 2}`, `6 4`, `{"current": "6"}`} {
		answer.Store(bad)
		if _, err := rr.Counts(ctx); err == nil || !strings.Contains(err.Error(), "current_url") {
			t.Errorf("answer %s: %v, want an error naming current_url", bad, err)
		}
	}
}

func TestExec(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	p := newProvider(t, scale.ProviderConfig{Name: ExecName, Node: "el-3",
		Resource: "env | grep ^SHOAL_SCALE_ | sort > " + out,
		Options:  map[string]string{"current_command": "echo 3"}})
	ctx := context.Background()
	if n, err := p.Current(ctx); err != nil || n != 3 || !p.Authoritative() {
		t.Fatalf("current_command: %d %v (authoritative %v)", n, err, p.Authoritative())
	}
	// The ready count, when the command prints one.
	for out, want := range map[string]scale.Counts{
		"echo 3":                            {Current: 3},
		"echo '5 2'":                        {Current: 5, Ready: 2, ReadyKnown: true},
		`echo '{"current": 5, "ready": 4}'`: {Current: 5, Ready: 4, ReadyKnown: true},
		"printf '  7\\t7\\n'":               {Current: 7, Ready: 7, ReadyKnown: true},
	} {
		q := newProvider(t, scale.ProviderConfig{Name: ExecName, Resource: "true", Options: map[string]string{"current_command": out}})
		if c, err := q.(scale.ReadyReader).Counts(ctx); err != nil || c != want {
			t.Errorf("current_command %s: %+v %v, want %+v", out, c, err, want)
		}
	}
	for _, out := range []string{"echo 5 two", "echo -1", "echo '5 3 1'", "echo"} {
		q := newProvider(t, scale.ProviderConfig{Name: ExecName, Resource: "true", Options: map[string]string{"current_command": out}})
		if _, err := q.Current(ctx); !errors.Is(err, scale.ErrBadCounts) || !strings.Contains(err.Error(), out) {
			t.Errorf("current_command %s: %v, want ErrBadCounts naming the command", out, err)
		}
	}
	if err := p.Scale(ctx, 4, fence.Lease{Holder: "el-3", Priority: 3, Term: 9}, decision(3, 4)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := string(b)
	for _, want := range []string{"SHOAL_SCALE_DESIRED=4\n", "SHOAL_SCALE_CURRENT=3\n", "SHOAL_SCALE_TERM=9\n", "SHOAL_SCALE_HOLDER=el-3\n",
		"SHOAL_SCALE_PRIORITY=3\n", "SHOAL_SCALE_ACTION=up\n", "SHOAL_SCALE_NODE=el-3\n", "SHOAL_SCALE_METRIC=cpu\n",
		"SHOAL_SCALE_VALUE=91\n", "SHOAL_SCALE_TARGET=70\n", "SHOAL_SCALE_TIME=2026-01-01T00:00:00Z\n", "SHOAL_SCALE_DECISION={"} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	// A failing command: the error carries stderr.
	fail := newProvider(t, scale.ProviderConfig{Name: ExecName, Resource: "echo no capacity left >&2; exit 3"})
	if err := fail.Scale(ctx, 4, fence.Lease{Term: 1}, decision(3, 4)); err == nil || !strings.Contains(err.Error(), "no capacity left") {
		t.Fatalf("failing command: %v", err)
	}
	// A command that hangs is killed at the timeout, with its children.
	slow := newProvider(t, scale.ProviderConfig{Name: ExecName, Resource: "sleep 30 & sleep 30", Options: map[string]string{"timeout": "200ms"}})
	start := time.Now()
	err = slow.Scale(ctx, 4, fence.Lease{Term: 1}, decision(3, 4))
	if err == nil || !strings.Contains(err.Error(), "timeout") || time.Since(start) > 10*time.Second {
		t.Fatalf("timeout: %v after %v", err, time.Since(start))
	}
}

func TestBadProviderConfig(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		cfg  scale.ProviderConfig
		want string
	}{
		{scale.ProviderConfig{Name: "nimbus"}, `unknown provider "nimbus": registered providers are`},
		{scale.ProviderConfig{Name: WebhookName, Resource: "ftp://x", Options: map[string]string{"secret": "x"}}, `resource "ftp://x"`},
		{scale.ProviderConfig{Name: WebhookName, Resource: "http://127.0.0.1:9/"}, "option secret is empty"},
		{scale.ProviderConfig{Name: WebhookName, Resource: "http://127.0.0.1:9/", Options: map[string]string{"secret": "x", "retries": "-1"}}, `retries="-1"`},
		{scale.ProviderConfig{Name: ExecName}, "no command"},
		{scale.ProviderConfig{Name: ExecName, Resource: "true", Options: map[string]string{"timout": "1s"}}, `unknown option "timout"`},
		{scale.ProviderConfig{Name: DryRunName, Options: map[string]string{"initial": "many"}}, `initial="many"`},
	} {
		tc.cfg.StateDir = dir
		_, err := scale.NewProvider(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
	for _, want := range []string{"aws", "dry-run", "exec", "kubernetes", "webhook"} {
		if !scale.Registered(want) {
			t.Errorf("%s is not registered", want)
		}
	}
}
