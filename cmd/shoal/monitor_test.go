package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// An agent whose stream says hello, keeps alive once, then goes silent:
// monitor shows the header and the heartbeat on stderr and gives up with a
// clear error instead of waiting forever.
func TestMonitorShowsHeaderHeartbeatAndGivesUpOnSilence(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": shoal monitor of n1, level info\n\n: keep-alive\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	old := monitorSilence
	monitorSilence = 300 * time.Millisecond
	defer func() { monitorSilence = old }()

	var out, errb bytes.Buffer
	start := time.Now()
	code := run([]string{"shoal", "monitor", "--http-addr", strings.TrimPrefix(srv.URL, "http://")}, &out, &errb)
	took := time.Since(start)
	if code != 1 || !strings.Contains(errb.String(), "stream is stalled") {
		t.Fatalf("exit %d after %v, stderr %q; want 1 and a stalled stream", code, took, errb.String())
	}
	for _, w := range []string{"shoal monitor of n1, level info; Ctrl-C stops", "connected, nothing new"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr %q lacks %q", errb.String(), w)
		}
	}
	if out.Len() != 0 {
		t.Errorf("header or heartbeat reached stdout: %q", out.String())
	}
}
