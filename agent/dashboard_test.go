package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startDashAgent starts one in-process agent (local profile) with an API
// token and opts.
func startDashAgent(t *testing.T, ip string, opts ...Option) *Agent {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeName = "dash-1"
	cfg.Bind = ip + ":0"
	cfg.Profile = "local"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.APIToken = "tok"
	cfg.DataDir = t.TempDir()
	cfg.SampleInterval = Duration(100 * time.Millisecond)
	a, err := New(cfg, append([]Option{WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(false) })
	return a
}

func get(t *testing.T, a *Agent, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.HTTPAddr()+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestDashboardPageIsPublicItsDataIsNot(t *testing.T) {
	a := startDashAgent(t, "127.0.0.181", WithSyntheticMembers(30))
	for _, p := range []string{"/", "/ui/app.js", "/ui/style.css"} {
		resp, body := get(t, a, p, "")
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET %s without token: %d", p, resp.StatusCode)
		}
	}
	if resp, body := get(t, a, "/", ""); !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), "/ui/app.js") {
		t.Fatalf("GET / is not the page: %s", resp.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/v1/dashboard", "/v1/history", "/v1/monitor", "/v1/members", "/ui/../v1/members"} {
		if resp, _ := get(t, a, p, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without token: %d, want 401", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+a.HTTPAddr()+"/", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Errorf("POST / without token: %v", err)
	} else {
		resp.Body.Close() // an unclosed body keeps its connection's goroutines (goleak)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST / without token: %d, want 401", resp.StatusCode)
		}
	}

	var rep DashboardReport
	pollFor(t, 10*time.Second, "dashboard lists self with load and 30 synthetic members", func() error {
		_, body := get(t, a, "/v1/dashboard", "tok")
		rep = DashboardReport{}
		if err := json.Unmarshal(body, &rep); err != nil {
			return err
		}
		if len(rep.Members) != 31 || rep.Synthetic != 30 {
			return fmt.Errorf("%d members, %d synthetic", len(rep.Members), rep.Synthetic)
		}
		for _, m := range rep.Members {
			if m.Self && !m.HasLoad {
				return fmt.Errorf("self has no load yet")
			}
		}
		return nil
	})
	if rep.Counts["failed"] == 0 || rep.Counts["alive"] == 0 || rep.Aggregate.Members == 0 {
		t.Errorf("counts %v, aggregate %+v", rep.Counts, rep.Aggregate)
	}
	// Shares and uptime beside the model: the agent tracks itself (up all
	// along), not the synthetic members; n counts every alive member shown.
	if m := rep.Measured; m == nil || m.N != rep.Counts["alive"] || m.ModelShare != 1/float64(m.N) {
		t.Errorf("measured %+v, want n = the %d alive members and the model share 1/n", rep.Measured, rep.Counts["alive"])
	}
	for _, m := range rep.Members {
		if m.Self && (m.Share == nil || m.Share.Uptime != 1 || m.Share.PickShare != -1) {
			t.Errorf("self share %+v, want uptime 1 and no picks", m.Share)
		}
		if !m.Self && m.Share != nil {
			t.Errorf("synthetic %s has a share %+v", m.Name, m.Share)
		}
	}
	var hist HistoryReport
	_, body := get(t, a, "/v1/history", "tok")
	if err := json.Unmarshal(body, &hist); err != nil || len(hist.Samples) == 0 || hist.IntervalSeconds != 2 {
		t.Fatalf("history: %v %s", err, body)
	}
}

func TestHistoryRingKeepsTheNewest(t *testing.T) {
	old := historySize
	historySize = 3
	defer func() { historySize = old }()
	d := newDashboard()
	for i := 1; i <= 5; i++ {
		d.record(HistorySample{Time: int64(i)})
	}
	rec := httptest.NewRecorder()
	d.handleHistory(rec, httptest.NewRequest(http.MethodGet, "/v1/history", nil))
	var rep HistoryReport
	if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, s := range rep.Samples {
		got = append(got, s.Time)
	}
	if len(got) != 3 || got[0] != 3 || got[2] != 5 {
		t.Fatalf("samples %v, want [3 4 5]", got)
	}
}

// A listener that never reads must not slow the logger: entries beyond its
// buffer are dropped and counted. With no listener, records below the
// agent's level are not even built.
func TestMonitorTeeNeverBlocks(t *testing.T) {
	b := newBroadcaster()
	inner := slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})
	log := teeLogger(slog.New(inner), b, "n1").With("component", "test")
	if log.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug enabled with no listener")
	}
	l := b.subscribe(slog.LevelDebug, true, false)
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug not enabled for a debug listener")
	}
	const n = 20000
	start := time.Now()
	for i := range n {
		log.Debug("tick", "i", i)
	}
	took := time.Since(start)
	if took > 2*time.Second {
		t.Errorf("%d records took %v with a stuck listener", n, took)
	}
	if got := l.dropped.Load(); got != n-streamBuffer {
		t.Errorf("dropped %d, want %d", got, n-streamBuffer)
	}
	e := <-l.ch
	if e.Msg != "tick" || e.Node != "n1" || len(e.Attrs) != 2 || e.Attrs[0] != (StreamAttr{"component", "test"}) || e.Attrs[1].Key != "i" {
		t.Errorf("first entry %+v", e)
	}
	b.unsubscribe(l)
	if log.Enabled(context.Background(), slog.LevelDebug) || b.n.Load() != 0 {
		t.Fatal("still enabled after the listener left")
	}
	t.Logf("%d records in %v (%v each) with a stuck listener", n, took, took/n)
}

func TestMonitorStreamsLogsAndEvents(t *testing.T) {
	a := startDashAgent(t, "127.0.0.182")
	if resp, body := get(t, a, "/v1/monitor?level=loud", "tok"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("level=loud: %d %s, want 400", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.HTTPAddr()+"/v1/monitor?level=debug", nil)
	req.Header.Set("Authorization", "Bearer tok")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, ct)
	}
	pollFor(t, 5*time.Second, "listener registered", func() error {
		if a.dash.stream.n.Load() != 1 {
			return fmt.Errorf("no listener")
		}
		return nil
	})
	a.log.Debug("hello monitor", "k", "v")
	a.addEvent(Event{Time: time.Now(), Type: "coordinator", Member: "x", Detail: "term 9"})
	sc := bufio.NewScanner(resp.Body)
	var sawLog, sawEvent bool
	deadline := time.AfterFunc(10*time.Second, cancel)
	defer deadline.Stop()
	for sc.Scan() && !(sawLog && sawEvent) {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		var e StreamEntry
		if err := json.Unmarshal([]byte(line[6:]), &e); err != nil {
			t.Fatal(err)
		}
		switch {
		case e.Kind == "log" && e.Msg == "hello monitor" && e.Level == "DEBUG" && e.Node == "dash-1":
			sawLog = true
		case e.Kind == "event" && e.Type == "coordinator" && e.Detail == "term 9":
			sawEvent = true
		}
	}
	if !sawLog || !sawEvent {
		t.Fatalf("log seen %v, event seen %v", sawLog, sawEvent)
	}
	// Stopping the agent ends the stream promptly.
	start := time.Now()
	a.Stop(false)
	for sc.Scan() {
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("stop with a monitor attached took %v", d)
	}
}
