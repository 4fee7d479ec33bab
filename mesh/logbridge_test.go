package mesh

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestLogBridgeLevelsAndOneLinePerMemberEvent(t *testing.T) {
	var buf bytes.Buffer
	l := newStdLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), nil)
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

func TestExplainJoinNamesTheKeyMismatch(t *testing.T) {
	cases := []struct{ in, want string }{
		{"1 error occurred:\n\t* Failed to join 127.0.77.1:7946: no installed keys could decrypt the message\n\n", "the mesh at 127.0.77.1:7946 did not accept our gossip key"},
		{"1 error occurred:\n\t* failed to join 10.0.0.2:7946: remote state is encrypted and encryption is not configured", "the mesh at 10.0.0.2:7946 uses a gossip key and we have none"},
		{"failed to join 10.0.0.3:7946: encryption is configured but remote state is not encrypted", "the mesh at 10.0.0.3:7946 gossips without a key"},
	}
	for _, tc := range cases {
		err := explainJoin(errors.New(tc.in))
		if !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrWrongKey) {
			t.Errorf("explainJoin(%q) = %q, want it to say %q and wrap ErrWrongKey", tc.in, err, tc.want)
		}
	}
	refused := errors.New("Failed to join 127.0.0.99:7946: dial tcp 127.0.0.99:7946: connect: connection refused")
	if err := explainJoin(refused); err != refused {
		t.Errorf("a refused dial was rewritten: %v", err)
	}
}
