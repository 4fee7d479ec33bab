package mesh

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestLogBridgeLevelsAndOneLinePerMemberEvent(t *testing.T) {
	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})))
	l.Print("2026/12/04 15:00:00 [INFO] serf: EventMemberJoin: n2 127.0.0.12")
	l.Print("[WARN] memberlist: Refuting a suspect message (from: n3)")
	l.Print("[ERR] memberlist: failed to receive: No installed keys could decrypt the message")
	l.Print("[DEBUG] memberlist: Stream connection from=127.0.0.1:5555")
	l.Print("[INFO] serf: attempting reconnect to n4 127.0.0.14:7946")
	out := buf.String()
	if strings.Contains(out, "EventMemberJoin") {
		t.Errorf("serf's member event line reached info (mesh logs the event itself):\n%s", out)
	}
	for _, want := range []string{"level=WARN msg=\"memberlist: Refuting", "level=ERROR msg=\"memberlist: failed to receive", "level=INFO msg=\"serf: attempting reconnect"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Stream connection") {
		t.Errorf("debug line logged at info:\n%s", out)
	}
}
