//go:build browser

package browser

import (
	pollpkg "github.com/shoalmesh/shoal/internal/poll"
	"github.com/shoalmesh/shoal/internal/testenv"

	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/shoalmesh/shoal/agent"
	"github.com/shoalmesh/shoal/client"
	"github.com/shoalmesh/shoal/internal/testbin"
)

var shoalBin string

func TestMain(m *testing.M) { testbin.Main(m, &shoalBin, "", testbin.Shoal) }

// chromiumPath finds Chromium, or skips the test saying how to get it (fails
// it under CI=true).
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SHOAL_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.RequireOrSkip(t, "Chromium not found (looked for chromium, chromium-browser, google-chrome, headless-shell and $SHOAL_CHROMIUM): "+
		"install Debian's chromium package (scripts/browser-test does it with apt-get)")
	return ""
}

// newBrowser starts headless Chromium with the flags these machines need
// (root, no network) and a fresh profile, and returns a tab's context.
func newBrowser(t *testing.T, w, h int) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(w, h),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancelB()
		cancelA()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium up in %v", time.Since(start).Round(time.Millisecond))
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page (awaiting a promise).
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := chromedp.Run(c, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return out
}

// waitJS polls a JavaScript expression until it is true.
func waitJS(t *testing.T, ctx context.Context, d time.Duration, what, expr string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		ok, err := chromedp.Run(c, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return time.Since(start)
		}
		if time.Since(start) > d {
			c, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, _ := chromedp.Run(c, chromedp.Evaluate[string](`JSON.stringify({stats: window.__shoal, conn: document.getElementById('conn-text').textContent, rows: document.getElementById('rows').innerText.slice(0, 2000)})`))
			cancel()
			t.Logf("page state: %s", st)
			screenshot(t, ctx, "failure-"+strings.NewReplacer(" ", "-", "/", "-").Replace(what)+".png")
			t.Fatalf("%s: not within %v (last error: %v)", what, d, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "out", "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	fmt.Printf("screenshot: %s\n", p)
	return p
}

func freePort(t *testing.T, ip string) int { return testbin.FreePort(t, ip) }

type proc struct {
	name, http, gossip string
	cmd                *exec.Cmd
	stderr             *bytes.Buffer
}

const token = "s3cret-browser-token"

func startAgent(t *testing.T, name, ip, join string) *proc {
	t.Helper()
	p := &proc{name: name, http: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		gossip: fmt.Sprintf("%s:%d", ip, freePort(t, ip)), stderr: &bytes.Buffer{}}
	args := []string{"agent", "--node", name, "--bind", p.gossip, "--profile", "local", "--http-addr", p.http,
		"--api-token", token, "--data-dir", t.TempDir(), "--sample-interval", "200ms", "--log-level", "warn",
		"--tag", "role=browser-test", "--tag", "service=web", "--tag", "port=8080"}
	if join != "" {
		args = append(args, "--join", join)
	}
	p.cmd = exec.Command(shoalBin, args...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	c := client.New(p.http, token)
	poll(t, 10*time.Second, name+" API up", func() error {
		_, err := c.Health(context.Background())
		return err
	})
	return p
}

func poll(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	pollpkg.Until(t, d, what, cond)
}

// detectionTime bounds how long the local profile takes to declare a killed
// member failed (memberlist's suspicion timeout with fast probes), plus the
// page's poll interval and slack for a loaded machine.
const detectionTime = 15 * time.Second

func TestDashboardFiveAgents(t *testing.T) {
	chromiumPath(t) // skip early
	var procs []*proc
	for i := 1; i <= 5; i++ {
		join := ""
		if i > 1 {
			join = procs[0].gossip
		}
		procs = append(procs, startAgent(t, fmt.Sprintf("b%d", i), fmt.Sprintf("127.0.0.%d", 160+i), join))
	}
	c := client.New(procs[0].http, token)
	poll(t, 15*time.Second, "b1 sees five members with load", func() error {
		ms, err := c.Members(context.Background(), client.MemberFilter{})
		if err != nil {
			return err
		}
		n := 0
		for _, m := range ms {
			if m.Status == "alive" && m.Load != nil {
				n++
			}
		}
		if n != 5 {
			return fmt.Errorf("%d of %d alive with load", n, len(ms))
		}
		return nil
	})

	// Work picked through b1, for the shares the page shows.
	const picks = 100
	for range picks {
		if _, err := c.Pick(context.Background(), client.PickRequest{Service: "web"}); err != nil {
			t.Fatal(err)
		}
	}

	ctx := newBrowser(t, 1280, 900)
	url := "http://" + procs[0].http + "/?interval=500"
	start := time.Now()
	run(t, ctx, "open the page", chromedp.Navigate(url), chromedp.WaitReady(chromedp.ID("rows")))
	// The page loads without the token, and asks for it.
	waitJS(t, ctx, 10*time.Second, "token form shown", `!document.getElementById('token-form').hidden`)
	// Nothing to page through before the token: the pager must not look usable.
	if !eval[bool](t, ctx, `document.getElementById('prev').disabled && document.getElementById('next').disabled`) {
		t.Errorf("prev/next enabled on the token page, with no members to page through")
	}
	checkPlaceholderFits(t, ctx, "desktop")
	run(t, ctx, "enter the token",
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	waitJS(t, ctx, 15*time.Second, "five members alive with load",
		`document.querySelectorAll('#rows tr[data-status="alive"][data-load="1"]').length === 5`)
	t.Logf("page shows five members with load %v after navigation", time.Since(start).Round(time.Millisecond))
	if got := eval[string](t, ctx, `sessionStorage.getItem('shoal-token')`); got != token {
		t.Errorf("token in sessionStorage: %q", got)
	}
	// Load bars carry a width.
	if n := eval[int](t, ctx, `document.querySelectorAll('#rows td.cpu .bar b').length`); n != 5 {
		t.Errorf("%d CPU bars, want 5", n)
	}
	// Shares and uptime beside the model: every alive member up for a
	// plausible fraction (b1 itself always; on a loaded machine the local
	// profile's fast failure detector takes a slow member for failed now
	// and then, and its up % says so), the pick shares summing to 100%, and
	// the web row with n=5 beside the model's 20% each and A=0.80.
	ups := eval[[]string](t, ctx, `[...document.querySelectorAll('#rows tr[data-status="alive"] td.up')].map((td) => td.textContent)`)
	if len(ups) != 5 {
		t.Errorf("up %% of the alive rows: %q, want 5", ups)
	}
	for _, u := range ups {
		if v, err := strconv.ParseFloat(strings.TrimSuffix(u, "%"), 64); err != nil || v <= 0 || v > 100 {
			t.Errorf("up %% %q: want a percentage in (0, 100]", u)
		}
	}
	if u := eval[string](t, ctx, `document.querySelector('#rows tr[data-name="b1"] td.up').textContent`); u != "100.0%" {
		t.Errorf("b1's up %% of itself is %q, want 100.0%%", u)
	}
	if sum := eval[float64](t, ctx, `[...document.querySelectorAll('#rows td.pick')].reduce((s, td) => s + (parseFloat(td.textContent) || 0), 0)`); sum < 99.5 || sum > 100.5 {
		t.Errorf("pick %% column sums to %.1f, want 100", sum)
	}
	waitJS(t, ctx, 5*time.Second, "model and measured panel for web",
		`(() => { const r = document.querySelector('#measured-rows tr[data-service="web"]'); if (!r) return false;
			const c = [...r.cells].map((td) => td.textContent);
			return !document.getElementById('measured').hidden && c[1] === '5' && c[2] === 'N/5 = 20.0%' && c[3] === '0.80' && c[4] === '100.0%' && /of 1\d\d$/.test(c[7]); })()`)
	waitJS(t, ctx, 10*time.Second, "chart has samples", `(window.__shoal.polls > 2) && /samples/.test(document.getElementById('chart-note').textContent)`)
	screenshot(t, ctx, "dashboard-five.png")

	// Kill b5; the page must show it failed within the detection time.
	victim := procs[4]
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	took := waitJS(t, ctx, detectionTime, "b5 shown failed",
		`(document.querySelector('#rows tr[data-name="b5"]')||{}).dataset?.status === 'failed'`)
	t.Logf("page shows b5 failed %v after kill -9 (limit %v)", took.Round(time.Millisecond), detectionTime)
	fmt.Printf("dashboard: b5 shown failed %v after kill -9\n", time.Since(killed).Round(time.Millisecond))
	waitJS(t, ctx, 5*time.Second, "failure event listed and counted",
		`document.getElementById('s-failed').textContent === '1' && /member-failed/.test(document.getElementById('events').textContent)`)
	if n := eval[int](t, ctx, `document.querySelectorAll('#rows tr[data-status="alive"]').length`); n != 4 {
		t.Errorf("%d alive rows after the kill, want 4", n)
	}
	waitJS(t, ctx, 5*time.Second, "b5's uptime below 100% and web still available with n=4",
		`(() => { const up = document.querySelector('#rows tr[data-name="b5"] td.up'); const r = document.querySelector('#measured-rows tr[data-service="web"]');
			return up && parseFloat(up.textContent) < 100 && r && r.cells[1].textContent === '4' && r.cells[4].textContent === '100.0%'; })()`)
	screenshot(t, ctx, "dashboard-failed.png")

	// Sorting and filtering.
	run(t, ctx, "filter b3", chromedp.SendKeys(chromedp.ID("filter"), "b3"))
	waitJS(t, ctx, 5*time.Second, "filter to one row", `document.querySelectorAll('#rows tr[data-name]').length === 1`)
	eval[bool](t, ctx, `(() => { const f = document.getElementById('filter'); f.value = ''; return f.dispatchEvent(new Event('input')); })()`)
	waitJS(t, ctx, 5*time.Second, "filter cleared", `document.querySelectorAll('#rows tr[data-name]').length === 5`)
	run(t, ctx, "sort by status", chromedp.Click(chromedp.CSS(`th[data-sort="status"]`)))
	if first := eval[string](t, ctx, `document.querySelector('#rows tr[data-name]').dataset.name`); first != "b5" {
		t.Errorf("sorted by status, first row is %s, want the failed b5", first)
	}

	// A phone: narrow viewport, no horizontal scrolling of the page.
	renders := eval[float64](t, ctx, `window.__shoal.renders`)
	run(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	waitJS(t, ctx, 5*time.Second, "a render at the new size", fmt.Sprintf(`window.__shoal.renders > %d`, int(renders)))
	if w := eval[float64](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`); w > 1 {
		t.Errorf("page is %vpx wider than a phone's viewport", w)
	}
	checkPlaceholderFits(t, ctx, "phone")
	screenshot(t, ctx, "dashboard-phone.png")
}

// checkPlaceholderFits fails when the member filter's placeholder is wider
// than the box that shows it (the user reads "filter: name, address, tag, sta").
func checkPlaceholderFits(t *testing.T, ctx context.Context, where string) {
	t.Helper()
	over := eval[float64](t, ctx, `(() => {
		const f = document.getElementById('filter'), cs = getComputedStyle(f);
		const g = document.createElement('canvas').getContext('2d');
		g.font = cs.font;
		const room = f.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
		return g.measureText(f.placeholder).width - room;
	})()`)
	if over > 0 {
		t.Errorf("%s: the filter's placeholder is %.0fpx wider than its box", where, over)
	}
}

func TestDashboardThousandMembers(t *testing.T) {
	chromiumPath(t)
	const n = 1000
	cfg := agent.DefaultConfig()
	cfg.NodeName = "big-1"
	cfg.Bind = "127.0.0.171:0"
	cfg.Profile = "local"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.SampleInterval = agent.Duration(200 * time.Millisecond)
	a, err := agent.New(cfg, agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), agent.WithSyntheticMembers(n-1))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(false) })

	ctx := newBrowser(t, 1280, 900)
	run(t, ctx, "open the page", chromedp.Navigate("http://"+a.HTTPAddr()+"/?interval=1000"), chromedp.WaitReady(chromedp.ID("rows")))
	waitJS(t, ctx, 20*time.Second, "first render with 1,000 members",
		fmt.Sprintf(`window.__shoal.firstRenderMs !== null && document.getElementById('s-members').textContent === '%d'`, n))
	type timing struct {
		FirstRenderMs float64   `json:"firstRenderMs"`
		LastFetchMs   float64   `json:"lastFetchMs"`
		RenderTimes   []float64 `json:"renderTimes"`
		Rows          int       `json:"rows"`
		Renders       int       `json:"renders"`
	}
	first := eval[timing](t, ctx, `window.__shoal`)
	waitJS(t, ctx, 10*time.Second, "one update", fmt.Sprintf(`window.__shoal.renders > %d`, first.Renders))
	upd := eval[timing](t, ctx, `window.__shoal`)
	sortMs := eval[float64](t, ctx, `(() => { const t = performance.now(); document.querySelector('th[data-sort="cpu"]').click(); return performance.now() - t; })()`)
	pageMs := eval[float64](t, ctx, `(() => { const t = performance.now(); document.getElementById('next').click(); return performance.now() - t; })()`)
	// The status filter renders synchronously (the text filter waits 80 ms for typing to pause).
	statusMs := eval[float64](t, ctx, `(() => { const s = document.getElementById('status'); s.value = 'failed'; const t = performance.now(); s.dispatchEvent(new Event('change')); return performance.now() - t; })()`)
	failedRows := eval[int](t, ctx, `document.querySelectorAll('#rows tr[data-status="failed"]').length`)
	eval[bool](t, ctx, `(() => { const s = document.getElementById('status'); s.value = ''; return s.dispatchEvent(new Event('change')); })()`)
	eval[bool](t, ctx, `(() => { const f = document.getElementById('filter'); f.value = 'role=db'; return f.dispatchEvent(new Event('input')); })()`)
	waitJS(t, ctx, 5*time.Second, "text filter applied", `/of 1000/.test(document.getElementById('m-count').textContent)`)
	rows := eval[int](t, ctx, `document.querySelectorAll('#rows tr[data-name]').length`)
	count := eval[string](t, ctx, `document.getElementById('m-count').textContent`)
	fmt.Printf("dashboard with %d members: first render at %.0f ms after navigation (render %.1f ms, fetch %.0f ms); "+
		"update: fetch+parse %.0f ms, render %.1f ms; sort by cpu %.1f ms; next page %.1f ms; status filter %.1f ms (%d failed); text filter role=db: %d rows on the page, %s\n",
		n, first.FirstRenderMs, first.RenderTimes[0], first.LastFetchMs, upd.LastFetchMs, upd.RenderTimes[len(upd.RenderTimes)-1],
		sortMs, pageMs, statusMs, failedRows, rows, count)
	if first.Rows != 50 {
		t.Errorf("first page has %d rows, want 50 (only the current page is rendered)", first.Rows)
	}
	if !strings.Contains(count, "of 1000") {
		t.Errorf("member count after filtering: %q", count)
	}
	// Responsive: an update renders well within the poll interval.
	if r := upd.RenderTimes[len(upd.RenderTimes)-1]; r > 500 {
		t.Errorf("an update took %.0f ms to render; want well under the 1 s poll interval", r)
	}
	eval[bool](t, ctx, `(() => { const f = document.getElementById('filter'); f.value = ''; return f.dispatchEvent(new Event('input')); })()`)
	waitJS(t, ctx, 5*time.Second, "filter cleared: a full page again", `document.querySelectorAll('#rows tr[data-name]').length === 50`)
	screenshot(t, ctx, "dashboard-1000.png")
}
