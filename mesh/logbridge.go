package mesh

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"
)

// newStdLogger returns a *log.Logger (what serf and memberlist take) that
// hands each line to l at the level named in its "[LEVEL]" prefix.
func newStdLogger(l *slog.Logger) *log.Logger {
	return log.New(&logBridge{l: l}, "", 0)
}

type logBridge struct{ l *slog.Logger }

func (b *logBridge) Write(p []byte) (int, error) {
	msg := string(bytes.TrimSpace(p))
	level := slog.LevelInfo
	for _, lv := range []struct {
		tag string
		l   slog.Level
	}{{"[DEBUG]", slog.LevelDebug}, {"[TRACE]", slog.LevelDebug}, {"[INFO]", slog.LevelInfo}, {"[WARN]", slog.LevelWarn}, {"[ERR]", slog.LevelError}, {"[ERROR]", slog.LevelError}} {
		if i := strings.Index(msg, lv.tag); i >= 0 {
			level = lv.l
			msg = strings.TrimSpace(msg[i+len(lv.tag):])
			break
		}
	}
	// serf logs every member event at info ("serf: EventMemberJoin: n2
	// 10.0.0.2"); mesh logs the same event once more with structured
	// attributes, so serf's copy goes to debug: one info line per event.
	if level == slog.LevelInfo && strings.HasPrefix(msg, "serf: EventMember") {
		level = slog.LevelDebug
	}
	b.l.Log(context.Background(), level, msg)
	return len(p), nil
}
